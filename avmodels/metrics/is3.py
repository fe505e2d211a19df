"""IS3 (Senocak et al., ICCV 2023 / TPAMI 2025): interactive synthetic sound sources.

Each IS3 image holds two objects; it appears twice, once with the sound of
each object (``<a>_<b>_<n>_<a>`` and ``<a>_<b>_<n>_<b>``). The metadata
``synthetic3240_bbox.json`` is a list of ``{"image", "audio", "gt_box"}``
with one box in 224-pixel coordinates; ``synthetic3240_seg.json`` has the
same rows with ``gt_box`` naming a mask image (and an ``offset`` field whose
meaning no public code defines). SSLalignment's ``test.py`` defines:

- **cIoU / AUC** with a *strict* ``p > t`` at the median element ``t``
  (EZ-VSL, on the same maps, uses ``>=``);
- **adaptive cIoU / AUC**: the threshold is the element ``n - |G|`` of the
  ascending sort (``|G|`` = ground-truth pixels, ``n // 2`` when the box is
  empty), again with ``>``, so it keeps at most ``|G| - 1`` pixels;
- **IIoU / IAUC** (interactive): a *pair* (the two samples of one image,
  grouped by the file stem without its last ``_`` field) counts at threshold
  ``x`` only when *both* samples reach IoU ``>= x``; the mean over pairs.

Boxes: ``int`` of each coordinate, ``G[y0:y1, x0:x1] = 1``. Maps are upsampled
and normalised by the family of the model (:data:`CONVENTIONS`):
``sslalignment`` (EZ-VSL/SLAVC/FNAC/ours: torch bilinear ``align_corners=True``,
``N(u)``) or ``sslalignment-lvs`` (LVS/SSL-TIE: cv2 bilinear, ``1 - N(-u)``).
``default`` (ours): our default preset's maps (min-max at the map's own
resolution, half-pixel bilinear), foreground ``> t`` or at the maximum, and an
adaptive threshold that keeps the ``|G|`` largest pixels (``>=`` at element
``n - |G|``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avmodels.metrics.curves import THRESHOLDS, trapezoid_area
from avmodels.metrics.presets import get_preset, normalise, upsample
from avprep.errors import InputError
from avprep.registry import Registry

SIDE = 224


@dataclasses.dataclass(frozen=True)
class IS3Convention:
    name: str
    description: str
    preset: str  # whose upsampling and normalisation
    strict: bool = True  # foreground p > t (False: ours, > t or == max)
    adaptive_keeps_all: bool = False  # ours: >= at element n - |G|


CONVENTIONS: Registry[IS3Convention] = Registry("IS3 convention")
DEFAULT_CONVENTION = "default"
CONVENTIONS.add(
    "default",
    IS3Convention(
        "default",
        "ours: default preset maps, > median or at max, adaptive keeps |G| pixels",
        "default",
        strict=False,
        adaptive_keeps_all=True,
    ),
)
CONVENTIONS.add(
    "sslalignment",
    IS3Convention(
        "sslalignment",
        "SSLalignment test.py validate(): torch bilinear align_corners, N(u), strict >",
        "ezvsl",
    ),
)
CONVENTIONS.add(
    "sslalignment-lvs",
    IS3Convention(
        "sslalignment-lvs",
        "SSLalignment test.py validate_lvs/validate_ssltie: cv2 bilinear, 1 - N(-u), strict >",
        "lvs",
    ),
)


def get_convention(c: str | IS3Convention) -> IS3Convention:
    return c if isinstance(c, IS3Convention) else CONVENTIONS.get(c)


@dataclasses.dataclass(frozen=True)
class IS3Sample:
    key: str  # image file stem, e.g. accordion_female_10438_accordion
    pair: str  # the stem without its last "_" field
    box: tuple[int, int, int, int] | None = None
    mask_path: str | None = None


def pair_of(key: str) -> str:
    return "_".join(key.split("_")[:-1])


def read_is3_json(path: str | os.PathLike) -> list[IS3Sample]:
    """Rows of ``synthetic3240_bbox.json`` (boxes) or ``synthetic3240_seg.json`` (mask paths)."""
    try:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read IS3 metadata {path}: {exc}") from None
    if not isinstance(rows, list) or not rows:
        raise InputError(f"{path}: expected a non-empty JSON list")
    out = []
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or "image" not in r or "gt_box" not in r:
            raise InputError(f"{path}: entry {i} lacks image/gt_box")
        key = str(r["image"]).split("/")[-1].split(".")[0]
        gb = r["gt_box"]
        if isinstance(gb, str):
            out.append(IS3Sample(key, pair_of(key), mask_path=gb))
        else:
            if len(gb) != 4 or not all(math.isfinite(float(v)) for v in gb):
                raise InputError(f"{path}: entry {i} ({key}) has a bad box {gb!r}")
            out.append(IS3Sample(key, pair_of(key), box=tuple(int(float(v)) for v in gb)))
    return out


def box_gt(box: Sequence[int], side: int = SIDE) -> np.ndarray:
    """``G[y0:y1, x0:x1] = 1`` on a ``side`` grid (numpy slicing, as the original)."""
    g = np.zeros((side, side), np.float64)
    x0, y0, x1, y1 = box
    g[y0:y1, x0:x1] = 1
    return g


def mask_gt(path: str | os.PathLike, side: int = SIDE) -> np.ndarray:
    """A mask image as a 0/1 map: grey >= 128 (JPEG masks), resized (nearest) to ``side``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            g = im.convert("L")
            if g.size != (side, side):
                g = g.resize((side, side), Image.NEAREST)
            return (np.asarray(g) >= 128).astype(np.float64)
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"cannot read IS3 mask {path}: {exc}") from None


