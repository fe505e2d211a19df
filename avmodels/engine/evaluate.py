"""Localisation maps of a model over a dataset, scored with ``avmodels.metrics``.

Used for validation during training and by ``avmodels eval``. With several
processes each one maps a slice of the clips and the maps are gathered, so
nothing is evaluated twice. A report folder gets ``metrics.json`` (the
aggregates, the preset, the model and data it came from), ``per_sample.csv``
(IoU, pointing hit per clip) and ``maps.npz`` (the raw maps, one array per
clip id, so ``avmodels evaluate-maps`` can re-score them with any preset).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from avmodels.data import MethodDataset, make_loader, open_sources
from avmodels.engine import amp as amp_mod
from avmodels.engine.distributed import DistEnv, gather_objects, pick_device
from avprep.atomic import atomic_path, write_json
from avprep.errors import InputError

log = logging.getLogger(__name__)


class _Slice(Dataset):
    def __init__(self, ds: Dataset, positions: Sequence[int]) -> None:
        self.ds, self.positions = ds, list(positions)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> Any:
        return self.ds[self.positions[i]]


def predict_maps(
    method: Any,
    dataset: MethodDataset,
    *,
    env: DistEnv | None = None,
    batch_size: int = 32,
    amp: str = "none",
    channels_last: bool = False,
    with_loss: bool = False,
    num_workers: int = 0,
    progress: bool = True,
) -> tuple[dict[str, np.ndarray], float | None]:
    """(clip id -> map as float32 numpy, mean validation loss or None) over ``dataset``."""
    env = env or DistEnv(device=next(method.parameters()).device)
    was_training = method.training
    method.eval()
    part = _Slice(dataset, range(env.rank, len(dataset), env.world_size))
    loader = make_loader(part, batch_size=batch_size, num_workers=num_workers)
    maps: dict[str, np.ndarray] = {}
    loss_sum, loss_n = 0.0, 0
    try:
        with torch.no_grad():
            bar = tqdm(loader, desc="maps", unit="batch", leave=False, disable=not progress)
            for batch in bar:
                ids = list(batch["clip_id"])
                batch = method.batch_to_device(batch, env.device, channels_last)
                with amp_mod.autocast(amp, env.device):
                    out, losses = method.evaluation_step(batch, with_loss)
                arr = out.detach().float().cpu().numpy()
                if arr.ndim != 3 or arr.shape[0] != len(ids):
                    raise InputError(
                        f"{type(method).__name__}.maps returned shape {arr.shape}; "
                        f"expected ({len(ids)}, h, w)"
                    )
                for cid, m in zip(ids, arr):
                    maps[cid] = m
                if losses is not None:
                    loss_sum += float(losses["loss"].detach().float()) * len(ids)
                    loss_n += len(ids)
    finally:
        method.train(was_training)
    if env.distributed:
        parts = gather_objects((maps, loss_sum, loss_n), env)
        maps = {k: v for p in parts for k, v in p[0].items()}
        loss_sum = sum(p[1] for p in parts)
        loss_n = sum(p[2] for p in parts)
    return maps, (loss_sum / loss_n if loss_n else None)


def score_maps(
    maps: Mapping[str, np.ndarray],
    annotations: Mapping[str, Any],
    preset: str | None = None,
    allow_missing: bool = False,
) -> Any:
    """``avmodels.metrics.evaluate`` on the clips that have both a map and an annotation."""
    from avmodels import metrics

    return metrics.evaluate(
        maps, annotations, preset or metrics.DEFAULT_PRESET, allow_missing=allow_missing
    )


def load_annotations(path: str | os.PathLike, benchmark: str) -> dict[str, Any]:
    from avprep.annotations import load_annotations as load

    return load(path, benchmark)


def write_report(
    report_dir: str | os.PathLike,
    result: Any,
    maps: Mapping[str, np.ndarray],
    meta: Mapping[str, Any],
) -> dict[str, Path]:
    """``metrics.json``, ``per_sample.csv`` and ``maps.npz`` in ``report_dir``."""
    folder = Path(report_dir)
    folder.mkdir(parents=True, exist_ok=True)
    summary = {**result.to_dict(), **dict(meta)}
    paths = {"metrics": write_json(folder / "metrics.json", summary)}
    with atomic_path(folder / "per_sample.csv") as tmp:
        result.per_sample.to_csv(tmp, index=False)
    paths["per_sample"] = folder / "per_sample.csv"
    with atomic_path(folder / "maps.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{k: np.asarray(v, np.float32) for k, v in maps.items()})
    paths["maps"] = folder / "maps.npz"
    return paths


def _scored_clips(
    sources: Any, anns: dict[str, Any], ids: Sequence[str] | None, allow_missing: bool
) -> tuple[list[int] | None, dict[str, Any], list[str]]:
    """(rows to read or None for all, annotations to score, annotated clips not in the data).

    With ``ids``: exactly those clips, each in the data (and annotated unless
    ``allow_missing``). Without: the annotated clips the data holds.
    """
    rows = None
    skipped: list[str] = []
    if ids is None:
        # by default: the annotated clips that are in the data (a store may hold a subset)
        present = set(sources.ids)
        skipped = [c for c in anns if c not in present]
        if skipped:
            anns = {c: a for c, a in anns.items() if c in present}
            log.warning(
                "scoring the %d annotated clips in the data; skipped %d annotated clips "
                "that are not in it (e.g. %s); --ids LIST scores a fixed list",
                len(anns), len(skipped), ", ".join(skipped[:3]),
            )  # fmt: skip
            if not anns:
                raise InputError(
                    f"none of the {len(skipped)} annotated clips is in the data: "
                    "are --data and --annotations of the same benchmark?"
                )
    if ids is not None:
        missing = [c for c in ids if c not in set(sources.ids)]
        if missing:
            raise InputError(f"{len(missing)} listed clips are not in the data, e.g. {missing[:3]}")
        rows = [sources.row_of(c) for c in ids]
        anns = {c: anns[c] for c in ids if c in anns}
        absent = [c for c in ids if c not in anns]
        if absent and not allow_missing:
            raise InputError(f"{len(absent)} listed clips have no annotation, e.g. {absent[:3]}")
    return rows, anns, skipped


def evaluate_model(
    model_file: str | os.PathLike,
    data: Sequence[str | os.PathLike],
    benchmark: str,
    annotations: str | os.PathLike,
    *,
    preset: str | None = None,
    ids: Sequence[str] | None = None,
    report_dir: str | os.PathLike | None = None,
    device: str = "auto",
    batch_size: int = 32,
    num_workers: int = 2,
    amp: str = "none",
    allow_missing: bool = False,
    progress: bool = True,
    sets: Sequence[str] = (),
    ids_from: str | os.PathLike | None = None,
    ids_source: str | None = None,
) -> tuple[Any, dict[str, np.ndarray]]:
    """Maps of the model in ``model_file`` over the ``data`` stores, scored.

    ``ids`` restricts the clips scored (a paper's subset); every listed clip
    must be in the data and the annotations. Without ``ids`` the annotated
    clips that are in the data are scored, and the others are counted
    (``n_skipped_not_in_data`` in the report) and named in a warning.
    ``sets``: ``--set key=value`` changes to the model file's config (checked
    as ``train`` checks them). ``ids_from``: the row ids of an SSPL-layout
    store kept in a separate file (one a line, row order).
    """
    from avmodels.engine.checkpoint import build_model
    from avmodels.engine.input_check import warn_if_extracted_otherwise

    dev = pick_device(device)
    amp = amp_mod.check_amp(amp, dev)
    method, info = build_model(model_file, dev, sets)
    sources = open_sources(data, method.required_inputs(), ids_csv=ids_from)
    warn_if_extracted_otherwise(sources, info, str(model_file))
    anns = load_annotations(annotations, benchmark)
    rows, anns, skipped = _scored_clips(sources, anns, ids, allow_missing)
    ds = MethodDataset(sources, method.sample_transform(train=False), rows)
    maps, _ = predict_maps(
        method,
        ds,
        batch_size=batch_size,
        amp=amp,
        num_workers=num_workers,
        progress=progress,
    )
    result = score_maps(maps, anns, preset, allow_missing=allow_missing)
    if report_dir is not None:
        meta = {
            "method": info["method"],
            "model_file": str(model_file),
            "data": [str(d) for d in data],
            "benchmark": benchmark,
            "annotations": str(annotations),
            "n_maps": len(maps),
            "set": list(sets),
            "map_shape": list(next(iter(maps.values())).shape) if maps else None,
            "n_skipped_not_in_data": len(skipped),
        }
        from avmodels.provenance import evaluation_record

        n_ids = None if ids is None else len(ids)
        meta.update(evaluation_record(model_file, info, ids_source=ids_source, n_ids=n_ids))
        if hasattr(method, "map_label"):  # e.g. EZ-VSL's "av+obj(alpha=0.4)" blend
            meta["map"] = method.map_label()
        write_report(report_dir, result, maps, meta)
    return result, maps


def evaluate_listed(
    run: str | os.PathLike | None,
    ckpt: str | os.PathLike | None,
    data: Sequence[str | os.PathLike],
    benchmark: str,
    annotations: str | os.PathLike,
    *,
    ids: str | None = None,
    **options: Any,
) -> tuple[Path, Any, list[str] | None]:
    """:func:`evaluate_model` as ``avmodels eval`` calls it: the model of ``--run`` or
    ``--ckpt``, and ``ids`` as ``--ids`` takes it (an id list file, a metadata registry
    name or ``a,b,c``; recorded as the report's id source).

    The call behind the command and the recipe step; returns the model file, the
    result and the ids read.
    """
    from avmodels.model_file import model_file_of
    from avprep.annotations.idlist import read_ids

    ids_list = read_ids(ids) if ids else None
    model = model_file_of(run, ckpt)
    result, _ = evaluate_model(
        model, list(data), benchmark, annotations, ids=ids_list, ids_source=ids, **options
    )
    return model, result, ids_list


def finite_or_none(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str)
