"""``avprep verify``: check a packed store and exit non-zero on any problem (thin CLI layer).

The checks are :func:`avprep.store.verify.verify_store`; see docs/store.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from avprep.clikit import no_progress_option
from avprep.errors import StoreError


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--no-hash", is_flag=True, help="Skip the sha256 check (fast on big stores).")
@click.option(
    "--no-content",
    is_flag=True,
    help="Skip decoding frames and scanning arrays for NaN/inf (structure only).",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Shards checked in parallel.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@no_progress_option
def verify(folder: Path, no_hash: bool, no_content: bool, jobs: int, as_json: bool) -> None:
    """Check a store made by pack-h5 (native or SSPL layout).

    \b
    Checks: shard files present (none renamed), sha256 as indexed, files
    open, names/dtypes/shapes, row counts, unique ids, frames decodable,
    no NaN/inf. Prints a report; exits 1 if anything is wrong.

    \b
    Example:
      avprep verify shards/train
    """
    from avprep.clikit import progress_wanted
    from avprep.store.verify import report_dict, verify_store

    report = verify_store(
        folder, hashes=not no_hash, content=not no_content, jobs=jobs, progress=progress_wanted()
    )
    if as_json:
        click.echo(json.dumps(report_dict(report), indent=2))
    else:
        click.echo(report.format())
    if not report.ok:
        raise StoreError(f"{len(report.problems)} problem(s) found in {folder}")
