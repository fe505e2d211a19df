"""AudioSet-instrument (Multi-Source, Qian et al. ECCV 2020): its video lists and tags.

The authors' repository describes the set with three files in ``utils/``:

``val_audio.pkl`` (registry ``mssl/audioset-instrument-val``)
    a pickled ``{youtube_id: float64 array (15,)}`` of 0/1 instrument tags,
    1,099 test videos. Read with :mod:`avprep.safepickle` (plain containers and
    numeric numpy arrays only; nothing the file names is ever called).
``train_audio.pkl``
    the same for training; listed in the repository's tree but **absent from
    its public history** (the blob cannot be downloaded). Pass your own copy.
``normav.json`` (registry ``mssl/audioset-instrument-boxes``)
    Faster R-CNN boxes in COCO format for the test frames (``image_id = 10 *
    video + second``, video = index in the sorted ids of ``val_audio.pkl``):
    read by :func:`avmodels.metrics.mssl.read_instrument_gt`.
``audioset_val.npy`` (registry ``mssl/audioset-instrument-frames``)
    (1099, 10) bool: which 1 fps frames of each test video carry boxes (4,503).

The pickles hold no start times: AudioSet segments are 10 s from a start
listed in AudioSet's own segment CSVs (``eval_segments.csv``,
``balanced_train_segments.csv``, ``unbalanced_train_segments.csv``: ``YTID,
start_seconds, end_seconds, "labels"``); :func:`instrument_clips` joins them
when given, and leaves start/end unknown (NaN) otherwise.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from avprep.errors import InputError
from avprep.recipes.formats import register
from avprep.recipes.table import COLUMNS, Collector, Row

#: the 15 instruments, in tag order (= the category ids of normav.json)
INSTRUMENTS = (
    "Banjo",
    "Cello",
    "Drum",
    "Guitar",
    "Harp",
    "Harmonica",
    "Oboe",
    "Piano",
    "Saxophone",
    "Trombone",
    "Trumpet",
    "Violin",
    "Flute",
    "Accordion",
    "Horn",
)
WATCH = "https://www.youtube.com/watch?v="


def read_tags(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{youtube id: (15,) float32 0/1 tags}`` from ``val_audio.pkl`` / ``train_audio.pkl``."""
    from avprep import safepickle

    data = safepickle.load(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a dict of video id -> tags, got {type(data).__name__}")
    out: dict[str, np.ndarray] = {}
    for key, value in data.items():
        vid = key.decode("utf-8") if isinstance(key, bytes) else key
        if not isinstance(vid, str) or not vid:
            raise InputError(f"{path}: video id {key!r} is not a string")
        tags = np.asarray(value, dtype=np.float32).reshape(-1)
        if tags.shape != (len(INSTRUMENTS),) or not np.isin(tags, (0, 1)).all():
            raise InputError(f"{path}: tags of {vid!r} are not 15 zeros and ones")
        out[vid] = tags
    return out


def read_video_ids(path: str | os.PathLike) -> list[str]:
    """The test video ids: the keys of a ``.pkl`` of tags, or a text file (one id a line)."""
    p = Path(path)
    if p.suffix == ".pkl":
        return list(read_tags(p))
    try:
        lines = p.read_text().splitlines()
    except FileNotFoundError:
        raise InputError(f"video id list not found: {p}") from None
    except UnicodeDecodeError:
        raise InputError(f"{p}: not a text list of video ids") from None
    return [s.strip() for s in lines if s.strip() and not s.startswith("#")]


def read_segments(path: str | os.PathLike) -> dict[str, tuple[float, float]]:
    """``{ytid: (start, end)}`` from one of AudioSet's segment CSVs (first row of an id kept)."""
    out: dict[str, tuple[float, float]] = {}
    try:
        fh = open(path, newline="", encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"AudioSet segments file not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read AudioSet segments file {path}: {exc.strerror}") from None
    try:
        with fh:
            for n, row in enumerate(csv.reader(fh, skipinitialspace=True), 1):
                if not row or row[0].startswith("#"):
                    continue
                try:
                    start, end = float(row[1]), float(row[2])
                except (IndexError, ValueError):
                    raise InputError(
                        f"{path}:{n}: expected 'YTID, start_seconds, end_seconds, labels'"
                    ) from None
                if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
                    raise InputError(f"{path}:{n}: start {start} / end {end} is not a segment")
                out.setdefault(row[0], (start, end))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: not an AudioSet segments CSV ({exc})") from None
    return out


def instrument_clips(
    tags: str | os.PathLike,
    *,
    split: str = "test",
    segments: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
) -> pd.DataFrame:
    """The clip table of a tags pickle: one row per video, label = its instruments ('|'-joined).

    With ``segments`` (one or several of AudioSet's CSVs; the first listing of a
    video wins), start/end come from them; videos they do not list keep NaN
    (they are reported by the download stage, never guessed).
    """
    table = read_tags(tags)
    files = [segments] if isinstance(segments, (str, os.PathLike)) else list(segments or [])
    seg: dict[str, tuple[float, float]] = {}
    for f in files:
        for vid, times in read_segments(f).items():
            seg.setdefault(vid, times)
    rows = []
    for vid in sorted(table):
        start, end = seg.get(vid, (math.nan, math.nan))
        label = "|".join(INSTRUMENTS[i] for i in np.flatnonzero(table[vid]))
        rows.append((vid, "url", WATCH + vid, start, end, label or None, split))
    return pd.DataFrame(rows, columns=list(COLUMNS))


@register(
    "mssl-tags-pkl",
    ("url",),
    "Multi-Source AudioSet-instrument tags: a pickled {youtube id: 15 0/1 tags} "
    "(val_audio.pkl, train_audio.pkl), read with a restricted unpickler",
    "{'-0SdAVK79lg': array([0., 0., 0., 1., 0., ...])}",
    unit="item",
    binary=True,
)
def parse_tags_pickle(path: str, col: Collector, dataset: str | None) -> None:
    table = read_tags(path)
    for n, vid in enumerate(sorted(table), 1):
        label = "|".join(INSTRUMENTS[i] for i in np.flatnonzero(table[vid]))
        col.add(n, Row(vid, "url", WATCH + vid, math.nan, math.nan, label or None, None))
