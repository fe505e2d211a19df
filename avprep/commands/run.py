"""``avprep run``: run a pipeline recipe (download -> extract -> pack ...)."""

from __future__ import annotations

from pathlib import Path

import click

from avprep.clikit import no_progress_option
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
@click.argument("recipe", required=False)
@click.option("--list", "list_", is_flag=True, help="List the shipped recipes and exit.")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for all outputs (default: data/<pipeline name>).",
)
@click.option("--dry-run", is_flag=True, help="Show the plan and check every stage; run nothing.")
@click.option("--from", "start_from", default=None, help="Rerun from this stage on.")
@click.option("--set", "sets", multiple=True, help="Override a recipe variable: key=value.")
@no_progress_option
def run(
    recipe: str | None, list_: bool, workdir: Path | None, dry_run: bool, start_from: str | None,
    sets,
) -> None:  # fmt: skip
    """Run the pipeline RECIPE, resuming where it stopped.

    RECIPE is a YAML file, or the name of a shipped recipe (`avprep run --list`
    shows them; e.g. synthav, flickr-test, vggss-test).

    \b
    Examples:
      avprep run synthav --dry-run
      avprep run vggss-test --workdir data/vggss-test
      avprep run my-recipe.yaml --from extract --set profile=sspl
    """
    from avprep.clikit import progress_wanted
    from avprep.shipped import recipe_names, recipe_path

    if list_:
        for name in recipe_names():
            click.echo(f"{name:<22} {load_pipeline(recipe_path(name)).description}".rstrip())
        return
    if recipe is None:
        raise click.UsageError("give a RECIPE (a YAML file or a shipped name, see --list)")
    pipe = load_pipeline(recipe_path(recipe))
    workdir = workdir or Path("data") / pipe.name
    overrides = _overrides(sets)
    rows = plan(pipe, workdir, overrides)
    click.echo(f"pipeline {pipe.name}: {pipe.description}".rstrip(": "))
    click.echo(f"workdir  {workdir}")
    for i, (stage, described, status) in enumerate(rows, 1):
        click.echo(f"{i:>2}. {stage.name:<14} {status:<8} {described}")
    if dry_run:
        return
    results = run_pipeline(
        pipe, workdir, overrides=overrides, start_from=start_from, echo=click.echo,
        progress=progress_wanted(),
    )  # fmt: skip
    click.echo("summary:")
    for name, outcome, seconds in results:
        click.echo(f"  {name:<14} {outcome:<8} {seconds:8.1f} s")
