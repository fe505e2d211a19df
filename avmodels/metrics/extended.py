"""Extended Flickr / VGG-SS: localisation *and* detection of a sounding object.

The extended sets of SLAVC (Mo & Morgado, NeurIPS 2022) add, to the usual
annotated test clips, *non-sounding* samples: a test frame paired with the
audio of another clip (``*_test_plus_silent.csv``: ``video,audio,label`` rows
labelled ``non-sounding``). A model must then say *whether* something in the
frame sounds (a per-sample confidence) as well as *where* (its map). Three
numbers are reported:

- **AP**: area under the precision/recall curve obtained by sweeping a
  threshold over the confidences. A sample whose confidence passes the
  threshold is a true positive when it is sounding and its IoU is at least
  0.5, a false positive otherwise (a non-sounding sample, or a sounding one
  localised wrongly); a sounding sample below the threshold is a false
  negative. Precision and recall are 1 when their denominator is 0.
- **max-F1**: the largest F1 of that curve.
- **LocAcc**: the fraction of sounding samples localised (IoU above 0.5).

Conventions (:data:`CONVENTIONS`), the defining code's by name and ours:

``slavc``
    SLAVC ``test.py`` with ``--relative_prediction`` (its README's command):
    each map is min-max normalised and binarised at its own element
    ``int(n * pred_size)`` of the ascending sort with ``>=``; IoU with no
    guard (0/0 is NaN); AP over every ``max(1, n // 200)``-th confidence,
    from the second largest down, without the first recall step; max-F1 over
    every ``max(1, n // 10)``-th confidence of the ascending sort, each F1
    printed as a percentage with one decimal (the max is taken over those
    rounded values); LocAcc with a *strict* ``IoU > 0.5`` while detections use
    ``IoU >= 0.5``.
``slavc-script``
    The same, as its shipped ``scripts/test_extended_*.sh`` run it: without
    ``--relative_prediction`` the scores are binarised at the fixed
    ``pred_thr = 0.5``. This silently changes the numbers (SLAVC users lose a
    large part of the AP); it is kept by name so a table can say which it used.
``acl-ssl``
    ACL-SSL's ``{Flickr,VGGSS}/extend_eval_utils.py`` ``evaluate_batch`` with
    ``thr=None``: the relative threshold of the *first* map of each batch is
    reused for the rest of the batch (``batch_size`` matters), and the IoU
    adds ``1e-12`` to its denominator. Everything else as ``slavc``.
``default`` (ours)
    Relative prediction, each map with its own threshold; IoU 0/0 is 0;
    AP and max-F1 over *every* distinct confidence (all-points interpolated
    AP from recall 0, no subsampling, no rounding); LocAcc with ``>= 0.5``,
    the same rule as detections and as cIoU.

All comparisons happen in the maps' own dtype (float32 for every original):
a float64 copy would disagree on pixels equal to the threshold.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avprep.errors import InputError
from avprep.registry import Registry

SIDE = 224
NON_SOUNDING = "non-sounding"
IOU_HIT = 0.5


@dataclasses.dataclass(frozen=True)
class SilentPair:
    """One non-sounding sample of an extended set: ``video``'s frame with ``audio``'s sound."""

    video: str
    audio: str

    @property
    def key(self) -> str:
        return extended_key(self.video, self.audio)


def extended_key(video: str, audio: str) -> str:
    """The sample key of a non-sounding pair (the video id alone names its sounding sample)."""
    return f"{video}@{audio}"


def read_silent_list(path: str | os.PathLike) -> list[SilentPair]:
    """The ``non-sounding`` rows of a ``*_test_plus_silent.csv`` (``video,audio,label``).

    CRLF or LF; the header row is optional. Rows with another label are an
    error (the published files hold only ``non-sounding`` rows), so is a row
    with fewer than three fields.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read silent list {path}: {exc.strerror or exc}") from None
    out: list[SilentPair] = []
    for n, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        cells = [c.strip() for c in row]
        if n == 1 and cells[:3] == ["video", "audio", "label"]:
            continue
        if len(cells) < 3 or not cells[0] or not cells[1]:
            raise InputError(f"{path}:{n}: expected video,audio,label; got {row!r}")
        if cells[2] != NON_SOUNDING:
            raise InputError(f"{path}:{n}: label {cells[2]!r} is not {NON_SOUNDING!r}")
        out.append(SilentPair(cells[0], cells[1]))
    if not out:
        raise InputError(f"{path}: no non-sounding rows")
    return out


