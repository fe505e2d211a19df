"""Metric presets: how a localisation map becomes a binary prediction.

Each paper's evaluation script upsamples the model's map to 224x224, normalises
it, binarises it and draws the ground truth by its own small rules; those rules
move published numbers by points, so a preset named after a paper reproduces
its script *exactly* (equal aggregates to 1e-6 on the same maps):

========  ==========================  ===============  =======================  ==============
preset    upsampling (float32)        normalisation    foreground               VGG-SS box px
========  ==========================  ===============  =======================  ==============
lvs       cv2 INTER_LINEAR            ``1 - N(-u)``    ``p > t`` or ``p >= 1``  int(224 max(x,0))
ezvsl     torch bilinear,             ``N(u)``         ``p >= t``               int(clip(x) 224)
          ``align_corners=True``
ssltie    cv2 INTER_LINEAR            ``1 - N(-u)``    ``p > t`` or ``p >= 1``  int(224 x)
sspl      cv2 INTER_LINEAR            (u-min)/ptp      ``p >= 0.5``             int(224 max(x,0))
htf       cv2 INTER_CUBIC             ``N(u)``         ``p > t`` or ``p >= 1``  int(224 max(x,0))
default   N at map size (float64),    none             ``u > t`` or ``u = max``  pixel centres
          then cv2 INTER_LINEAR
========  ==========================  ===============  =======================  ==============

Multi-Source's presets (``mssl``: its paper's ``gtscore.py``; ``mssl-main``,
``mssl-calmetric``: later scripts) score on a 256 px grid with torch bilinear
upsampling (``align_corners=False``), fixed thresholds and a ground truth shifted
one pixel (see :mod:`avmodels.metrics.mssl`).

``N(v) = (v - min v) / (max v - min v)``, returning ``v`` unchanged when the map
is constant; ``t`` is element ``int(H*W/2)`` of the ascending sort. ``1 - N(-u)``
is kept as written: it equals ``N(u)`` algebraically but not in float32.

Our ``default`` fixes what the originals leave to chance: a constant map marks
nothing (IoU 0, never NaN; the originals give the whole image or nothing
depending on the constant's sign or size), 0/0 is 0, the maximum plateau is
always foreground, maps are min-max normalised in float64 before the float32
upsampling (a map like ``1000 + 1e-4 * x`` keeps its detail) and boxes are
rasterised by pixel centres (any size, no 1-pixel shift).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import cv2
import numpy as np

from avprep.errors import ToolMissingError
from avprep.registry import Registry

# Upsampling methods.
CV2_LINEAR = "cv2_linear"
CV2_CUBIC = "cv2_cubic"
TORCH_BILINEAR_AC = "torch_bilinear_align_corners"
TORCH_BILINEAR = "torch_bilinear"  # align_corners=False (Multi-Source)
UPSAMPLERS = (CV2_LINEAR, CV2_CUBIC, TORCH_BILINEAR_AC, TORCH_BILINEAR)

# Normalisations.
NORM_NONE = "none"
NORM_MINMAX = "minmax"  # N(u), constant maps returned unchanged
NORM_ONE_MINUS_NEG = "one_minus_neg_minmax"  # 1 - N(-u)
NORM_MINMAX_UNGUARDED = "minmax_unguarded"  # (u - min) / ptp(u): 0/0 -> NaN
NORM_DIVIDE_MAX = "divide_max"  # u / max(u) (Multi-Source new/main.py): 0/0 -> NaN

# Foreground rules.
FG_ABOVE_MEDIAN_OR_GE1 = "above_median_or_ge1"  # p > t or p >= 1 (LVS code path)
FG_AT_LEAST_MEDIAN = "at_least_median"  # p >= t (EZ-VSL)
FG_AT_LEAST_FIXED = "at_least_fixed"  # p >= threshold (SSPL: 0.5)
FG_ABOVE_MEDIAN_OR_MAX = "above_median_or_max"  # ours: u > t or u == max; constant: none
FG_ABOVE_FIXED = "above_fixed"  # p > threshold (Multi-Source new/main.py, new/cal_metric.py)


@dataclasses.dataclass(frozen=True)
class Preset:
    """One evaluation convention. All maps are scored on a ``size`` x ``size`` grid."""

    name: str
    description: str
    upsample: str
    dtype: str
    normalise: str
    foreground: str
    pixel_rule: str
    threshold: float | None = None
    size: int = 224
    #: IoU of an empty prediction against an empty ground truth.
    zero_over_zero: float = float("nan")
    constant_map: str = ""
    #: Min-max the model's map in float64 at its own resolution before upsampling
    #: (ours: keeps detail of maps with a large offset when cast to float32).
    prenormalise: bool = False

    def __post_init__(self) -> None:
        if self.upsample not in UPSAMPLERS:
            raise ValueError(f"unknown upsampling {self.upsample!r}")
        if self.foreground in (FG_AT_LEAST_FIXED, FG_ABOVE_FIXED) and self.threshold is None:
            raise ValueError("a fixed-threshold preset needs a threshold")

    @property
    def kth(self) -> int:
        """0-based index of the median element in the ascending sort (25088 at 224x224)."""
        return int(self.size * self.size / 2)

    def table_row(self) -> dict[str, str]:
        return {
            "preset": self.name,
            "upsampling": f"{self.upsample} ({self.dtype})",
            "normalisation": self.normalise,
            "foreground": self.foreground
            + (f" {self.threshold}" if self.threshold is not None else ""),
            "box pixels": self.pixel_rule,
            "constant map": self.constant_map,
        }


PRESETS: Registry[Preset] = Registry("metric preset")
DEFAULT_PRESET = "default"

PRESETS.add(
    "default",
    Preset(
        name="default",
        description="ours: min-max at the map's own resolution (float64), bilinear "
        "(half-pixel) upsampling, strictly above the median or at the maximum, "
        "pixel-centre boxes; constant maps mark nothing; never NaN",
        upsample=CV2_LINEAR,
        dtype="float32",
        prenormalise=True,
        normalise=NORM_NONE,
        foreground=FG_ABOVE_MEDIAN_OR_MAX,
        pixel_rule="clean",
        zero_over_zero=0.0,
        constant_map="nothing (IoU 0)",
    ),
)
PRESETS.add(
    "lvs",
    Preset(
        name="lvs",
        description="Chen et al., CVPR 2021 (LVS) test.py",
        upsample=CV2_LINEAR,
        dtype="float32",
        normalise=NORM_ONE_MINUS_NEG,
        foreground=FG_ABOVE_MEDIAN_OR_GE1,
        pixel_rule="lvs",
        constant_map="c >= 0: whole image; c < 0: nothing",
    ),
)
PRESETS.add(
    "ezvsl",
    Preset(
        name="ezvsl",
        description="Mo & Morgado, ECCV 2022 (EZ-VSL) test.py, without the objectness blend",
        upsample=TORCH_BILINEAR_AC,
        dtype="float32",
        normalise=NORM_MINMAX,
        foreground=FG_AT_LEAST_MEDIAN,
        pixel_rule="ezvsl",
        constant_map="whole image",
    ),
)
PRESETS.add(
    "ssltie",
    Preset(
        name="ssltie",
        description="Liu et al., ACM MM 2022 (SSL-TIE) main.py validation",
        upsample=CV2_LINEAR,
        dtype="float32",
        normalise=NORM_ONE_MINUS_NEG,
        foreground=FG_ABOVE_MEDIAN_OR_GE1,
        pixel_rule="ssltie",
        constant_map="c >= 0: whole image; c < 0: nothing",
    ),
)
PRESETS.add(
    "sspl",
    Preset(
        name="sspl",
        description="Song et al., CVPR 2022 (SSPL) test.py eval_cal_ciou(thres=0.5)",
        upsample=CV2_LINEAR,
        dtype="float32",
        normalise=NORM_MINMAX_UNGUARDED,
        foreground=FG_AT_LEAST_FIXED,
        threshold=0.5,
        pixel_rule="sspl",
        constant_map="all NaN: nothing",
    ),
)
PRESETS.add(
    "htf",
    Preset(
        name="htf",
        description="Fedorishin et al., WACV 2023 (Hear The Flow) train.py test_step",
        upsample=CV2_CUBIC,
        dtype="float32",
        normalise=NORM_MINMAX,
        foreground=FG_ABOVE_MEDIAN_OR_GE1,
        pixel_rule="htf",
        constant_map="c >= 1: whole image; c < 1: nothing",
    ),
)

# Multi-Source (Qian et al., ECCV 2020): 256 px grid, GT shifted one pixel (the "mssl"
# pixel rule, avmodels/metrics/mssl.py, which also holds its AudioSet-instrument metric).
PRESETS.add(
    "mssl",
    Preset(
        name="mssl",
        description="Qian et al., ECCV 2020 (Multi-Source) gtscore.py: the paper's Flickr "
        "numbers; bilinear to 256 px, not normalised, foreground >= 0.1",
        upsample=TORCH_BILINEAR,
        dtype="float32",
        normalise=NORM_NONE,
        foreground=FG_AT_LEAST_FIXED,
        threshold=0.1,
        pixel_rule="mssl",
        size=256,
        constant_map="c >= 0.1: whole image; else nothing",
    ),
)
PRESETS.add(
    "mssl-main",
    Preset(
        name="mssl-main",
        description="Multi-Source new/main.py test(): bilinear to 256 px, divided by its "
        "maximum, foreground > 0.5",
        upsample=TORCH_BILINEAR,
        dtype="float32",
        normalise=NORM_DIVIDE_MAX,
        foreground=FG_ABOVE_FIXED,
        threshold=0.5,
        pixel_rule="mssl",
        size=256,
        constant_map="c > 0: whole image; 0: nothing (NaN)",
    ),
)
PRESETS.add(
    "mssl-calmetric",
    Preset(
        name="mssl-calmetric",
        description="Multi-Source new/cal_metric.py on main.py's saved maps: divided by "
        "the maximum, foreground > 0.001",
        upsample=TORCH_BILINEAR,
        dtype="float32",
        normalise=NORM_DIVIDE_MAX,
        foreground=FG_ABOVE_FIXED,
        threshold=0.001,
        pixel_rule="mssl",
        size=256,
        constant_map="c > 0: whole image; 0: nothing (NaN)",
    ),
)


def get_preset(preset: str | Preset) -> Preset:
    return preset if isinstance(preset, Preset) else PRESETS.get(preset)


# -- the steps, vectorised over a stack of maps --------------------------------


def upsample(maps: Sequence[np.ndarray], preset: Preset) -> np.ndarray:
    """Upsample same-shape 2-D maps to ``(k, size, size)`` as the preset's library does.

    cv2 is called map by map: its multi-channel path rounds differently, so a
    stack would not reproduce the originals bit for bit.
    """
    dtype = np.dtype(preset.dtype)
    s = preset.size
    if preset.prenormalise:
        maps = [_prenormalise(m) for m in maps]
    if preset.upsample in (TORCH_BILINEAR_AC, TORCH_BILINEAR):
        try:
            import torch
            import torch.nn.functional as F  # noqa: N812
        except ImportError as exc:  # pragma: no cover - torch is a dependency
            raise ToolMissingError(f"the {preset.name} preset needs torch: {exc}") from None
        stack = np.stack([np.asarray(m, dtype=dtype) for m in maps])[:, None]
        with torch.no_grad():
            up = F.interpolate(
                torch.from_numpy(stack),
                size=(s, s),
                mode="bilinear",
                align_corners=preset.upsample == TORCH_BILINEAR_AC,
            )
        return up[:, 0].numpy()
    interp = cv2.INTER_LINEAR if preset.upsample == CV2_LINEAR else cv2.INTER_CUBIC
    out = np.empty((len(maps), s, s), dtype=dtype)
    for i, m in enumerate(maps):
        cv2.resize(np.ascontiguousarray(m, dtype=dtype), (s, s), dst=out[i], interpolation=interp)
    return out


def _prenormalise(m: np.ndarray) -> np.ndarray:
    """Min-max one map in float64 (a constant map becomes all zeros)."""
    m = np.asarray(m, dtype=np.float64)
    lo, hi = m.min(), m.max()
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def _span(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-map ``min``, ``max``, ``max - min`` (k, 1, 1) and the flat-map flags (k,)."""
    flat = v.reshape(v.shape[0], -1)
    vmin = flat.min(axis=1).reshape(-1, 1, 1)
    vmax = flat.max(axis=1).reshape(-1, 1, 1)
    span = vmax - vmin
    return vmin, vmax, span, span[:, 0, 0] == 0


