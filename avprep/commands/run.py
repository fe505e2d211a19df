"""``avprep run``: run a pipeline recipe (download -> extract -> pack ...)."""

from __future__ import annotations

from pathlib import Path

import click

from avprep.errors import ConfigError
from avprep.pipeline import load_pipeline, plan, run_pipeline


def _overrides(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value
    return out


@click.command()
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for all outputs (default: data/<pipeline name>).",
)
@click.option("--dry-run", is_flag=True, help="Show the plan and check every stage; run nothing.")
@click.option("--from", "start_from", default=None, help="Rerun from this stage on.")
@click.option("--set", "sets", multiple=True, help="Override a recipe variable: key=value.")
def run(recipe: Path, workdir: Path | None, dry_run: bool, start_from: str | None, sets) -> None:
    """Run the pipeline RECIPE (a YAML file in pipelines/), resuming where it stopped."""
    from avprep.cli import cli

    pipe = load_pipeline(recipe)
    workdir = workdir or Path("data") / pipe.name
    overrides = _overrides(sets)
    rows = plan(pipe, cli, workdir, overrides)
    click.echo(f"pipeline {pipe.name}: {pipe.description}".rstrip(": "))
    click.echo(f"workdir  {workdir}")
    for i, (stage, argv, status) in enumerate(rows, 1):
        prog = "" if argv[:1] == ["avmodels"] else "avprep "
        click.echo(f"{i:>2}. {stage.name:<14} {status:<8} {prog}{' '.join(argv)}")
    if dry_run:
        return
    results = run_pipeline(pipe, cli, workdir, overrides=overrides, start_from=start_from)
    click.echo("summary:")
    for name, outcome, seconds in results:
        click.echo(f"  {name:<14} {outcome:<8} {seconds:8.1f} s")
