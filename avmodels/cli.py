"""The ``avmodels`` command line: train, evaluate and run localisation models.

Each subcommand lives in ``avmodels/commands/<name>.py`` and is imported only
when used (so ``--help`` is fast).
"""

from __future__ import annotations

import click

from avmodels import __version__
from avprep.clikit import LazyGroup, run_cli, setup_logging

COMMANDS = {
    "train": "avmodels.commands.train:train",
    "eval": "avmodels.commands.evaluate:eval_cmd",
    "evaluate-maps": "avmodels.commands.evaluate_maps:evaluate_maps",
    "localize": "avmodels.commands.localize:localize",
    "weights": "avmodels.commands.weights:weights",
    "import": "avmodels.commands.import_ckpt:import_ckpt",
    "baselines": "avmodels.commands.baselines:baselines",
    "methods": "avmodels.commands.methods:methods",
    "report": "avmodels.commands.report:report",
    "benchmark": "avmodels.commands.benchmark:benchmark",
    "pseudo-labels": "avmodels.commands.pseudo_labels:pseudo_labels",
    "ave-match": "avmodels.commands.ave_match:ave_match",
}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="avmodels")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def cli(verbose: int, debug: bool) -> None:
    """Train and evaluate visual sound source localisation models."""
    setup_logging(verbose, debug)


main = run_cli(cli, "avmodels")
