"""Does the map depend on the sound? Measures on true-audio vs probe-audio maps.

A localiser whose map stays the same when the audio is silence, noise or
another clip's sound is not localising sound (Juanola et al., ICASSP 2025,
``github:xavijuanola/vssl_eval``). For each clip we have the map with its own
audio (*positive*) and with a probe audio (*negative*).

Our measures (``default``), every map prepared the same way:

- **map IoU**: IoU of the positive and negative foregrounds, each binarised
  by our default preset's median rule (1 = the probe did not move the map);
- **max drop**: mean over clips of ``max(positive) - max(negative)`` on the raw
  maps (the model's own units), and the relative drop of the means;
- **pIA**: the share of the negative map's pixels above the *positive* map's
  median threshold, both maps upsampled identically and normalised with the
  positive map's min and max (so levels stay comparable); **AUC-pIA** is the
  area under "fraction of clips with pIA <= t" over t = 0.05 i (higher: the
  probe maps light up less);
- **AP sounding-vs-not**: average precision of telling true-audio samples
  (label 1) from probe samples (label 0) by the model's own confidence.

vssl_eval's definitions, by name (``vssl_eval``): the positive map is
``1 - N(-u)`` of the cv2-bilinear upsampled map, but the negative map is the
upsampled map *without* normalisation; pIA = share of negative pixels ``>``
a threshold (``0.5``, or the positive map's median: ``thrciou``); its map IoU
is 1 when both maps are empty and 0 when only the second is. Its noise is
``np.random.normal(0, 1)`` on the waveform, unseeded: our probe seeds it per
clip (see ``avmodels.engine.probe``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from avmodels.metrics.curves import THRESHOLDS, trapezoid_area
from avmodels.metrics.presets import binarise, get_preset, upsample
from avprep.errors import InputError

SIDE = 224
#: the audio probes of ``avmodels eval --audio-probe`` (run by avmodels.engine.probe)
PROBES = ("silence", "noise", "swap")


# -- vssl_eval's measures, by name ------------------------------------------------
def vssl_map_iou(a: np.ndarray, b: np.ndarray) -> float:
    """vssl_eval ``compute_IOU_maps``: both empty 1, only ``b`` empty 0, else |a&b|/|a|b|."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if not b.any() and a.any():
        return 0.0
    if not a.any() and not b.any():
        return 1.0
    return float(np.count_nonzero(a & b) / np.count_nonzero(a | b))


def pia(binary: np.ndarray) -> float:
    """Share of highlighted pixels of a binarised negative map."""
    b = np.asarray(binary)
    return float(np.count_nonzero(b) / b.size)


def auc_pia(values: Sequence[float]) -> float:
    """Area under "fraction of clips with pIA <= 0.05 i" (vssl_eval ``compute_AUC_pIA``)."""
    v = np.asarray(values, np.float64)
    if v.size == 0:
        raise InputError("no pIA values")
    ys = np.array([np.sum(v <= t) / v.size for t in THRESHOLDS])
    return trapezoid_area(ys)


def _cv2_up(m: np.ndarray) -> np.ndarray:
    return cv2.resize(np.asarray(m, np.float32), dsize=(SIDE, SIDE), interpolation=cv2.INTER_LINEAR)


def _guarded(v: np.ndarray) -> np.ndarray:
    lo, hi = v.min(), v.max()
    return v if hi - lo == 0 else (v - lo) / (hi - lo)


