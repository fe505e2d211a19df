"""Which model a run keeps, and the record of how it was chosen.

``--val`` / ``--val-fraction`` select on held-out training data (our
default practice). ``--select-on-test`` reproduces the papers' practice:
the model is scored on the test set after every epoch and the best kept. As
the originals do it, that scoring uses the method's own metric preset
(SSPL: min-max then the fixed 0.5 threshold; SSL-TIE, HTF: their median
rules) unless ``eval.preset`` says otherwise, and the test set is also
evaluated once before training (SSPL's ``evaluate(..., 0)``: logged, never
saved, since its ``checkpoint`` runs after epochs only). The run record
(``run.json`` and ``summary.json``, key ``selection``) says which data,
metric and preset chose the model.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from avprep.errors import ConfigError

if TYPE_CHECKING:
    from avmodels.engine.config_sections import EvalConfig, RunConfig

# The preset that reproduces each method's own evaluation code (avmodels.metrics.presets).
METHOD_PRESETS = {
    "sspl": "sspl",
    "sspl-pcm": "sspl",
    "ssl-tie": "ssltie",
    "htf": "htf",
}


def method_preset(method: str) -> str | None:
    """The metric preset named after ``method``'s paper, or None (Multi-Source: none)."""
    return METHOD_PRESETS.get(method)


def apply_selection(
    method: str, cfg: RunConfig, info: dict[str, Any]
) -> tuple[RunConfig, dict[str, Any]]:
    """(config, run record) with the selection settled and recorded (idempotent)."""
    on_test = bool(info.get("select_on_test"))
    preset_source = "eval.preset" if cfg.eval.preset else "metrics default"
    if on_test and not cfg.eval.preset and method_preset(method):
        cfg = cfg.with_eval(preset=method_preset(method))
        preset_source = f"method {method}'s own (--select-on-test)"
    ev = cfg.eval
    if info.get("val"):
        data = "--val"
    elif cfg.data.val_fraction:
        data = "--val-fraction (held out of --data)"
    elif on_test:
        data = "the TEST set (--select-on-test, as the papers did: optimistic scores)"
    else:
        data = "none (the last epoch's model)"
    record = info.get("selection") or {
        "data": data,
        "metric": ev.select,
        "preset": ev.preset or "default",
        "preset_source": preset_source,
        "before_training": on_test,
    }
    return cfg, {**info, "selection": record}


def evaluate_before_training(info: dict[str, Any], resumed: bool) -> bool:
    """The original's epoch-0 evaluation: with --select-on-test, on a fresh run."""
    return bool(info.get("select_on_test")) and not resumed


# Which way each selection metric improves (``eval.select``).
SELECT_HIGHER = {"ciou": True, "auc": True, "pointing": True, "mean_iou": True, "loss": False}


def select_key(ev: EvalConfig, has_anns: bool) -> str:
    """The validation figure that picks the kept model (``eval.select``, ``auto`` resolved;
    its choices were checked with the config: ``auto`` or a key of :data:`SELECT_HIGHER`)."""
    key = ev.select
    if key == "auto":
        return "ciou" if has_anns else "loss"
    if key != "loss" and not has_anns:
        raise ConfigError(f"eval.select={key} needs validation annotations (--annotations)")
    return key


def update_selection(
    progress: dict[str, Any],
    score: float | None,
    epoch: int,
    *,
    higher: bool,
    min_delta: float = 0.0,
    patience: int | None = None,
) -> bool:
    """Record one validation score; True if it is the new best.

    A missing or NaN score counts as no improvement. After ``patience``
    validations in a row without improvement, ``progress["stopped_early"]``
    is set.
    """
    best = progress.get("best")
    ok = score is not None and not math.isnan(score)
    better = ok and (
        best is None or (score > best + min_delta if higher else score < best - min_delta)
    )
    if better:
        progress.update(best=score, best_epoch=epoch, bad_validations=0)
        return True
    progress["bad_validations"] = int(progress.get("bad_validations", 0)) + 1
    if patience is not None and progress["bad_validations"] >= int(patience):
        progress["stopped_early"] = True
    return False
