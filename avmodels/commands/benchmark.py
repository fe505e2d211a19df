"""``avmodels benchmark``: one model on every protocol it has data for -> one table."""

from __future__ import annotations

from pathlib import Path

import click

from avmodels.commands.options import model_file_of, model_file_options
from avmodels.engine.benchmark import SUITES
from avmodels.metrics import PRESETS


@click.command("benchmark", context_settings={"show_default": True})
@model_file_options
@click.option(
    "--suite",
    default="all",
    type=click.Choice(SUITES.names()),
    help="Which protocols: all, or one family.",
)
@click.option(
    "--data",
    "items",
    multiple=True,
    metavar="PROTOCOL.KEY=VALUE",
    help="Data of a protocol, e.g. vggss.store=shards/test, vggss.annotations=vggss.json, "
    "extended-vggss.silent=vggss_test_plus_silent.csv, is3.meta=synthetic3240_bbox.json, "
    "s4.masks=gt_masks/ (repeatable; see docs/evaluation.md).",
)
@click.option(
    "--preset",
    "presets",
    multiple=True,
    type=click.Choice(PRESETS.names()),
    help="Metric presets of the standard rows (default: every preset).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write benchmark.json, .csv, .md and .html here.",
)
@click.option("--device", default="auto", help="cpu | cuda | cuda:N | auto.")
@click.option("--batch-size", type=int, default=32, help="Clips per forward pass.")
@click.option("--workers", type=int, default=0, help="DataLoader workers.")
def benchmark(run, ckpt, suite, items, presets, out, device, batch_size, workers) -> None:
    """Evaluate one model on every protocol of a suite that has data: one table.

    Rows are protocol x preset (or convention); the centre, whole-image, random
    and ceiling baselines are scored beside the model where they are defined.

    \b
    Example:
      avmodels benchmark --ckpt model.pt --suite all \\
          --data vggss.store=shards/vggss-test --data vggss.annotations=vggss.json \\
          --data vggss.ids=vggss/test-4911 --out bench/
    """
    from avmodels.engine.benchmark import parse_data, run_benchmark, write_tables

    data = parse_data(items)
    model = model_file_of(run, ckpt)
    result = run_benchmark(
        model, suite, data, presets=presets or None, device=device, batch_size=batch_size,
        workers=workers, progress=lambda p: click.echo(f"... {p}", err=True),
    )  # fmt: skip
    click.echo(result.markdown(), nl=False)
    if out:
        paths = write_tables(result, out)
        click.echo(f"tables    {', '.join(str(p) for p in paths.values())}")
