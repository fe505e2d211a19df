"""Train/test leakage: which training clips are also test clips.

Both sides are normalised to clip ids by :func:`avprep.recipes.load_clips`
(so ``videos/0/0/0/123.mp4``, ``123.wav``, ``123,0`` and ``123`` are one clip,
and HTF's ``<ytid>_<ms>_<ms>`` equals ``<ytid>_<start:06d>``). Besides exact
clip overlap, the report counts *videos* shared by both sides: two VGGSound
clips of one YouTube video at different start times are different clip ids
but the same footage.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from avprep.ids import split_vggsound_id
from avprep.recipes import load_clips

Side = str | os.PathLike | pd.DataFrame | Iterable[str]


def video_id(clip_id: str, source: str) -> str:
    """The video a clip comes from: the YouTube id for VGGSound, the video for Chaotic World."""
    if source == "vggsound":
        return split_vggsound_id(clip_id)[0]
    if source == "chaotic":
        return clip_id.rsplit("_", 1)[0]
    return clip_id


def _table(side: Side, skip_bad: bool, dataset: str | None = None) -> pd.DataFrame:
    if isinstance(side, pd.DataFrame):
        return side
    if isinstance(side, str | os.PathLike):
        src = Path(side) if isinstance(side, os.PathLike) else side
        return load_clips(src, skip_bad=skip_bad, dataset=dataset)
    ids = list(dict.fromkeys(side))
    return pd.DataFrame({"clip_id": ids, "source": ["other"] * len(ids)})


def _label(side: Side, df: pd.DataFrame) -> str | None:
    if isinstance(side, str | os.PathLike):
        return df.attrs.get("name") or str(side)
    return None


def check_leakage(
    train: Side, test: Side, *, skip_bad: bool = False, dataset: str | None = None
) -> dict:
    """Compare two clip lists (paths, registry names, clip tables or id iterables).

    Returns ``train``, ``test`` (numbers of distinct clips), ``overlap`` (train
    clips that are test clips) and ``overlap_ids`` (sorted), plus
    ``overlap_fraction_of_test``, ``video_overlap`` / ``video_overlap_ids``
    (videos on both sides), and ``train_name`` / ``test_name``. ``dataset``
    reads both lists as that corpus (``chaotic``: ``<VID>_<fid>`` ids, so
    videos are compared too).
    """
    tr, te = _table(train, skip_bad, dataset), _table(test, skip_bad, dataset)
    tr_ids, te_ids = set(tr["clip_id"]), set(te["clip_id"])
    overlap = sorted(tr_ids & te_ids)

    def videos(df: pd.DataFrame) -> set[str]:
        return {video_id(c, s) for c, s in zip(df["clip_id"], df["source"])}

    video_overlap = sorted(videos(tr) & videos(te))
    return {
        "train_name": _label(train, tr),
        "test_name": _label(test, te),
        "train": len(tr_ids),
        "test": len(te_ids),
        "overlap": len(overlap),
        "overlap_fraction_of_test": round(len(overlap) / len(te_ids), 6) if te_ids else 0.0,
        "overlap_ids": overlap,
        "video_overlap": len(video_overlap),
        "video_overlap_ids": video_overlap,
    }
