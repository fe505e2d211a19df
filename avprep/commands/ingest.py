"""``avprep ingest``: bring your own copy of a dataset (folder, tar or zip)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command(context_settings={"show_default": True})
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="The copy: a folder, a tar archive (.tar, .tar.gz, ...) or a zip archive.",
)
@click.option(
    "--ids",
    required=True,
    help="The clips wanted: an id list file, a metadata registry name "
    "(e.g. vggss/test-5158) or a,b,c.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Download folder to fill (the same as `avprep download --out`).",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the coverage report as JSON.")
def ingest(source: Path, ids: str, out: Path, no_progress: bool, as_json: bool) -> None:
    """Turn a copy of a dataset into what `avprep download` would have made.

    Each listed clip found in the copy (file name = clip id, any folder, any
    media extension) is verified like a download and saved as OUT/<clip_id>.<ext>
    with a manifest record (source: ingest). Archives are read member by
    member, never unpacked whole; absolute paths, '..' and links are refused.
    The ids that are missing or corrupt go to OUT/missing.txt for
    `avprep download`; the coverage report goes to OUT/ingest_report.json.

    \b
    Examples:
      avprep ingest --from vggsound_test.tar.gz --ids vggss/test-5158 --out videos/
      avprep download --ids videos/missing.txt --out videos/    # the rest
      avprep ingest --from /mnt/flickr/videos --ids flickr_test.csv --out flickr/
    """
    import sys

    from avprep.idspec import read_ids
    from avprep.stages.ingest import ingest as run_ingest

    wanted = read_ids(ids)
    report = run_ingest(source, wanted, out, progress=not no_progress and sys.stderr.isatty())
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    click.echo(report.summary())
    todo = len(report.missing) + len(report.corrupt)
    if todo:
        click.echo(f"missing   {report.missing_file} ({todo} ids): fetch them with")
        click.echo(f"  avprep download --ids {report.missing_file} --out {out}")
    else:
        click.echo("every listed clip is present")
