"""Videos whose every frame carries its own index, with clicks at known times.

Each frame is split into ``BITS`` vertical bands; band ``b`` is white when bit
``b`` of the frame's 0-based decoded index is set, else black. The index reads
back exactly from any resize that keeps the band centres (see
:func:`frame_index`). The audio is silence with short 2 kHz bursts whose peaks
sit at the given times.
"""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np

from avprep.ffmpeg import ffmpeg_binary

BITS = 11  # up to 2047 frames


def coded_frame(i: int, size: tuple[int, int] = (320, 180)) -> np.ndarray:
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    edges = np.linspace(0, w, BITS + 1).astype(int)
    for b in range(BITS):
        if (i >> b) & 1:
            img[:, edges[b] : edges[b + 1]] = 255
    return img


def frame_index(rgb: np.ndarray) -> int:
    """The index a :func:`coded_frame` carries (read at the band centres)."""
    h, w = rgb.shape[:2]
    gray = rgb.mean(axis=2)
    centres = ((np.arange(BITS) + 0.5) * w / BITS).astype(int)
    bits = [gray[h // 4 : 3 * h // 4, c].mean() > 127 for c in centres]
    return sum(1 << b for b, on in enumerate(bits) if on)


def _burst(rate: int) -> np.ndarray:
    half = int(0.002 * rate)
    k = np.arange(-half, half + 1)
    return np.cos(2 * np.pi * 2000 * k / rate) * 0.5 * (1 + np.cos(np.pi * k / half))


def click_track(seconds: float, rate: int, clicks: list[float]) -> np.ndarray:
    """Silence with 4 ms 2 kHz bursts (Hann envelope) peaking at ``clicks`` (s)."""
    n = int(round(seconds * rate))
    x = np.zeros(n, np.float64)
    burst = _burst(rate)
    half = len(burst) // 2
    for t in clicks:
        c = int(round(t * rate))
        lo, hi = max(0, c - half), min(n, c + half + 1)
        x[lo:hi] += 0.8 * burst[lo - (c - half) : hi - (c - half)]
    return (x * 32767).astype(np.int16)


def click_times(samples: np.ndarray, rate: int) -> list[float]:
    """Centre times (s) of the bursts in ``samples`` (int16), by matched filtering."""
    x = samples.astype(np.float64) / 32768.0
    burst = _burst(rate)
    score = np.correlate(x, burst, mode="same")
    env = np.abs(score)
    out: list[float] = []
    thr = 0.25 * float(burst @ burst) * 0.8
    i, n, gap = 0, len(env), int(0.05 * rate)
    while i < n:
        if env[i] > thr:
            j = min(n, i + gap)
            out.append((i + int(np.argmax(score[i:j]))) / rate)
            i = j
        else:
            i += 1
    return out


def make_coded_video(
    path: str | Path,
    *,
    frames: int = 100,
    fps: int = 25,
    size: tuple[int, int] = (320, 180),
    clicks: list[float] = (),
    audio_seconds: float | None = None,
    sample_rate: int = 16000,
    vfr_after: int | None = None,
    audio_codec: str = "aac",
) -> Path:
    """An H.264 MP4 of ``frames`` coded frames (+ a click track).

    ``vfr_after``: frames from this index on last two frame periods instead of
    one (a variable-frame-rate file: frame ``i`` at ``(i + max(0, i - k)) / fps``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    raw = b"".join(coded_frame(i, size).tobytes() for i in range(frames))
    seconds = audio_seconds
    if seconds is None:
        last = frames - 1 + (max(0, frames - 1 - vfr_after) if vfr_after is not None else 0)
        seconds = (last + 1) / fps
    wav = path.with_suffix(".clicks.wav")
    with wave.open(str(wav), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(sample_rate)
        wf.writeframes(click_track(seconds, sample_rate, list(clicks)).tobytes())
    cmd = [
        ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "pipe:0",
        "-i", str(wav),
    ]  # fmt: skip
    if vfr_after is not None:
        expr = f"(N+max(0\\,N-{vfr_after}))/{fps}/TB"
        cmd += ["-vf", f"setpts={expr}", "-fps_mode", "passthrough"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-qp", "10", "-pix_fmt", "yuv420p"]
    cmd += ["-c:a", audio_codec] + (["-b:a", "96k"] if audio_codec == "aac" else [])
    cmd += [str(path)]
    subprocess.run(cmd, input=raw, check=True)
    wav.unlink()
    return path