def _minmax_guarded(v: np.ndarray) -> np.ndarray:
    """``N(v)`` per map, the originals' ``normalize_img``: a constant map is returned unchanged."""
    vmin, _, span, flat = _span(v)
    p = np.subtract(v, vmin)
    p /= np.where(span == 0, np.ones_like(span), span)
    if flat.any():
        p[flat] = v[flat]
    return p


def _one_minus_n_of_neg(u: np.ndarray) -> np.ndarray:
    """``1 - N(-u)`` bit for bit, in three passes over one buffer.

    ``min(-u) = -max(u)`` and ``(-u) - (-m) = m - u`` are exact in IEEE
    arithmetic, so ``N(-u) = (max u - u) / (max u - min u)`` to the last bit.
    A constant map comes back from N unchanged: ``1 - (-u)``.
    """
    _, vmax, span, flat = _span(u)
    p = np.subtract(vmax, u)
    p /= np.where(span == 0, np.ones_like(span), span)
    one = u.dtype.type(1)
    np.subtract(one, p, out=p)
    if flat.any():
        p[flat] = one - (-u[flat])
    return p


def normalise(u: np.ndarray, preset: Preset) -> np.ndarray:
    """The preset's normalisation of upsampled maps ``u`` (k, H, W), in ``u``'s dtype."""
    mode = preset.normalise
    if mode == NORM_NONE:
        return u
    if mode == NORM_MINMAX:
        return _minmax_guarded(u)
    if mode == NORM_ONE_MINUS_NEG:
        # Kept as the originals write it: 1 - N(-u) is not N(u) in float32.
        return _one_minus_n_of_neg(u)
    if mode == NORM_DIVIDE_MAX:
        _, vmax, _, _ = _span(u)
        with np.errstate(invalid="ignore", divide="ignore"):
            return u / vmax
    if mode == NORM_MINMAX_UNGUARDED:
        vmin, _, span, _ = _span(u)
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.subtract(u, vmin)
            p /= span
            return p
    raise ValueError(f"unknown normalisation {mode!r}")


