"""Score a set of localisation maps against ground truth: :func:`evaluate`.

Vectorised: maps are processed in small same-shape chunks (upsample, normalise,
median by ``np.partition``, binarise, exact integer overlap counts against the
doubled ground truth), chunks run on a few threads (cv2, torch and numpy release
the GIL). 5,158 maps take well under the time the originals' per-sample loop does
(see ``benchmarks/results/metrics.md``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from avmodels.metrics.curves import (
    THRESHOLDS,
    ciou_from_ious,
    iou_from_counts,
    mean_iou,
    success_curve,
    trapezoid_area,
)
from avmodels.metrics.presets import DEFAULT_PRESET, Preset, binarise, get_preset
from avprep.annotations.gtmap import gt_map_x2
from avprep.annotations.model import Annotation
from avprep.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

CHUNK = 32


@dataclasses.dataclass
class EvalResult:
    """Aggregates and per-sample scores of one evaluation."""

    preset: str
    n: int
    ciou: float
    auc: float
    mean_iou: float
    pointing: float
    missing: list[str]
    extra: list[str]
    per_sample: pd.DataFrame
    curve: list[float]

    @property
    def ap50(self) -> float:
        """EZ-VSL's name for cIoU."""
        return self.ciou

    @property
    def n_nan(self) -> int:
        return int(self.per_sample["iou"].isna().sum())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (NaN becomes ``None``)."""

        def clean(v: float) -> float | None:
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

        return {
            "preset": self.preset,
            "n": self.n,
            "ciou": clean(self.ciou),
            "ap50": clean(self.ciou),
            "auc": clean(self.auc),
            "mean_iou": clean(self.mean_iou),
            "pointing": clean(self.pointing),
            "n_nan": self.n_nan,
            "missing": list(self.missing),
            "n_missing": len(self.missing),
            "n_extra": len(self.extra),
            "thresholds": list(THRESHOLDS),
            "curve": [clean(v) for v in self.curve],
        }


def as_map(value: Any, clip_id: str) -> np.ndarray:
    """A 2-D finite float map, or an InputError naming the clip."""
    arr = np.asarray(value)
    if arr.ndim > 2:
        arr = arr.squeeze()
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputError(f"map of {clip_id!r} has shape {np.shape(value)}; expected a 2-D array")
    if arr.dtype.kind not in "fiub":
        raise InputError(f"map of {clip_id!r} has non-numeric dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError(f"map of {clip_id!r} holds NaN or infinite values")
    return arr


@dataclasses.dataclass
class _Scores:
    inter: np.ndarray
    union: np.ndarray
    fg: np.ndarray
    gt: np.ndarray
    hit: np.ndarray
    constant: np.ndarray


def score_chunk(maps: Sequence[np.ndarray], anns: Sequence[Annotation], preset: Preset) -> _Scores:
    """Overlap counts of same-shape ``maps`` against their annotations under ``preset``."""
    fgmask, u = binarise(maps, preset)
    k = len(maps)
    g2 = np.empty((k, preset.size, preset.size), dtype=np.uint8)
    for i, a in enumerate(anns):
        gt_map_x2(a, preset.size, preset.pixel_rule, out=g2[i])
    flat_f = fgmask.reshape(k, -1)
    flat_g = g2.reshape(k, -1)
    # Exact integer counts: G takes values 0, 0.5, 1, so 2G is 0, 1, 2 and
    # sum(F*2G) = |F & G>0| + |F & G=1|. Row by row: np.count_nonzero without
    # an axis is several times faster than with one.
    inside_mask = flat_g > 0
    full_mask = flat_g == 2
    both = flat_f & inside_mask
    fg = np.array([np.count_nonzero(r) for r in flat_f], dtype=np.int64)
    inside = np.array([np.count_nonzero(r) for r in both], dtype=np.int64)
    np.logical_and(flat_f, full_mask, out=both)
    inter2 = inside + np.array([np.count_nonzero(r) for r in both], dtype=np.int64)
    gt2 = np.array(
        [np.count_nonzero(a) + np.count_nonzero(b) for a, b in zip(inside_mask, full_mask)],
        dtype=np.int64,
    )
    flat_u = u.reshape(k, -1)
    peak = flat_u.argmax(axis=1)
    constant = flat_u.max(axis=1) == flat_u.min(axis=1)
    hit = (flat_g[np.arange(k), peak] > 0) & ~constant
    return _Scores(
        inter=inter2 * 0.5,
        union=gt2 * 0.5 + (fg - inside),
        fg=fg,
        gt=gt2 * 0.5,
        hit=hit,
        constant=constant,
    )


def _chunks(ids: list[str], maps: dict[str, np.ndarray], size: int) -> list[list[str]]:
    by_shape: dict[tuple[int, ...], list[str]] = {}
    for cid in ids:
        by_shape.setdefault(maps[cid].shape, []).append(cid)
    out = []
    for group in by_shape.values():
        out.extend(group[i : i + size] for i in range(0, len(group), size))
    return out


def evaluate(
    maps: Mapping[str, np.ndarray],
    annotations: Mapping[str, Annotation],
    preset: str | Preset = DEFAULT_PRESET,
    *,
    allow_missing: bool = False,
    workers: int | None = None,
) -> EvalResult:
    """Score ``maps`` (clip id -> 2-D map, any resolution) against ``annotations``.

    Every annotated clip must have a map unless ``allow_missing`` (then the
    missing ids are listed in the result and the rest is scored). Maps without
    an annotation are ignored (listed in ``extra``).
    """
    import pandas as pd

    p = get_preset(preset)
    missing = [cid for cid in annotations if cid not in maps]
    extra = sorted(cid for cid in maps if cid not in annotations)
    if missing and not allow_missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise InputError(
            f"{len(missing)} annotated clips have no map ({shown}); "
            "pass --allow-missing to score the others"
        )
    if extra:
        log.info("%d maps have no annotation and are ignored", len(extra))
    ids = [cid for cid in annotations if cid in maps]
    if not ids:
        raise InputError("no clip has both a map and an annotation: nothing to score")
    arrays = {cid: as_map(maps[cid], cid) for cid in ids}
    chunks = _chunks(ids, arrays, CHUNK)

    def run(chunk: list[str]) -> _Scores:
        return score_chunk([arrays[c] for c in chunk], [annotations[c] for c in chunk], p)

    n_workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    if n_workers > 1 and len(chunks) > 1:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            results = list(pool.map(run, chunks))
    else:
        results = [run(c) for c in chunks]

    order = [cid for chunk in chunks for cid in chunk]
    cat = {
        f.name: np.concatenate([getattr(r, f.name) for r in results])
        for f in dataclasses.fields(_Scores)
    }
    iou = iou_from_counts(cat["inter"], cat["union"], zero_over_zero=p.zero_over_zero)
    frame = pd.DataFrame(
        {
            "clip_id": order,
            "iou": iou,
            "pointing_hit": cat["hit"],
            "inter": cat["inter"],
            "union": cat["union"],
            "fg_pixels": cat["fg"],
            "gt_area": cat["gt"],
            "constant_map": cat["constant"],
        }
    )
    # Back to annotation order, so per-sample rows follow the input.
    frame = frame.set_index("clip_id").loc[ids].reset_index()
    ious = frame["iou"].to_numpy()
    curve = success_curve(ious)
    return EvalResult(
        preset=p.name,
        n=len(ids),
        ciou=ciou_from_ious(ious),
        auc=trapezoid_area(curve),
        mean_iou=mean_iou(ious),
        pointing=float(frame["pointing_hit"].mean()),
        missing=missing,
        extra=extra,
        per_sample=frame,
        curve=[float(v) for v in curve],
    )
