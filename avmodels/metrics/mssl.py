"""Multi-Source's own evaluations: its Flickr ground truth and its AudioSet-instrument metric.

**Flickr** (presets ``mssl``, ``mssl-main``, ``mssl-calmetric`` in
:mod:`avmodels.metrics.presets`). All three scripts score on a 256 x 256 grid
and draw the ground truth the same way (``utils/gtdata.py``,
``new/testdata.py``): every box of every annotator adds 1 on
``G[ymin-1:ymax-1, xmin-1:xmax-1]`` of the integer 256-pixel coordinates
(shifted one pixel up and left; a 0 coordinate becomes -1 and wraps as a numpy
slice, which empties the box along that axis), then ``G = min(G/2, 1)``. That
rule is the ``mssl`` pixel rule registered here.

**AudioSet-instrument** (``utils/evaluate.py`` ``class_eval``): frames that
carry boxes of exactly two instrument categories in ``normav.json`` (COCO:
``bbox = [x, y, w, h]`` normalised; ``image_id = 10 * video + second``, the
video being the index in the sorted ids of ``val_audio.pkl``). For each of the
two categories: the ground truth is 1 on ``G[int(256 y):int(256 y + 256 h),
int(256 x):int(256 x + 256 w)]`` of its boxes; the category's own map is
resized to 256 x 256 with ``cv2.resize`` (bilinear), negatives set to 0,
foreground ``> 0.1 * max``; ``IoU = |F & G| / (|G| + |F \\ G|)``. The frame's
score is the mean over its two categories; cIoU = share of frames >= 0.5, AUC
as everywhere. ``eval_agnostic`` (mode ``agnostic``) scores one map per frame
against the union of both categories' boxes.

Maps for it come keyed ``"<ytid>/<second>/<category_id>"`` (class-aware) or
``"<ytid>/<second>"`` (agnostic) in an ``.npz`` (``avmodels evaluate-maps
--benchmark audioset-instrument``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from avmodels.metrics.curves import ciou_from_ious, mean_iou, success_curve, trapezoid_area
from avprep.annotations.gtmap import (
    PIXEL_RULES,
    PixelRange,
    Size,
    _finite_boxes,
    _flickr_ints,
    _ranges_from_ints,
)
from avprep.annotations.model import Annotation
from avprep.errors import InputError

GRID = 256
MODES = ("class", "agnostic")
INSTRUMENT_BENCHMARK = "audioset-instrument"  # the --benchmark name of this protocol


# -- the Flickr pixel rule ---------------------------------------------------------------------
def _mssl_rule(ann: Annotation, size: Size) -> list[PixelRange]:
    """Box ranges ``[v-1 : v'-1]`` of the integer coordinates (Python slice semantics)."""
    h, w = size
    if ann.benchmark == "flickr":
        ints = [
            (int(w * x0 / 256), int(h * y0 / 256), int(w * x1 / 256), int(h * y1 / 256))
            for x0, y0, x1, y1 in _flickr_ints(ann)
        ]
    else:
        ints = [
            (int(w * x0), int(h * y0), int(w * x1), int(h * y1))
            for x0, y0, x1, y1 in _finite_boxes(ann.raw_normalised())
        ]
    shifted = [(x0 - 1, y0 - 1, x1 - 1, y1 - 1) for x0, y0, x1, y1 in ints]
    return _ranges_from_ints(shifted, size)


if "mssl" not in PIXEL_RULES:
    PIXEL_RULES.add("mssl", _mssl_rule)


# -- AudioSet-instrument ground truth ------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class InstrumentFrame:
    """One annotated frame: its video id, second, and boxes (x, y, w, h) per category id."""

    ytid: str
    second: int
    boxes: dict[int, list[tuple[float, float, float, float]]]

    @property
    def key(self) -> str:
        return f"{self.ytid}/{self.second}"


@dataclasses.dataclass(frozen=True)
class InstrumentGT:
    frames: list[InstrumentFrame]
    categories: dict[int, str]

    def two_source(self) -> list[InstrumentFrame]:
        """The frames the paper scores: boxes of exactly two categories."""
        return [f for f in self.frames if len(f.boxes) == 2]


def read_instrument_gt(coco: str | Path, video_ids: Sequence[str]) -> InstrumentGT:
    """``normav.json`` + the ids of ``val_audio.pkl`` -> frames with per-category boxes.

    ``video_ids`` are sorted here as the original sorts the pickle's keys.
    """
    try:
        data = json.loads(Path(coco).read_text())
    except FileNotFoundError:
        raise InputError(f"annotations not found: {coco}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{coco}: invalid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise InputError(f"{coco}: not a COCO file (no 'annotations' list)")
    keys = sorted(str(v) for v in video_ids)
    cats = {int(c["id"]): str(c["name"]) for c in data.get("categories", []) if "id" in c}
    by_image: dict[int, dict[int, list[tuple[float, float, float, float]]]] = {}
    for n, item in enumerate(data["annotations"]):
        try:
            image, cat = int(item["image_id"]), int(item["category_id"])
            box = tuple(float(v) for v in item["bbox"])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{coco}: annotation {n} lacks image_id/category_id/bbox") from None
        if len(box) != 4 or not all(math.isfinite(v) for v in box):
            raise InputError(f"{coco}: annotation {n} has a bad bbox {item['bbox']!r}")
        by_image.setdefault(image, {}).setdefault(cat, []).append(box)  # type: ignore[arg-type]
    frames = []
    for image in sorted(by_image):
        vid, second = divmod(image, 10)
        if vid >= len(keys):
            raise InputError(
                f"{coco}: image {image} points at video {vid}, but only {len(keys)} ids were given "
                "(use the val_audio.pkl these annotations belong to)"
            )
        frames.append(InstrumentFrame(keys[vid], second, by_image[image]))
    return InstrumentGT(frames, cats)


def _gt_mask(boxes: Sequence[tuple[float, float, float, float]]) -> np.ndarray:
    g = np.zeros((GRID, GRID), dtype=bool)
    for b in boxes:
        x, y, w, h = (v * GRID for v in b)  # the original scales first, then adds
        g[int(y) : int(y + h), int(x) : int(x + w)] = True
    return g


def _frame_iou(infer: np.ndarray, gt: np.ndarray) -> float:
    up = cv2.resize(np.ascontiguousarray(infer), (GRID, GRID))
    up[up < 0] = 0
    fg = up > 0.1 * np.max(up)
    inter = np.count_nonzero(gt & fg)
    union = np.count_nonzero(gt) + np.count_nonzero(~gt & fg)
    return inter / union if union else float("nan")


@dataclasses.dataclass
class InstrumentResult:
    mode: str
    n: int
    ciou: float
    auc: float
    mean_iou: float
    missing: list[str]
    per_frame: list[tuple[str, float]]
    curve: list[float]

    def to_dict(self) -> dict[str, Any]:
        def clean(v: float) -> float | None:
            return None if v != v else float(v)

        return {
            "benchmark": INSTRUMENT_BENCHMARK,
            "mode": self.mode,
            "n": self.n,
            "ciou": clean(self.ciou),
            "auc": clean(self.auc),
            "mean_iou": clean(self.mean_iou),
            "n_missing": len(self.missing),
            "missing": self.missing[:20],
            "curve": [clean(v) for v in self.curve],
        }


def map_key(ytid: str, second: int, category: int | None = None) -> str:
    """The ``.npz`` key of a map: ``<ytid>/<second>/<category>`` or ``<ytid>/<second>``."""
    return f"{ytid}/{second}" if category is None else f"{ytid}/{second}/{category}"


def key_of_pair(pair_id: str, category: int | None = None) -> str:
    """The map key of a store row made by ``avprep pairs`` (``<ytid>.tNN``)."""
    from avprep.frame_pairs import split_pair_id

    parts = split_pair_id(pair_id)
    if parts is None:
        raise InputError(f"{pair_id!r} is not a pair id <ytid>.tNN (avprep pairs)")
    return map_key(parts[0], parts[1], category)


def evaluate_instrument(
    maps: Mapping[str, np.ndarray],
    gt: InstrumentGT,
    mode: str = "class",
    *,
    allow_missing: bool = False,
) -> InstrumentResult:
    """The class-aware (or agnostic) AudioSet-instrument scores of ``maps``."""
    if mode not in MODES:
        raise InputError(f"mode {mode!r}; valid: {', '.join(MODES)}")
    frames = gt.two_source()
    scored: list[tuple[str, float]] = []
    missing: list[str] = []
    for f in frames:
        if mode == "class":
            keys = [map_key(f.ytid, f.second, c) for c in f.boxes]
            if any(k not in maps for k in keys):
                missing.extend(k for k in keys if k not in maps)
                continue
            ious = [
                _frame_iou(_as_2d(maps[k], k), _gt_mask(f.boxes[c])) for k, c in zip(keys, f.boxes)
            ]
            scored.append((f.key, float(sum(ious) / len(ious))))
        else:
            key = map_key(f.ytid, f.second)
            if key not in maps:
                missing.append(key)
                continue
            union = [b for boxes in f.boxes.values() for b in boxes]
            scored.append((f.key, _frame_iou(_as_2d(maps[key], key), _gt_mask(union))))
    if missing and not allow_missing:
        raise InputError(
            f"{len(missing)} maps missing for the {len(frames)} two-instrument frames "
            f"(first: {missing[0]!r}); pass --allow-missing to score the others"
        )
    if not scored:
        raise InputError("no two-instrument frame has its maps: nothing to score")
    ious = np.array([s for _, s in scored], dtype=np.float64)
    curve = success_curve(ious)
    return InstrumentResult(
        mode=mode,
        n=len(scored),
        ciou=ciou_from_ious(ious),
        auc=trapezoid_area(curve),
        mean_iou=mean_iou(ious),
        missing=missing,
        per_frame=scored,
        curve=[float(v) for v in curve],
    )


def _as_2d(value: Any, key: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.dtype.kind not in "fiu" or min(arr.shape) < 1:
        raise InputError(f"map {key!r} must be a non-empty 2-D numeric array, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError(f"map {key!r} holds NaN or infinite values")
    return arr.astype(np.float32) if arr.dtype.kind != "f" else arr.copy()