def vssl_pair(pos: np.ndarray, neg: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """vssl_eval's per-clip numbers for one (positive, negative) map pair."""
    pred = 1 - _guarded(-_cv2_up(pos))
    pred_neg = _cv2_up(neg)  # not normalised: vssl_eval's asymmetry
    thr_ciou = np.sort(pred.flatten())[int(pred.shape[0] * pred.shape[1] / 2)]
    return {
        "pia": pia(pred_neg > threshold),
        "pia_thrciou": pia(pred_neg > thr_ciou),
        "iou": vssl_map_iou(pred > threshold, pred_neg > threshold),
    }


# -- ours ----------------------------------------------------------------------------
def _confidence_ap(pos: Sequence[float], neg: Sequence[float]) -> float:
    from sklearn.metrics import average_precision_score

    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    s = np.r_[np.asarray(pos, np.float64), np.asarray(neg, np.float64)]
    if not np.isfinite(s).all():
        raise InputError("confidences hold NaN or infinite values")
    return float(average_precision_score(y, s))


def top_quarter_mean(m: np.ndarray) -> float:
    """A map's own confidence when the model gives none: mean of its largest quarter."""
    flat = np.sort(np.asarray(m, np.float64).reshape(-1))
    return float(flat[-max(1, flat.size // 4) :].mean())


@dataclasses.dataclass
class SensitivityResult:
    probe: str
    n: int
    map_iou: float
    max_true: float
    max_probe: float
    max_drop: float
    pia: float
    auc_pia: float
    ap_sounding: float
    vssl: dict[str, float]
    per_sample: Any

    def to_dict(self) -> dict[str, Any]:
        def clean(v: float) -> float | None:
            return None if v is None or math.isnan(v) else float(v)

        out = {"probe": self.probe, "n": self.n}
        for k in ("map_iou", "max_true", "max_probe", "max_drop", "pia", "auc_pia", "ap_sounding"):
            out[k] = clean(getattr(self, k))
        out["vssl_eval"] = {k: clean(v) for k, v in self.vssl.items()}
        return out


def sensitivity(
    pos_maps: Mapping[str, np.ndarray],
    neg_maps: Mapping[str, np.ndarray],
    *,
    probe: str = "",
    pos_conf: Mapping[str, float] | None = None,
    neg_conf: Mapping[str, float] | None = None,
    preset: str = "default",
) -> SensitivityResult:
    """Compare each clip's true-audio map with its probe map (same ids in both)."""
    import pandas as pd

    ids = [k for k in pos_maps if k in neg_maps]
    if not ids:
        raise InputError("no clip has both a true-audio and a probe map")
    p = get_preset(preset)
    rows = []
    for cid in ids:
        a = np.asarray(pos_maps[cid], np.float32)
        b = np.asarray(neg_maps[cid], np.float32)
        if a.shape != b.shape:
            raise InputError(f"{cid}: true-audio map {a.shape} and probe map {b.shape} differ")
        (fa, fb), _ = binarise([a, b], p)
        inter = np.count_nonzero(fa & fb)
        union = np.count_nonzero(fa | fb)
        # the negative on the positive's scale, both upsampled the same way
        ua, ub = upsample([a.astype(np.float64), b.astype(np.float64)], _same_scale_preset())
        lo, hi = float(ua.min()), float(ua.max())
        span = hi - lo if hi > lo else 1.0
        na, nb = (ua - lo) / span, (ub - lo) / span
        t = np.sort(na.reshape(-1))[na.size // 2]
        v = vssl_pair(a, b)
        rows.append(
            {
                "clip_id": cid,
                "map_iou": inter / union if union else 1.0,
                "max_true": float(a.max()),
                "max_probe": float(b.max()),
                "pia": pia(nb > t),
                "conf_true": (pos_conf or {}).get(cid, top_quarter_mean(a)),
                "conf_probe": (neg_conf or {}).get(cid, top_quarter_mean(b)),
                "vssl_pia": v["pia"],
                "vssl_pia_thrciou": v["pia_thrciou"],
                "vssl_iou": v["iou"],
            }
        )
    f = pd.DataFrame(rows)
    return SensitivityResult(
        probe=probe,
        n=len(ids),
        map_iou=float(f["map_iou"].mean()),
        max_true=float(f["max_true"].mean()),
        max_probe=float(f["max_probe"].mean()),
        max_drop=float((f["max_true"] - f["max_probe"]).mean()),
        pia=float(f["pia"].mean()),
        auc_pia=auc_pia(f["pia"].to_numpy()),
        ap_sounding=_confidence_ap(f["conf_true"], f["conf_probe"]),
        vssl={
            "pia": float(f["vssl_pia"].mean()),
            "auc_pia": auc_pia(f["vssl_pia"].to_numpy()),
            "pia_thrciou": float(f["vssl_pia_thrciou"].mean()),
            "auc_pia_thrciou": auc_pia(f["vssl_pia_thrciou"].to_numpy()),
            "iou_pos_neg": float(f["vssl_iou"].mean()),
        },
        per_sample=f,
    )


def _same_scale_preset() -> Any:
    """Bilinear (half-pixel) upsampling in float64 with no normalisation."""
    import dataclasses as dc

    base = get_preset("lvs")
    return dc.replace(base, name="same-scale", dtype="float64", prenormalise=False)
