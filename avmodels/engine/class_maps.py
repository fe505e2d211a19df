"""A model's maps keyed for Multi-Source's class-aware metric, and their scores.

One implementation for ``avmodels eval --benchmark audioset-instrument``,
``avmodels evaluate-maps --benchmark audioset-instrument`` and the mssl demo:
the model is run on the store rows whose frame the ground truth scores, its
maps are keyed ``<ytid>/<second>/<category>`` (``class`` mode: one map per
class, ``class_maps``) or ``<ytid>/<second>`` (``agnostic``: the model's
map), and :func:`avmodels.metrics.mssl.evaluate_instrument` scores them.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avprep.errors import ConfigError, InputError

#: a store row's clip id -> the scored frame it shows ``(ytid, second)``, or None
FrameOf = Callable[[str], "tuple[str, int] | None"]


def pair_frame(clip_id: str) -> tuple[str, int] | None:
    """The frame of an ``avprep pairs`` row (``<ytid>.tNN`` -> ``(ytid, NN)``)."""
    from avprep.frame_pairs import split_pair_id

    return split_pair_id(clip_id)


def model_maps(
    method: Any,
    data: Sequence[str | Path],
    frame_of: FrameOf,
    wanted: set[str],
    *,
    mode: str = "class",
    batch_size: int = 32,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """The maps of ``method`` (built, on its device) on the rows whose frame is in ``wanted``.

    ``wanted`` holds frame keys ``<ytid>/<second>``; a row's frame is ``frame_of(clip id)``.
    """
    import torch
    from tqdm import tqdm

    from avmodels.data import MethodDataset, make_loader, open_sources
    from avmodels.metrics.mssl import map_key

    if mode == "class" and not hasattr(method, "class_maps"):
        raise ConfigError(f"{method.name} has no per-class maps: use --mode agnostic")
    sources = open_sources([str(d) for d in data], method.required_inputs())
    frames = {}
    for i, cid in enumerate(sources.ids):
        f = frame_of(cid)
        if f is not None and map_key(*f) in wanted:
            frames[i] = f
    if not frames:
        raise InputError(
            "no row of the data is a scored frame: pack `avprep pairs` output (<ytid>.tNN ids)"
        )
    by_id = {sources.ids[i]: f for i, f in frames.items()}
    ds = MethodDataset(sources, method.sample_transform(train=False), sorted(frames))
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
                        maps[map_key(*by_id[cid], k)] = m
            else:
                out = method.localization_map(batch).float().cpu().numpy()
                for cid, m in zip(ids, out):
                    maps[map_key(*by_id[cid])] = m
    return maps


def evaluate_model_on(
    model_file: str | Path,
    data: Sequence[str | Path],
    gt: Any,
    *,
    frame_of: FrameOf = pair_frame,
    mode: str = "class",
    device: str = "auto",
    batch_size: int = 32,
    allow_missing: bool = False,
    progress: bool = False,
):
    """Score a model file against an :class:`~avmodels.metrics.mssl.InstrumentGT`."""
    from avmodels.engine.checkpoint import build_model
    from avmodels.engine.distributed import pick_device
    from avmodels.metrics.mssl import evaluate_instrument

    method, _ = build_model(model_file, pick_device(device))
    wanted = {f.key for f in gt.two_source()}
    maps = model_maps(
        method, data, frame_of, wanted, mode=mode, batch_size=batch_size, progress=progress
    )
    return evaluate_instrument(maps, gt, mode, allow_missing=allow_missing)


def instrument_gt(coco: str | Path, video_ids: str | None):
    """AudioSet-instrument's ground truth (``normav.json`` + the sorted video ids)."""
    from avmodels.metrics.mssl import read_instrument_gt
    from avprep.recipes.audioset_instrument import read_video_ids

    if not video_ids:
        raise ConfigError(
            "--benchmark audioset-instrument needs --video-ids (val_audio.pkl or a list of "
            "its ids): normav.json numbers its frames by their sorted order"
        )
    return read_instrument_gt(coco, read_video_ids(video_ids))


def evaluate_instrument_model(
    model_file: str | Path,
    data: Sequence[str | Path],
    coco: str | Path,
    video_ids: str | None,
    *,
    mode: str = "class",
    device: str = "auto",
    batch_size: int = 32,
    allow_missing: bool = False,
    report_dir: str | Path | None = None,
    progress: bool = True,
):
    """A model on a store of ``avprep pairs`` rows, scored on AudioSet-instrument.

    Only the rows of frames the metric scores (two instruments) are run. The
    category of a map is the model's class index, which must follow
    normav.json's category ids (train with the 15 tags of the pickles).
    """
    from avprep.atomic import write_json

    gt = instrument_gt(coco, video_ids)
    result = evaluate_model_on(
        model_file, data, gt, mode=mode, device=device, batch_size=batch_size,
        allow_missing=allow_missing, progress=progress,
    )  # fmt: skip
    if report_dir:
        Path(report_dir).mkdir(parents=True, exist_ok=True)
        write_json(
            Path(report_dir) / "metrics.json", {**result.to_dict(), "model": str(model_file)}
        )
    return result


def score_instrument_maps(
    maps: Mapping[str, np.ndarray],
    coco: str | Path,
    video_ids: str | None,
    mode: str,
    *,
    allow_missing: bool = False,
    per_sample: str | Path | None = None,
):
    """Saved maps (``evaluate-maps``) scored on AudioSet-instrument; per-frame IoUs to a CSV."""
    from avmodels.metrics.mssl import evaluate_instrument
    from avprep.atomic import atomic_path

    gt = instrument_gt(coco, video_ids)
    result = evaluate_instrument(maps, gt, mode, allow_missing=allow_missing)
    if per_sample:
        with atomic_path(per_sample) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["frame", "iou"])
            writer.writerows(result.per_frame)
    return result
