"""Key frames: which time to take, resizing as each original does, JPEG out.

Frames reach Python as RGB arrays (ffmpeg writes PPM images to a pipe; the
header carries the size, so rotation and odd sizes need no guessing). They
are resized with OpenCV, as the originals do (SSPL: ``cv2.resize`` INTER_CUBIC
to 256×256; Multi-Source: INTER_LINEAR), and written as baseline JPEG by
OpenCV at ``jpeg_quality`` (95, OpenCV's default, what HTF's ``cv2.imwrite``
produces).
"""

from __future__ import annotations

import os

import numpy as np

from avprep.atomic import atomic_path
from avprep.errors import MediaError
from avprep.profiles import Profile, frame_at_value

_INTERP = {"cubic": "INTER_CUBIC", "linear": "INTER_LINEAR", "area": "INTER_AREA"}


def _cv2():
    import cv2

    # workers are processes already; OpenCV threads would only oversubscribe
    cv2.setNumThreads(1)
    return cv2


def frame_time(profile: Profile, duration: float, fps: float | None, need_next: bool) -> float:
    """The time (s) whose frame is asked for, clamped into the clip.

    ``duration`` should be the video track's. ``middle`` is half of it; the
    frame taken is the one *shown* at that time (the last frame starting at
    or before it): for a constant-rate clip of N frames that is frame N // 2,
    the frame HTF (``CAP_PROP_POS_FRAMES = N // 2``) and SSPL
    (``all_jpgs[int(len / 2)]``) take, for odd N too. A time in seconds at or
    past the end raises :class:`MediaError` (the clip fails with the reason;
    nothing is clamped). The middle of a clip too short for a frame after it
    stays clamped to the last frame (the one before it when flow needs one).
    """
    kind, value = frame_at_value(profile.frame_at)
    t = duration / 2.0 if kind in ("middle", "fps") else float(value)
    if kind == "seconds":
        if t >= duration:
            raise MediaError(
                f"frame time {t:.3f} s is past the end of the video ({duration:.3f} s)"
            )
        return t
    step = 1.0 / fps if fps else 0.04
    last = max(0.0, duration - step * (2 if need_next else 1))
    return min(max(0.0, t), last)


def shown_at(times: list[float | None], t: float) -> int | None:
    """Index of the frame shown at ``t``: the last with a timestamp <= t (None if none)."""
    best = None
    for i, x in enumerate(times):
        if x is not None and x <= t + 1e-6:
            best = i
    return best


def parse_ppm_stream(data: bytes) -> list[np.ndarray]:
    """Split concatenated binary PPM (P6, maxval 255) images into RGB arrays."""
    frames: list[np.ndarray] = []
    pos, n = 0, len(data)
    while pos < n:
        fields: list[bytes] = []
        i = pos
        if data[i : i + 2] != b"P6":
            raise MediaError(f"unexpected frame data from ffmpeg at byte {pos}")
        i += 2
        while len(fields) < 3:
            while i < n and data[i : i + 1].isspace():
                i += 1
            j = i
            while j < n and not data[j : j + 1].isspace():
                j += 1
            fields.append(data[i:j])
            i = j
        i += 1  # the single whitespace after maxval
        w, h, maxval = (int(f) for f in fields)
        if maxval != 255:
            raise MediaError(f"unexpected PPM maxval {maxval}")
        size = w * h * 3
        if i + size > n:
            raise MediaError("frame data from ffmpeg is cut short")
        frames.append(np.frombuffer(data, np.uint8, size, i).reshape(h, w, 3))
        pos = i + size
    return frames


def resize(rgb: np.ndarray, profile: Profile) -> np.ndarray:
    """Resize an RGB frame as the profile says (squash, short side or none)."""
    if profile.resize == "none":
        return rgb
    cv2 = _cv2()
    h, w = rgb.shape[:2]
    s = int(profile.image_size)
    if profile.resize == "squash":
        size = (s, s)
    else:  # short-side: the shorter side becomes s, aspect kept
        if w <= h:
            size = (s, max(1, int(round(h * s / w))))
        else:
            size = (max(1, int(round(w * s / h))), s)
    if size == (w, h):
        return rgb
    return cv2.resize(rgb, size, interpolation=getattr(cv2, _INTERP[profile.interpolation]))


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    cv2 = _cv2()
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:
        raise MediaError("JPEG encoding failed")
    return buf.tobytes()


def write_jpeg(path: str | os.PathLike, rgb: np.ndarray, quality: int) -> None:
    data = encode_jpeg(rgb, quality)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def read_jpeg(path: str | os.PathLike) -> np.ndarray:
    """An RGB array of a stored frame (for tests and readers)."""
    cv2 = _cv2()
    bgr = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise MediaError(f"{path}: not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
