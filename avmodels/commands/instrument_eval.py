"""Multi-Source's AudioSet-instrument scores for ``evaluate-maps`` and ``eval``."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping

import click
import numpy as np

from avprep.errors import ConfigError


def score_instrument_maps(
    maps: Mapping[str, np.ndarray],
    coco: str,
    video_ids: str | None,
    mode: str,
    allow_missing: bool,
    as_json: bool,
    per_sample: str | None,
) -> dict:
    """Score ``maps`` against ``normav.json`` and print the result (table or JSON)."""
    from avmodels.metrics.mssl import evaluate_instrument, read_instrument_gt
    from avprep.atomic import atomic_path
    from avprep.recipes.audioset_instrument import read_video_ids

    if not video_ids:
        raise ConfigError(
            "--benchmark audioset-instrument needs --video-ids (val_audio.pkl or a list of "
            "its ids): normav.json numbers its frames by their sorted order"
        )
    gt = read_instrument_gt(coco, read_video_ids(video_ids))
    result = evaluate_instrument(maps, gt, mode, allow_missing=allow_missing)
    if per_sample:
        with atomic_path(per_sample) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["frame", "iou"])
            writer.writerows(result.per_frame)
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
