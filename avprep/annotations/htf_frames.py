"""Hear-The-Flow's Flickr test frames (``preprocess/imagetoframe*.pickle``).

Hear-The-Flow scores each Flickr test clip on the frame the original Flickr
annotation was drawn on. Its pickles map a Flickr id (str) to a list of frame
numbers; ``preprocess_flickr_test.py`` uses element 0, ``N``, as the 1-based
number of the frame (OpenCV ``CAP_PROP_POS_FRAMES = N - 1``), or the frame
before it when ``N`` is the video's frame count (the flow needs a next frame),
and overrides three ids in code (:data:`HTF_OVERRIDES`). Its test audio is
centred on ``floor(samples / 22050) / 2`` s of the decoded track.

The pickles are read with :mod:`avprep.safepickle` (plain containers, strings
and numbers only; nothing a pickle names is called). :func:`times_rows` turns
one into the rows of an ``avprep extract --times`` file for the videos at hand.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from avprep import safepickle
from avprep.errors import AnnotationError
from avprep.ids import is_safe_id

# preprocess_flickr_test.py sets these after loading imagetoframe.pickle
HTF_OVERRIDES = {"5344317532": 74, "10624261424": 514, "12158276143": 375}


def read_imagetoframe(path: str | os.PathLike, *, overrides: bool = True) -> dict[str, int]:
    """``{flickr id: N}`` (element 0 of each list; HTF's three overrides applied)."""
    data = safepickle.load(path)
    if not isinstance(data, dict):
        raise AnnotationError(
            f"{path}: expected a dict of id -> frame list, got {type(data).__name__}"
        )
    out: dict[str, int] = {}
    for key, frames in data.items():
        cid = str(key)
        if not is_safe_id(cid) or not cid.isdigit():
            raise AnnotationError(f"{path}: {cid[:40]!r} is not a Flickr id")
        if not isinstance(frames, list) or not frames:
            raise AnnotationError(f"{path}: {cid}: expected a non-empty list of frame numbers")
        n = frames[0]
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise AnnotationError(f"{path}: {cid}: frame {n!r} is not a 1-based frame number")
        out[cid] = n
    if overrides:
        out.update(HTF_OVERRIDES)
    return out


def htf_frame(n: int, total_frames: int) -> int:
    """The 1-based frame HTF takes for annotation ``N``: ``N``, or ``N - 1`` at the end."""
    return n - 1 if n == total_frames else n


def htf_audio_centre(decoded_seconds: float) -> float:
    """HTF's test window centre: ``floor(len(samples) / 22050) / 2`` seconds."""
    return math.floor(decoded_seconds + 1e-9) / 2.0


def times_rows(
    frames: dict[str, int], videos: dict[str, str]
) -> tuple[list[tuple[str, str, int, float]], list[str]]:
    """``(rows, problems)``: ``(clip_id, video, frame, time)`` for each id with a video.

    ``videos`` maps ids to files; frame counts and the decoded audio length
    come from the container (:func:`avprep.stages.mediainfo.clip_info`).
    """
    from avprep.stages.mediainfo import clip_info

    rows, problems = [], []
    for cid, n in frames.items():
        path = videos.get(cid)
        if path is None:
            problems.append(f"{cid}: no video")
            continue
        info = clip_info(Path(path))
        total = info.frames
        seconds = info.audio_signal_duration or info.audio_duration or info.media.duration
        if not total or not seconds:
            problems.append(f"{cid}: frame count or audio length unknown ({Path(path).name})")
            continue
        rows.append((cid, cid, htf_frame(n, total), htf_audio_centre(seconds)))
    return rows, problems