# -- conventions --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExtendedConvention:
    name: str
    description: str
    #: min-max each map and threshold at its element ``int(n * pred_size)``;
    #: otherwise threshold the scores at ``pred_thr``.
    relative: bool = True
    pred_size: float = 0.5
    pred_thr: float = 0.5
    #: ACL-SSL: the first map of a batch sets the threshold of the whole batch.
    batch_first_threshold: bool = False
    batch_size: int = 1
    iou_eps: float = 0.0
    zero_over_zero: float = float("nan")
    #: originals: AP over every ``n // 200``-th confidence, max-F1 over every ``n // 10``-th.
    subsample: bool = True
    #: max-F1 over F1 percentages rounded to this many decimals (None: not rounded).
    f1_decimals: int | None = 1
    #: LocAcc counts ``IoU > 0.5`` (strict) instead of ``IoU >= 0.5``.
    locacc_strict: bool = True


CONVENTIONS: Registry[ExtendedConvention] = Registry("extended-set convention")
DEFAULT_CONVENTION = "default"
CONVENTIONS.add(
    "default",
    ExtendedConvention(
        "default",
        "ours: per-map relative threshold, IoU 0/0 = 0, AP and max-F1 over every "
        "confidence (no subsampling, no rounding), LocAcc with IoU >= 0.5",
        zero_over_zero=0.0,
        subsample=False,
        f1_decimals=None,
        locacc_strict=False,
    ),
)
CONVENTIONS.add(
    "slavc",
    ExtendedConvention(
        "slavc", "SLAVC test.py --relative_prediction (README command), EvaluatorFull"
    ),
)
CONVENTIONS.add(
    "slavc-script",
    ExtendedConvention(
        "slavc-script",
        "SLAVC scripts/test_extended_*.sh: no --relative_prediction, scores >= pred_thr 0.5",
        relative=False,
    ),
)
CONVENTIONS.add(
    "acl-ssl",
    ExtendedConvention(
        "acl-ssl",
        "ACL-SSL extend_eval_utils.evaluate_batch(thr=None): first map's median for the "
        "whole batch, IoU denominator + 1e-12",
        batch_first_threshold=True,
        batch_size=1,
        iou_eps=1e-12,
    ),
)


def get_convention(conv: str | ExtendedConvention) -> ExtendedConvention:
    return conv if isinstance(conv, ExtendedConvention) else CONVENTIONS.get(conv)


# -- the per-sample part --------------------------------------------------------


def normalise_guarded(v: np.ndarray) -> np.ndarray:
    """``(v - min) / (max - min)`` in ``v``'s dtype; a constant map comes back unchanged."""
    lo, hi = v.min(), v.max()
    if hi - lo == 0:
        return v
    return (v - lo) / (hi - lo)


def relative_threshold(pred: np.ndarray, pred_size: float) -> Any:
    """Element ``int(n * pred_size)`` of the ascending sort of ``pred`` (its dtype)."""
    flat = pred.reshape(-1)
    k = int(flat.size * pred_size)
    return np.partition(flat, k)[k]


def sample_ious(
    scores: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    conv: str | ExtendedConvention = DEFAULT_CONVENTION,
) -> np.ndarray:
    """Per-sample IoU of score maps (SIDE x SIDE, float32 as the originals) with GT maps.

    ``scores`` are in the evaluation order (batches of ``batch_size`` for the
    ``acl-ssl`` convention). A non-sounding sample has an all-zero GT.
    """
    c = get_convention(conv)
    out = np.empty(len(scores), dtype=np.float64)
    thr: Any = None
    for i, (s, g) in enumerate(zip(scores, gts)):
        s = np.asarray(s)
        if c.relative:
            pred = normalise_guarded(s)
            if c.batch_first_threshold:
                if i % c.batch_size == 0:
                    thr = relative_threshold(pred, c.pred_size)
            else:
                thr = relative_threshold(pred, c.pred_size)
        else:
            pred, thr = s, c.pred_thr
        fg = pred >= thr
        g = np.asarray(g, dtype=np.float64)
        inter = float(g[fg].sum())
        union = float(g.sum()) + float(np.count_nonzero(fg & (g == 0)))
        if c.iou_eps:
            out[i] = inter / (union + c.iou_eps)
        elif union == 0:
            out[i] = c.zero_over_zero
        else:
            out[i] = inter / union
    return out


