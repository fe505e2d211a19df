"""How ``evaluate-maps`` and ``eval`` print Multi-Source's AudioSet-instrument scores.

The computation is :mod:`avmodels.engine.class_maps`.
"""

from __future__ import annotations

import json

import click


def echo_instrument_result(result, mode: str, as_json: bool) -> dict:
    """Print an :class:`~avmodels.metrics.mssl.InstrumentResult` (table or JSON)."""
    summary = result.to_dict()
    if as_json:
        click.echo(json.dumps(summary))
        return summary
    rows = [
        ("benchmark", f"audioset-instrument ({mode})"),
        ("frames", f"{result.n} with exactly two instruments"),
        ("cIoU", f"{result.ciou:.4f}"),
        ("AUC", f"{result.auc:.4f}"),
        ("mean IoU", f"{result.mean_iou:.4f}"),
    ]
    if result.missing:
        rows.append(("missing", f"{len(result.missing)} maps (first {result.missing[0]})"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")
    return summary
