"""The report's images: a map over its frame, the success-rate curve, PNG writing."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from avprep.atomic import atomic_path, write_bytes
from avprep.errors import InputError

OVERLAY_SIDE = 256  # pixels of the longer side of an overlay image
GT_COLOUR = (40, 230, 40)  # RGB of the ground-truth boxes
PEAK_COLOUR = (255, 255, 255)


def _normalise(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    lo, hi = float(m.min()), float(m.max())
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return np.zeros_like(m)
    return (m - lo) / (hi - lo)


def overlay(
    frame: np.ndarray,
    heatmap: np.ndarray,
    boxes: Iterable[Sequence[float]] = (),
    *,
    side: int = OVERLAY_SIDE,
    alpha: float = 0.45,
) -> np.ndarray:
    """The frame (enlarged to ``side`` px) under the min-max normalised map, as RGB uint8.

    The map is stretched over the whole frame (bilinear), coloured with the jet
    colour map, and blended with weight ``alpha``; ground-truth boxes are drawn
    in green and the map's peak as a white dot.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise InputError(f"expected an (H, W, 3) uint8 frame, got {frame.dtype} {frame.shape}")
    h, w = frame.shape[:2]
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    big = cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC)
    heat = cv2.resize(_normalise(heatmap), size, interpolation=cv2.INTER_LINEAR)
    heat_u8 = np.clip(heat * 255.0 + 0.5, 0, 255).astype(np.uint8)
    colour = cv2.cvtColor(cv2.applyColorMap(heat_u8, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    out = cv2.addWeighted(big, 1.0 - alpha, colour, alpha, 0.0)
    W, H = size
    thick = max(1, side // 128)
    for b in boxes:
        x0, y0, x1, y1 = (float(v) for v in b)
        p0 = (int(round(x0 * W)), int(round(y0 * H)))
        p1 = (int(round(x1 * W)) - 1, int(round(y1 * H)) - 1)
        cv2.rectangle(out, p0, p1, GT_COLOUR, thick)
    m = np.asarray(heatmap, dtype=np.float32)
    if m.size and float(m.max()) > float(m.min()):
        py, px = np.unravel_index(int(np.argmax(m)), m.shape)
        centre = (int((px + 0.5) / m.shape[1] * W), int((py + 0.5) / m.shape[0] * H))
        cv2.circle(out, centre, 3 * thick, PEAK_COLOUR, -1)
        cv2.circle(out, centre, 3 * thick, (0, 0, 0), 1)
    return out


def save_png(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG, atomically."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputError(f"cannot encode {path} as PNG")
    return write_bytes(path, buf.tobytes())


def plot_success(
    curves: Mapping[str, Sequence[float]],
    path: str | os.PathLike,
    thresholds: Sequence[float] | None = None,
) -> Path:
    """Plot "fraction of clips with IoU >= t" against ``t`` for each named curve (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if thresholds is None:
        from avmodels.metrics import THRESHOLDS

        thresholds = THRESHOLDS
    fig = Figure(figsize=(6.0, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    styles = {"ceiling": ":", "centre": "--", "random": "-."}
    for name, curve in curves.items():
        ys = [float("nan") if v is None else float(v) for v in curve]
        if len(ys) != len(thresholds):
            raise InputError(f"curve {name!r} has {len(ys)} points, expected {len(thresholds)}")
        ax.plot(list(thresholds), ys, styles.get(name, "-"), marker="o", markersize=3, label=name)
    ax.axvline(0.5, color="grey", linewidth=0.8)
    ax.text(0.505, 0.97, "cIoU threshold", color="grey", fontsize=8, va="top")
    ax.set_xlabel("IoU threshold t")
    ax.set_ylabel("fraction of clips with IoU >= t")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
