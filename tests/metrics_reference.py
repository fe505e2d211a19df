"""A literal, per-sample re-statement of each paper's evaluation procedure.

Written from the description in shared/REFERENCE.md §4 (not from the papers'
code, which the project never imports), one clip at a time with cv2/numpy/torch
the way the originals use them. ``tests/avmodels/metrics/test_metrics.py`` checks that the
vectorised presets in ``avmodels.metrics`` give exactly the same per-sample IoU
and aggregates; ``benchmarks/bench_metrics.py`` times this loop as the baseline.
"""

from __future__ import annotations

import json
import math

import cv2
import defusedxml.ElementTree as safe_et
import numpy as np
from sklearn.metrics import auc as sklearn_auc

SIDE = 224
MEDIAN_INDEX = int(SIDE * SIDE / 2)
PAPERS = ("lvs", "ezvsl", "ssltie", "sspl", "htf")


def minmax_or_same(v: np.ndarray) -> np.ndarray:
    """The shared ``normalize_img``: a flat map is handed back untouched."""
    lo, hi = v.min(), v.max()
    if hi - lo == 0:
        return v
    return (v - lo) / (hi - lo)


def upsampled(raw: np.ndarray, paper: str) -> np.ndarray:
    m = np.asarray(raw, dtype=np.float32)
    if paper == "ezvsl":
        import torch
        import torch.nn.functional as F  # noqa: N812

        t = torch.from_numpy(m)[None, None]
        return F.interpolate(t, size=(SIDE, SIDE), mode="bilinear", align_corners=True)[
            0, 0
        ].numpy()
    interp = cv2.INTER_CUBIC if paper == "htf" else cv2.INTER_LINEAR
    return cv2.resize(m, dsize=(SIDE, SIDE), interpolation=interp)


def prediction(raw: np.ndarray, paper: str) -> np.ndarray:
    """The 0/1 float map each paper feeds to its IoU."""
    u = upsampled(raw, paper)
    if paper in ("lvs", "ssltie"):
        p = 1 - minmax_or_same(-u)
    elif paper in ("ezvsl", "htf"):
        p = minmax_or_same(u)
    else:  # sspl: no guard, a flat map turns to NaN
        with np.errstate(invalid="ignore", divide="ignore"):
            p = (u - np.min(u)) / np.ptp(u)
    out = np.zeros((SIDE, SIDE))
    if paper == "sspl":
        out[p >= 0.5] = 1
        return out
    t = np.sort(p.flatten())[MEDIAN_INDEX]
    if paper == "ezvsl":
        out[p >= t] = 1
        return out
    q = p.copy()
    q[q > t] = 1
    q[q < 1] = 0
    out[q >= 0.5] = 1
    return out


def _index(x: float, paper: str) -> int:
    if paper == "ezvsl":
        return int(np.clip(np.array(x), 0, 1) * SIDE)
    if paper == "ssltie":
        return int(x * SIDE)
    return int(SIDE * max(x, 0))


def vggss_truth(boxes: list[list[float]], paper: str) -> np.ndarray:
    g = np.zeros((SIDE, SIDE))
    for b in boxes:
        if not all(math.isfinite(v) for v in b):
            continue
        x0, y0, x1, y1 = (_index(v, paper) for v in b)
        g[y0:y1, x0:x1] = 1
    return g


def flickr_truth(xml_path) -> np.ndarray:
    """Every annotator's every <bbox>: skip the first child, four ints in 256 px."""
    root = safe_et.parse(str(xml_path)).getroot()
    g = np.zeros((SIDE, SIDE))
    for annotator in root:
        for el in annotator:
            if el.tag != "bbox":
                continue
            v = [int(SIDE * int(c.text) / 256) for c in list(el)[1:5]]
            one = np.zeros((SIDE, SIDE))
            one[v[1] : v[3], v[0] : v[2]] = 1
            g += one
    g /= 2
    g[g > 1] = 1
    return g


def iou(pred: np.ndarray, g: np.ndarray) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.sum(pred * g) / (np.sum(g) + np.sum(pred * (g == 0))))


def aggregates(ious: list[float]) -> dict[str, float]:
    arr = np.array(ious)
    x = [0.05 * i for i in range(21)]
    y = [np.sum(arr >= xi) / len(arr) for xi in x]
    return {
        "ciou": float(np.sum(arr >= 0.5) / len(arr)),
        "auc": float(sklearn_auc(x, y)),
        "mean_iou": float(np.mean(arr)),
    }


def load_vggss_boxes(path) -> dict[str, list[list[float]]]:
    with open(path) as fh:
        return {e["file"]: e["bbox"] for e in json.load(fh)}


def score_loop(maps: dict, truths: dict, paper: str) -> tuple[list[float], dict[str, float]]:
    """The originals' loop: one clip at a time."""
    ious = [iou(prediction(maps[cid], paper), truths[cid]) for cid in truths]
    return ious, aggregates(ious)
