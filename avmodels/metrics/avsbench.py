"""AVSBench S4 / MS3 (Zhou et al., ECCV 2022): mask IoU (mIoU) and F-score (beta^2 = 0.3).

Every frame has a binary ground-truth mask. Per frame:

- **IoU** of the binarised prediction ``B`` and the mask ``M``:
  ``|B & M| / (|B | M| + 1e-7)``; a frame with an empty mask scores the
  overlap of the *backgrounds* instead, ``|~B & ~M| / (H*W + 1e-7)``.
- **F curve**: for 255 thresholds ``linspace(0, 1 - 1e-10, 255)`` (float32)
  the prediction ``P >= t`` gives precision ``tp / (|B| + 1e-20)`` and recall
  ``tp / (|M| + 1e-20)``, ``F = 1.3 P R / (0.3 P + R)`` (NaN -> 0). Frames
  with an empty mask are left out of the F-score.

Conventions (:data:`CONVENTIONS`):

``official``
    The AVSBench repository's ``test.py`` / ``utility.py``: the model's
    output is taken for *logits* (a sigmoid is applied, then ``> 0.5`` for the
    IoU); both numbers are averaged over *batches*: mIoU is the mean of the
    batch means, and the F-score the mean over batches of each batch's
    *maximum* of its mean F curve, so the threshold is re-optimised per batch
    and the result depends on the batch size (5 frames of one video per batch
    at its default ``--test_batch_size 1``; a batch whose masks are all empty
    counts 0). MS3 masks are read in palette mode (``Image.convert('P')``,
    values = palette index / 255), S4 masks in mode ``'1'``.
``acl-ssl``
    ACL-SSL's ``AVSBench/eval_utils.py``: maps are probabilities already (no
    sigmoid); the IoU binarises with ``> thr`` (``thr`` given, or the map's
    element ``int(H*W/2)`` of the ascending sort); mIoU is still a mean of
    batch means, but the F-score is fixed: the maximum over thresholds of the
    F curve averaged over *all* frames with a non-empty mask (batch size no
    longer matters).
``default`` (ours)
    Maps min-max normalised per frame; IoU with ``> median element`` as
    ``acl-ssl``; mIoU the mean over frames; F-score as ``acl-ssl``; masks:
    foreground where the palette index is not 0 (palette PNGs) or the grey
    value is at least 128 (others).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from avprep.errors import InputError
from avprep.registry import Registry

BETA2 = 0.3
PR_NUM = 255
EPS_IOU = 1e-7
EPS_PR = 1e-20
SETTINGS = ("s4", "ms3")


@dataclasses.dataclass(frozen=True)
class AVSConvention:
    name: str
    description: str
    sigmoid: bool = False
    #: None: the map's median element (relative); a number: fixed threshold.
    iou_threshold: float | None = None
    normalise: bool = False
    batch_miou: bool = True
    batch_fscore: bool = False
    batch_size: int = 5
    mask_mode: str = "official"  # official (S4 '1', MS3 'P') or clean


CONVENTIONS: Registry[AVSConvention] = Registry("AVSBench convention")
DEFAULT_CONVENTION = "default"
CONVENTIONS.add(
    "default",
    AVSConvention(
        "default",
        "ours: per-frame min-max, > median element, mIoU over frames, F max of the mean "
        "curve over all frames",
        normalise=True,
        batch_miou=False,
        mask_mode="clean",
    ),
)
CONVENTIONS.add(
    "official",
    AVSConvention(
        "official",
        "AVSBench test.py: sigmoid, > 0.5, mean of batch means, F = mean of per-batch maxima",
        sigmoid=True,
        iou_threshold=0.5,
        batch_fscore=True,
    ),
)
CONVENTIONS.add(
    "acl-ssl",
    AVSConvention(
        "acl-ssl",
        "ACL-SSL AVSBench/eval_utils.py: no sigmoid, > median element (or thr), "
        "mean of batch means, F fixed (max of the mean curve over all frames)",
    ),
)


def get_convention(c: str | AVSConvention) -> AVSConvention:
    return c if isinstance(c, AVSConvention) else CONVENTIONS.get(c)


# -- masks -----------------------------------------------------------------------


def read_mask(path: str | os.PathLike, setting: str, mode: str = "official") -> np.ndarray:
    """A ground-truth mask as float32 (H, W).

    ``official``: S4 via ``convert('1')`` (0/1), MS3 via ``convert('P')``
    divided by 255 (a palette PNG's index 1 reads as 1/255, as in the
    official loader). ``clean``: 0/1 foreground (palette index != 0, or grey
    >= 128).
    """
    from PIL import Image, UnidentifiedImageError

    if setting not in SETTINGS:
        raise InputError(f"unknown AVSBench setting {setting!r}; valid: {', '.join(SETTINGS)}")
    try:
        with Image.open(path) as im:
            im.load()
            if mode == "official":
                if setting == "s4":
                    return np.asarray(im.convert("1"), dtype=np.float32)
                return np.asarray(im.convert("P"), dtype=np.float32) / np.float32(255)
            if im.mode == "P":
                return (np.asarray(im) != 0).astype(np.float32)
            return (np.asarray(im.convert("L")) >= 128).astype(np.float32)
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"cannot read mask {path}: {exc}") from None


# -- per-frame scores ----------------------------------------------------------


def _to_grid(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    if m.shape == shape:
        return m
    return cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def _prob(m: np.ndarray, c: AVSConvention) -> np.ndarray:
    if c.sigmoid:
        return (1 / (1 + np.exp(-m.astype(np.float64)))).astype(np.float32)
    if c.normalise:
        lo, hi = float(m.min()), float(m.max())
        if hi == lo:
            return np.zeros_like(m)
        return ((m.astype(np.float64) - lo) / (hi - lo)).astype(np.float32)
    return m


def frame_iou(prob: np.ndarray, gt: np.ndarray, threshold: float | None) -> float:
    """AVSBench IoU of one frame (``prob > threshold``; None: the median element)."""
    if threshold is None:
        flat = prob.reshape(-1)
        k = int(prob.shape[0] * prob.shape[1] / 2)
        thr = np.partition(flat, k)[k]
    else:
        thr = prob.dtype.type(threshold)
    b = (prob > thr).astype(np.float32)
    g = np.asarray(gt, np.float32)
    if float(g.sum()) == 0:
        inter = float(((1 - g) * (1 - b)).sum())
        return inter / (g.size + EPS_IOU)
    inter = float((b * g).sum())
    union = float(np.maximum(b, g).sum())
    return inter / (union + EPS_IOU)


_THRESHOLDS = np.linspace(0, 1 - 1e-10, PR_NUM, dtype=np.float32)


def f_curve(prob: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """F (beta^2 = 0.3) at each of the 255 thresholds for one frame (float32 arithmetic)."""
    p = np.asarray(prob, np.float32).reshape(-1)
    g = np.asarray(gt, np.float32).reshape(-1)
    order = np.argsort(p, kind="stable")
    ps, gs = p[order], g[order]
    first = np.searchsorted(ps, _THRESHOLDS, side="left")
    suffix_g = np.concatenate([np.cumsum(gs[::-1], dtype=np.float64)[::-1], [0.0]])
    tp = suffix_g[first].astype(np.float32)
    npred = (p.size - first).astype(np.float32)
    prec = tp / (npred + np.float32(EPS_PR))
    rec = tp / (np.float32(g.sum(dtype=np.float64)) + np.float32(EPS_PR))
    with np.errstate(invalid="ignore", divide="ignore"):
        f = (np.float32(1 + BETA2) * prec * rec) / (np.float32(BETA2) * prec + rec)
    f[np.isnan(f)] = 0
    return f


@dataclasses.dataclass
class AVSResult:
    convention: str
    setting: str
    n: int
    miou: float
    fscore: float
    per_frame: Any

    def to_dict(self) -> dict[str, Any]:
        def clean(v: float) -> float | None:
            return None if math.isnan(v) else float(v)

        return {
            "convention": self.convention,
            "setting": self.setting,
            "n": self.n,
            "miou": clean(self.miou),
            "fscore": clean(self.fscore),
        }


def evaluate_avsbench(
    maps: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    convention: str | AVSConvention = DEFAULT_CONVENTION,
    *,
    setting: str = "s4",
    order: Sequence[str] | None = None,
) -> AVSResult:
    """mIoU and F-score of ``maps`` (frame id -> map, any size) against ``masks``.

    Maps are upsampled to the mask's size (cv2 bilinear, float32) when they
    differ. ``order`` is the evaluation order: batches of ``batch_size``
    consecutive frames for the batch-averaged conventions (default: the
    masks' order).
    """
    import pandas as pd

    c = get_convention(convention)
    ids = list(order) if order is not None else list(masks)
    missing = [i for i in ids if i not in maps]
    if missing:
        raise InputError(f"{len(missing)} frames have no map, e.g. {missing[:3]}")
    if not ids:
        raise InputError("no frames to score")
    ious, curves, nonempty = [], [], []
    for fid in ids:
        g = np.asarray(masks[fid], np.float32)
        prob = _prob(_to_grid(maps[fid], g.shape), c)
        ious.append(frame_iou(prob, g, c.iou_threshold))
        has = float(g.sum()) != 0
        nonempty.append(has)
        curves.append(f_curve(prob, g) if has else None)
    iou = np.array(ious)
    if c.batch_miou:
        bs = c.batch_size
        miou = float(np.mean([iou[i : i + bs].mean() for i in range(0, len(ids), bs)]))
    else:
        miou = float(iou.mean())
    if c.batch_fscore:
        per_batch = []
        for i in range(0, len(ids), c.batch_size):
            cs = [cv for cv in curves[i : i + c.batch_size] if cv is not None]
            per_batch.append(float(np.mean(cs, axis=0).max()) if cs else 0.0)
        fscore = float(np.mean(per_batch))
    else:
        cs = [cv for cv in curves if cv is not None]
        fscore = float(np.max(np.mean(cs, axis=0))) if cs else float("nan")
    frame = pd.DataFrame({"frame_id": ids, "iou": iou, "empty_mask": [not h for h in nonempty]})
    return AVSResult(c.name, setting, len(ids), miou, fscore, frame)


def read_masks(
    folder: str | os.PathLike, ids: Sequence[str], setting: str, mode: str = "official"
) -> dict[str, np.ndarray]:
    """``{frame id: mask}`` from ``folder/<frame id>.png`` (ids may hold sub-folders)."""
    root = Path(folder)
    out = {}
    for fid in ids:
        p = root / f"{fid}.png"
        if not p.is_file():
            raise InputError(f"mask of {fid!r} not found: {p}")
        out[fid] = read_mask(p, setting, mode)
    return out
