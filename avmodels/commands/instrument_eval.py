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


def evaluate_instrument_model(
    model_file: str,
    data: list[str],
    coco: str,
    video_ids: str | None,
    *,
    mode: str = "class",
    device: str = "auto",
    batch_size: int = 32,
    allow_missing: bool = False,
    report_dir: str | None = None,
    progress: bool = True,
):
    """Per-class maps of a model (``class_maps``) on a store of ``avprep pairs`` rows, scored.

    Only the rows of frames the metric scores (two instruments) are run. Maps are
    keyed ``<ytid>/<second>/<category>`` (category = the model's class index, which
    must follow normav.json's category ids: train with the 15 tags of the pickles).
    """
    import torch
    from tqdm import tqdm

    from avmodels.data import MethodDataset, make_loader, open_sources
    from avmodels.engine.checkpoint import build_model
    from avmodels.engine.distributed import pick_device
    from avmodels.metrics.mssl import evaluate_instrument, key_of_pair, read_instrument_gt
    from avprep.errors import InputError
    from avprep.recipes.audioset_instrument import read_video_ids

    if not video_ids:
        raise ConfigError("--benchmark audioset-instrument needs --video-ids (val_audio.pkl)")
    gt = read_instrument_gt(coco, read_video_ids(video_ids))
    wanted = {f.key for f in gt.two_source()}
    method, info = build_model(model_file, pick_device(device))
    if mode == "class" and not hasattr(method, "class_maps"):
        raise ConfigError(f"{info['method']} has no per-class maps: use --mode agnostic")
    sources = open_sources(data, method.required_inputs())
    rows = [i for i, cid in enumerate(sources.ids) if _frame_of(cid) in wanted]
    if not rows:
        raise InputError(
            "no row of the data is a scored frame: pack `avprep pairs` output (<ytid>.tNN ids)"
        )
    ds = MethodDataset(sources, method.sample_transform(train=False), rows)
    maps: dict[str, np.ndarray] = {}
    dev = next(method.parameters()).device
    method.eval()
    with torch.no_grad():
        for batch in tqdm(make_loader(ds, batch_size=batch_size), disable=not progress):
            ids = list(batch["clip_id"])
            batch = method.batch_to_device(batch, dev, False)
            if mode == "class":
                out = method.class_maps(batch).float().cpu().numpy()
                for cid, per_class in zip(ids, out):
                    for k, m in enumerate(per_class):
                        maps[key_of_pair(cid, k)] = m
            else:
                out = method.localization_map(batch).float().cpu().numpy()
                for cid, m in zip(ids, out):
                    maps[key_of_pair(cid)] = m
    result = evaluate_instrument(maps, gt, mode, allow_missing=allow_missing)
    if report_dir:
        from pathlib import Path

        from avprep.atomic import write_json

        Path(report_dir).mkdir(parents=True, exist_ok=True)
        write_json(Path(report_dir) / "metrics.json", {**result.to_dict(), "model": model_file})
    return result


def _frame_of(clip_id: str) -> str | None:
    ytid, sep, index = clip_id.rpartition(".t")
    return f"{ytid}/{int(index)}" if sep and index.isdigit() else None
