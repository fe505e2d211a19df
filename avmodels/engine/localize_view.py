"""The picture ``avmodels localize`` writes: the map over the video's own frame.

The model sees a small frame (e.g. 224 px, or 128 px in the demo); the
picture is drawn over the frame decoded again from the video at the same
time and at the video's own resolution (rotation applied, as players show
it), with the map's peak marked, the timestamp written in the corner and a
colour bar saying which colour is high.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from avprep import ffmpeg
from avprep.errors import MediaError
from avprep.stages.frames import parse_ppm_stream

PEAK = (255, 255, 255)


def source_frame(video: str | os.PathLike, t: float | None) -> np.ndarray:
    """The frame shown at ``t`` seconds (the first when ``None``), RGB at the video's size."""
    args = [] if t is None else ["-ss", f"{max(0.0, float(t)):.6f}"]
    args += ["-i", str(video), "-frames:v", "1", "-c:v", "ppm", "-f", "image2pipe", "pipe:1"]
    proc = ffmpeg.run(args, what=f"decode the frame at {t} s")
    frames = parse_ppm_stream(proc.stdout)
    if not frames:
        raise MediaError(f"{video}: no frame at {t} s")
    return frames[0].copy()


def _colour_bar(height: int, width: int) -> np.ndarray:
    ramp = np.linspace(255, 0, height, dtype=np.float32)[:, None]  # high at the top
    bar = cv2.applyColorMap(np.repeat(ramp, width, axis=1).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.cvtColor(bar, cv2.COLOR_BGR2RGB)


def render(frame: np.ndarray, heat: np.ndarray, t: float | None, alpha: float = 0.5) -> np.ndarray:
    """Overlay, peak marker, timestamp and colour bar on ``frame`` (RGB uint8)."""
    from avmodels.engine.localize import overlay

    h, w = frame.shape[:2]
    out = overlay(frame, heat, alpha).copy()
    unit = max(1, min(h, w) // 120)
    m = np.asarray(heat, dtype=np.float32)
    if m.size and float(m.max()) > float(m.min()):
        py, px = np.unravel_index(int(np.argmax(m)), m.shape)
        centre = (int((px + 0.5) / m.shape[1] * w), int((py + 0.5) / m.shape[0] * h))
        cv2.circle(out, centre, 4 * unit, PEAK, -1, cv2.LINE_AA)
        cv2.circle(out, centre, 4 * unit, (0, 0, 0), max(1, unit), cv2.LINE_AA)
    if t is not None:
        text = f"{t:.2f} s"
        scale = 0.45 * unit
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, unit)
        pad = 3 * unit
        cv2.rectangle(out, (0, 0), (tw + 2 * pad, th + base + 2 * pad), (0, 0, 0), -1)
        cv2.putText(out, text, (pad, pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                    unit, cv2.LINE_AA)  # fmt: skip
    # the colour bar: a strip to the right, high at the top, labelled
    scale = 0.35 * max(1, unit)
    bar_w, gap = max(8, w // 40), max(4, w // 100)
    label_w = cv2.getTextSize("high", cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, unit // 2))[0][0] + 6
    panel = np.full((h, gap + bar_w + label_w, 3), 255, np.uint8)
    margin = max(4, h // 20)
    panel[margin : h - margin, gap : gap + bar_w] = _colour_bar(h - 2 * margin, bar_w)
    for word, y in (("high", margin + 10 * unit), ("low", h - margin)):
        cv2.putText(panel, word, (gap + bar_w + 2, y), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0), max(1, unit // 2), cv2.LINE_AA)  # fmt: skip
    return np.concatenate([out, panel], axis=1)