def slavc_scores(raw: np.ndarray, tau: float = 0.03) -> np.ndarray:
    """SLAVC's score map from a model map (its ``test.py``): torch bicubic upsampling
    to SIDE x SIDE with ``align_corners=True`` (float32), then min-max with the fixed
    range ``(-1/tau, 1/tau)`` of its cosine/tau logits (values may leave [0, 1])."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    t = torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))[None, None]
    with torch.no_grad():
        u = F.interpolate(t, size=(SIDE, SIDE), mode="bicubic", align_corners=True)[0, 0].numpy()
    lo, hi = -1.0 / tau, 1.0 / tau
    return (u - lo) / (hi - lo)


def top_quarter_confidence(scores: np.ndarray) -> float:
    """SLAVC's confidence: mean of the largest ``n // 4`` values of the score map."""
    flat = np.sort(np.asarray(scores).reshape(-1))
    return float(flat[-(flat.size // 4) :].mean())


# -- the aggregate part ----------------------------------------------------------


def _curve(
    sounding: np.ndarray, hit: np.ndarray, conf: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(precision, recall) at each threshold: a sample is detected when ``conf >= thr``."""
    order = np.argsort(conf, kind="stable")
    conf_sorted = conf[order]
    tp_flag = (sounding & hit)[order]
    snd = sounding[order]
    # detected = the samples at positions >= first index with conf >= thr
    first = np.searchsorted(conf_sorted, thresholds, side="left")
    tp_suffix = np.concatenate([np.cumsum(tp_flag[::-1])[::-1], [0]])
    snd_suffix = np.concatenate([np.cumsum(snd[::-1])[::-1], [0]])
    n = conf.size
    detected = n - first
    tp = tp_suffix[first]
    fp = detected - tp
    fn = int(sounding.sum()) - snd_suffix[first]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp == 0, 1.0, tp / np.maximum(tp + fp, 1))
        recall = np.where(tp + fn == 0, 1.0, tp / np.maximum(tp + fn, 1))
    return precision.astype(np.float64), recall.astype(np.float64)


def average_precision(
    sounding: np.ndarray,
    ious: np.ndarray,
    conf: np.ndarray,
    conv: str | ExtendedConvention = DEFAULT_CONVENTION,
) -> float:
    c = get_convention(conv)
    sounding, conf = np.asarray(sounding, bool), np.asarray(conf)
    hit = np.asarray(ious, np.float64) >= IOU_HIT
    if c.subsample:
        stride = max(1, conf.size // 200)
        thresholds = np.sort(conf)[:-1][::-stride]
        p, r = _curve(sounding, hit, conf, thresholds)
        if p.size < 2:
            return 0.0
        pmax = np.maximum.accumulate(p[::-1])[::-1]
        return float(sum(pmax[i] * (r[i + 1] - r[i]) for i in range(p.size - 1)))
    thresholds = np.unique(conf)[::-1]  # every distinct confidence, high to low
    p, r = _curve(sounding, hit, conf, thresholds)
    pmax = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], r]))
    return float(np.sum(pmax * steps))


def f1_scores(
    sounding: np.ndarray,
    ious: np.ndarray,
    conf: np.ndarray,
    conv: str | ExtendedConvention = DEFAULT_CONVENTION,
) -> np.ndarray:
    """F1 (fraction, or percent rounded for the originals) at each confidence threshold."""
    c = get_convention(conv)
    sounding, conf = np.asarray(sounding, bool), np.asarray(conf)
    hit = np.asarray(ious, np.float64) >= IOU_HIT
    if c.subsample:
        thresholds = np.sort(conf)[:: max(1, conf.size // 10)]
    else:
        thresholds = np.unique(conf)
    p, r = _curve(sounding, hit, conf, thresholds)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(p + r > 0, 2 * r * p / np.where(p + r > 0, r + p, 1), 0.0)
    if c.f1_decimals is not None:
        return np.array([float(f"{v * 100:.{c.f1_decimals}f}") / 100 for v in f1])
    return f1


def loc_acc(
    sounding: np.ndarray, ious: np.ndarray, conv: str | ExtendedConvention = DEFAULT_CONVENTION
) -> float:
    c = get_convention(conv)
    v = np.asarray(ious, np.float64)[np.asarray(sounding, bool)]
    if v.size == 0:
        return float("nan")
    return float(np.mean(v > IOU_HIT if c.locacc_strict else v >= IOU_HIT))


@dataclasses.dataclass
class ExtendedResult:
    convention: str
    n: int
    n_sounding: int
    n_silent: int
    ap: float
    max_f1: float
    loc_acc: float
    per_sample: Any

    def to_dict(self) -> dict[str, Any]:
        def clean(v: float) -> float | None:
            return None if v is None or math.isnan(v) else float(v)

        return {
            "convention": self.convention,
            "n": self.n,
            "n_sounding": self.n_sounding,
            "n_silent": self.n_silent,
            "ap": clean(self.ap),
            "max_f1": clean(self.max_f1),
            "loc_acc": clean(self.loc_acc),
        }


def score_extended(
    keys: Sequence[str],
    sounding: Sequence[bool],
    ious: Sequence[float],
    conf: Sequence[float],
    conv: str | ExtendedConvention = DEFAULT_CONVENTION,
) -> ExtendedResult:
    """AP, max-F1 and LocAcc from per-sample IoU and confidence."""
    import pandas as pd

    c = get_convention(conv)
    snd = np.asarray(sounding, bool)
    iou = np.asarray(ious, np.float64)
    cf = np.asarray(conf)
    if not (snd.size == iou.size == cf.size == len(keys)):
        raise InputError("keys, sounding flags, IoUs and confidences differ in length")
    if snd.size == 0:
        raise InputError("no samples to score")
    if not np.isfinite(cf.astype(np.float64)).all():
        raise InputError("confidences hold NaN or infinite values")
    frame = pd.DataFrame({"key": list(keys), "sounding": snd, "iou": iou, "confidence": cf})
    return ExtendedResult(
        convention=c.name,
        n=int(snd.size),
        n_sounding=int(snd.sum()),
        n_silent=int((~snd).sum()),
        ap=average_precision(snd, iou, cf, c),
        max_f1=float(np.max(f1_scores(snd, iou, cf, c))),
        loc_acc=loc_acc(snd, iou, c),
        per_sample=frame,
    )


def evaluate_extended(
    scores: Mapping[str, np.ndarray],
    confidences: Mapping[str, float],
    gts: Mapping[str, np.ndarray],
    silent: Sequence[SilentPair],
    conv: str | ExtendedConvention = DEFAULT_CONVENTION,
    order: Sequence[str] | None = None,
) -> ExtendedResult:
    """Score an extended set.

    ``scores``: sample key -> SIDE x SIDE score map (a sounding sample's key
    is its clip id, a non-sounding one's :func:`extended_key`); ``gts``: clip
    id -> GT map of every sounding clip; ``silent``: the non-sounding pairs.
    ``order`` is the evaluation order (it matters only for the ``acl-ssl``
    convention's batches); default: sounding clips, then the silent pairs.
    """
    keys = list(order) if order is not None else [*gts, *(p.key for p in silent)]
    silent_keys = {p.key for p in silent}
    missing = [k for k in keys if k not in scores or k not in confidences]
    if missing:
        raise InputError(f"{len(missing)} samples have no map or confidence, e.g. {missing[:3]}")
    unknown = [k for k in keys if k not in silent_keys and k not in gts]
    if unknown:
        raise InputError(f"{len(unknown)} samples are neither annotated nor silent: {unknown[:3]}")
    zero = np.zeros((SIDE, SIDE), np.float64)
    snd = [k not in silent_keys for k in keys]
    g = [gts[k] if s else zero for k, s in zip(keys, snd)]
    ious = sample_ious([scores[k] for k in keys], g, conv)
    return score_extended(keys, snd, ious, [confidences[k] for k in keys], conv)