def median_element(p: np.ndarray, kth: int) -> np.ndarray:
    """Element ``kth`` of each map's ascending sort (``np.sort(p.flat)[kth]``), shape (k, 1, 1)."""
    flat = p.reshape(p.shape[0], -1)
    return np.partition(flat, kth, axis=1)[:, kth].reshape(-1, 1, 1)


def foreground(p: np.ndarray, preset: Preset) -> np.ndarray:
    """Binary prediction (k, H, W) from normalised maps ``p``.

    Two-term rules are folded into one comparison per map (one pass instead of
    three): ``(p > t) | (p >= 1)`` is ``p > t`` when ``t < 1`` and ``p >= 1``
    otherwise, i.e. ``p > s`` with ``s`` the largest float below 1; likewise
    ``(p > t) | (p == max)`` is ``p > t`` unless ``t`` is the maximum.
    """
    rule = preset.foreground
    if rule == FG_AT_LEAST_FIXED:
        return p >= p.dtype.type(preset.threshold)
    if rule == FG_ABOVE_FIXED:
        return p > p.dtype.type(preset.threshold)
    t = median_element(p, preset.kth)
    if rule == FG_AT_LEAST_MEDIAN:
        return p >= t
    if rule == FG_ABOVE_MEDIAN_OR_GE1:
        # Their code: p[p > t] = 1; p[p < 1] = 0; then p >= 0.5. Values >= 1 that
        # were not above t survive the second step.
        below_one = np.nextafter(p.dtype.type(1), p.dtype.type(0))
        return p > np.where(t < 1, t, below_one)
    if rule == FG_ABOVE_MEDIAN_OR_MAX:
        _, vmax, _, flat = _span(p)
        below_max = np.nextafter(vmax, p.dtype.type(-np.inf))
        s = np.where(t < vmax, t, below_max)
        s[flat] = np.inf  # a constant map marks nothing
        return p > s
    raise ValueError(f"unknown foreground rule {rule!r}")


def binarise(maps: Sequence[np.ndarray], preset: str | Preset) -> tuple[np.ndarray, np.ndarray]:
    """``(F, u)``: binary predictions and upsampled maps for same-shape ``maps``."""
    preset = get_preset(preset)
    u = upsample(maps, preset)
    p = normalise(u, preset)
    return foreground(p, preset), u


from avmodels.metrics import mssl as _mssl  # noqa: E402, F401 - registers the "mssl" pixel rule