def _iou(fg: np.ndarray, g: np.ndarray) -> float:
    inter = float(g[fg].sum())
    union = float(g.sum()) + float(np.count_nonzero(fg & (g == 0)))
    return inter / union if union else float("nan")


def sample_scores(
    maps: Sequence[np.ndarray], gts: Sequence[np.ndarray], conv: str | IS3Convention
) -> tuple[np.ndarray, np.ndarray]:
    """(IoU, adaptive IoU) per sample."""
    c = get_convention(conv)
    p = get_preset(c.preset)
    ious, adap = [], []
    for m, g in zip(maps, gts):
        u = upsample([np.asarray(m)], p)
        pred = normalise(u, p)[0]
        flat = np.sort(pred.reshape(-1))
        n = flat.size
        t = flat[int(n * 0.5)]
        if c.strict:
            fg = pred > t
        else:
            vmax = flat[-1]
            fg = (pred > t) | (pred == vmax) if vmax > flat[0] else np.zeros_like(pred, bool)
        ious.append(_iou(fg, g))
        k = int(np.count_nonzero(g))
        if k == 0:
            k = n // 2
        ta = flat[n - k]
        adap.append(_iou(pred >= ta if c.adaptive_keeps_all else pred > ta, g))
    return np.array(ious), np.array(adap)


def _success(v: np.ndarray) -> np.ndarray:
    return np.array([np.sum(v >= x) / v.size for x in THRESHOLDS])


def _pair_success(v: np.ndarray, pairs: Sequence[str]) -> np.ndarray:
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        groups.setdefault(p, []).append(i)
    idx = list(groups.values())
    return np.array([np.mean([float(np.all(v[ix] >= x)) for ix in idx]) for x in THRESHOLDS])


@dataclasses.dataclass
class IS3Result:
    convention: str
    n: int
    n_pairs: int
    ciou: float
    auc: float
    ciou_adap: float
    auc_adap: float
    iiou: float
    iauc: float
    iiou_adap: float
    iauc_adap: float
    mean_iou: float
    per_sample: Any

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("convention", "n", "n_pairs")}
        for k in (
            "ciou", "auc", "ciou_adap", "auc_adap", "iiou", "iauc", "iiou_adap", "iauc_adap",
            "mean_iou",
        ):  # fmt: skip
            v = getattr(self, k)
            out[k] = None if math.isnan(v) else float(v)
        return out


def evaluate_is3(
    maps: Mapping[str, np.ndarray],
    samples: Sequence[IS3Sample],
    conv: str | IS3Convention = DEFAULT_CONVENTION,
    *,
    mask_root: str | os.PathLike | None = None,
) -> IS3Result:
    """Score IS3 maps (sample key -> map) against boxes, or masks (``mask_root`` + file name)."""
    import pandas as pd

    c = get_convention(conv)
    missing = [s.key for s in samples if s.key not in maps]
    if missing:
        raise InputError(f"{len(missing)} IS3 samples have no map, e.g. {missing[:3]}")
    gts = []
    for s in samples:
        if s.box is not None:
            gts.append(box_gt(s.box))
        else:
            if mask_root is None:
                raise InputError("IS3 mask metadata needs the folder of the masks (mask_root)")
            gts.append(mask_gt(Path(mask_root) / Path(str(s.mask_path)).name))
    ious, adap = sample_scores([maps[s.key] for s in samples], gts, c)
    pairs = [s.pair for s in samples]
    cur, cur_a = _success(ious), _success(adap)
    pc, pc_a = _pair_success(ious, pairs), _pair_success(adap, pairs)
    half = THRESHOLDS.index(0.5)
    frame = pd.DataFrame(
        {"key": [s.key for s in samples], "pair": pairs, "iou": ious, "iou_adap": adap}
    )
    return IS3Result(
        convention=c.name,
        n=len(samples),
        n_pairs=len(set(pairs)),
        ciou=float(cur[half]),
        auc=trapezoid_area(cur),
        ciou_adap=float(cur_a[half]),
        auc_adap=trapezoid_area(cur_a),
        iiou=float(pc[half]),
        iauc=trapezoid_area(pc),
        iiou_adap=float(pc_a[half]),
        iauc_adap=trapezoid_area(pc_a),
        mean_iou=float(np.mean(ious)),
        per_sample=frame,
    )
