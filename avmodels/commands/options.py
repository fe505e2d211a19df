"""Options shared by the avmodels commands, checked against the registries."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from avmodels.steps import model_file_of  # noqa: F401 - the commands' import path
from avprep.clikit import choice_option


def preset_option(*decls: str, **kw: Any) -> Callable:
    """``--preset``: one of the metric presets (:data:`avmodels.metrics.presets.PRESETS`)."""
    from avmodels.metrics.presets import PRESETS

    kw.setdefault("help", "Metric preset.")
    return choice_option(*(decls or ("--preset",)), names=PRESETS.names(), **kw)


def model_file_options(f: Callable) -> Callable:
    """``--run RUN_DIR`` | ``--ckpt MODEL_FILE``: the model a command reads (:func:`model_file_of`)."""
    f = click.option(
        "--ckpt",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        help="Model file (from training or `avmodels import`).",
    )(f)
    return click.option(
        "--run",
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        help="Run directory (uses best.pt, else final.pt).",
    )(f)


def model_set_option(f: Callable) -> Callable:
    """``--set KEY=VALUE`` (repeatable, as ``sets``): changes to a model file's config."""
    return click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="KEY=VALUE",
        help="Change the model file's config, e.g. htf.legacy_flow=false (keys checked as in train).",
    )(f)
