"""Literal, sample-by-sample restatements of the newer protocols' definitions.

Written from the definitions in docs/evaluation.md (extended sets, AVSBench,
IS3, sound-sensitivity), one sample at a time in plain Python/numpy, so the
vectorised modules in ``avmodels.metrics`` are checked against something that
shares none of their code. The projects' own code is never imported.
"""

from __future__ import annotations

import math

import numpy as np


# -- extended Flickr / VGG-SS --------------------------------------------------
def ext_iou(score, gt, *, relative, batch_thr=None, eps=0.0, nan00=True):
    if relative:
        lo, hi = score.min(), score.max()
        pred = score if hi - lo == 0 else (score - lo) / (hi - lo)
        thr = batch_thr if batch_thr is not None else sorted(pred.flatten())[pred.size // 2]
    else:
        pred, thr = score, 0.5
    inside = 0.0
    outside = 0
    for v, gv in zip(pred.flatten(), gt.flatten()):
        if v >= thr:
            inside += gv
            outside += gv == 0
    den = gt.sum() + outside + eps
    if den == 0:
        return float("nan") if nan00 else 0.0
    return inside / den


def pr_at(sounding, ious, conf, t):
    tp = fp = fn = 0
    for s, i, c in zip(sounding, ious, conf):
        if c >= t:
            if s and i >= 0.5:
                tp += 1
            else:
                fp += 1
        elif s:
            fn += 1
    p = 1.0 if tp + fp == 0 else tp / (tp + fp)
    r = 1.0 if tp + fn == 0 else tp / (tp + fn)
    return p, r


def ext_ap_original(sounding, ious, conf):
    n = len(conf)
    step = max(1, n // 200)
    asc = sorted(conf)
    ths = asc[:-1][::-1][::step]
    pts = [pr_at(sounding, ious, conf, t) for t in ths]
    total = 0.0
    for i in range(len(pts) - 1):
        best = max(p for p, _ in pts[i:])
        total += best * (pts[i + 1][1] - pts[i][1])
    return total


def ext_ap_all_points(sounding, ious, conf):
    ths = sorted(set(conf), reverse=True)
    pts = [pr_at(sounding, ious, conf, t) for t in ths]
    total, prev_r = 0.0, 0.0
    for i, (_, r) in enumerate(pts):
        total += max(p for p, _ in pts[i:]) * (r - prev_r)
        prev_r = r
    return total


def ext_max_f1(sounding, ious, conf, *, original):
    ths = sorted(conf)[:: max(1, len(conf) // 10)] if original else sorted(set(conf))
    best = -1.0
    for t in ths:
        p, r = pr_at(sounding, ious, conf, t)
        f = 2 * p * r / (p + r) if p + r > 0 else 0.0
        if original:
            f = round(f * 100, 1) / 100
        best = max(best, f)
    return best


def ext_locacc(sounding, ious, *, strict):
    vals = [i for s, i in zip(sounding, ious) if s]
    return sum((i > 0.5) if strict else (i >= 0.5) for i in vals) / len(vals)


# -- AVSBench ------------------------------------------------------------------
def avs_frame_iou(binary, gt):
    if gt.sum() == 0:
        inter = float(((1 - gt) * (1 - binary)).sum())
        return inter / (gt.size + 1e-7)
    inter = float((binary * gt).sum())
    union = float(np.maximum(binary, gt).sum())
    return inter / (union + 1e-7)


def avs_fcurve(prob, gt, num=255):
    ths = np.linspace(0, 1 - 1e-10, num, dtype=np.float32)
    out = []
    for t in ths:
        b = (prob >= t).astype(np.float32)
        tp = float((b * gt).sum())
        p = tp / (float(b.sum()) + 1e-20)
        r = tp / (float(gt.sum()) + 1e-20)
        f = 1.3 * p * r / (0.3 * p + r) if (0.3 * p + r) > 0 else 0.0
        out.append(f)
    return np.array(out)


# -- IS3 -------------------------------------------------------------------------
def is3_iou_strict(pred, gt, thr):
    f = (pred > thr).astype(float)
    den = gt.sum() + (f * (gt == 0)).sum()
    return (f * gt).sum() / den if den else float("nan")


def success_auc(vals):
    xs = [0.05 * i for i in range(21)]
    ys = [sum(1 for v in vals if v >= x) / len(vals) for x in xs]
    return sum((xs[i + 1] - xs[i]) * (ys[i] + ys[i + 1]) / 2 for i in range(20))


def finite(v):
    return not (isinstance(v, float) and math.isnan(v))
