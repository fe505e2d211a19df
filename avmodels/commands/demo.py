"""``python -m avmodels.demo``'s options: the SynthAV demo (see avmodels/demo.py, docs/demo.md)."""

from __future__ import annotations

from pathlib import Path

import click

from avmodels.demo import DEFAULT_METHOD, RECIPES, DemoSettings, run_demo


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--method",
    default=DEFAULT_METHOD,
    type=click.Choice(sorted(RECIPES)),
    help="Method to train (the default is the one tuned to learn on CPU in minutes).",
)
@click.option("--clips", default=DemoSettings.clips, type=click.IntRange(10), help="SynthAV clips.")
@click.option("--seed", default=0, type=int, help="Seed of the SynthAV set and of training.")
@click.option("--out", default="demo", type=click.Path(file_okay=False), help="Output folder.")
@click.option(
    "--minutes",
    default=DemoSettings.minutes,
    type=float,
    help="Training budget: fewer epochs when the plan would not fit on this machine "
    "(0: no budget).",
)
@click.option("--epochs", default=None, type=click.IntRange(1), help="Epochs [default: recipe's].")
@click.option("--jobs", "-j", default=2, type=click.IntRange(1), help="Parallel workers.")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra training config override, e.g. --set train.batch_size=16 (repeatable).",
)
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("-v", "--verbose", count=True, help="More log output.")
def main_cmd(method, clips, seed, out, minutes, epochs, jobs, sets, no_progress, verbose) -> None:
    """Generate SynthAV, prepare it with avprep, train and evaluate a model, write a report."""
    from avprep.clikit import setup_logging

    setup_logging(verbose)
    settings = DemoSettings(
        method=method,
        clips=clips,
        seed=seed,
        out=Path(out),
        minutes=minutes or None,
        epochs=epochs,
        jobs=jobs,
        progress=not no_progress,
        extra_sets=tuple(sets),
    )
    run_demo(settings)
