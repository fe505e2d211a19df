"""Chaotic World: from the ``SSL_ssl_format`` folder to the files the recipe runs on.

:func:`prepare` writes, into ``OUT``:

- ``clips.csv``: the clip table (``clip_id, video, frame, time, label, boxes, split, rows``;
  ``boxes`` as JSON, 320x180 pixels);
- ``times-train.csv`` / ``times-test.csv``: ``clip_id, video, frame, time`` for
  ``avprep extract --times`` (the frame by ``start_fid``, the audio centred on
  ``start_time``, as the fork);
- ``train_ids.txt`` / ``test_ids.txt``: the clip ids in the fork's row order
  (for ``pack-h5 --ids``);
- ``ChaoticWorld_test.json``: the test ground truth in the fork's format
  (``{"file", "class", "bbox": [x1, y1, x2, y2]}``, 320x180 pixels): with
  ``last`` one entry per frame holding the box the fork scores (the first box
  of the frame's last row); with ``merge`` one entry per box of every row of
  the frame, which ``avmodels eval --benchmark chaotic`` reads as their union;
- ``summary.json``: the counts below and the train/test leakage at video and frame level.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from avprep.annotations.chaotic_ssl import ClipTable, build_clip_table
from avprep.atomic import write_text
from avprep.leakage import check_leakage


def _num(v: float) -> int | float:
    return int(v) if float(v).is_integer() else float(v)


def _box(b) -> list[int | float]:
    return [_num(v) for v in b]


def fork_test_json(table: ClipTable, duplicate_frames: str) -> list[dict[str, Any]]:
    """The test ground truth in the fork's JSON format (see the module doc)."""
    out: list[dict[str, Any]] = []
    for c in table.split("test"):
        if duplicate_frames == "last":
            out.append({"file": c.clip_id, "class": c.label, "bbox": _box(c.fork_box)})
        else:
            out += [{"file": c.clip_id, "class": c.label, "bbox": _box(b)} for b in c.boxes]
    return out


def leakage(table: ClipTable) -> dict[str, Any]:
    """Train vs test at frame level (clip ids) and video level."""

    def frame(split: str) -> pd.DataFrame:
        ids = list(dict.fromkeys(c.clip_id for c in table.split(split)))
        return pd.DataFrame({"clip_id": ids, "source": ["chaotic"] * len(ids)})

    rep = check_leakage(frame("train"), frame("test"))
    listed = sorted(set(table.train_videos) & set(table.test_videos))
    rep["videos_on_both_lists"] = listed
    return rep


def prepare(
    root: str | os.PathLike, out_dir: str | os.PathLike, *, duplicate_frames: str = "merge"
) -> dict[str, Any]:
    """Write the recipe's inputs (see the module doc); return the summary."""
    table = build_clip_table(root, duplicate_frames=duplicate_frames)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["clip_id", "video", "frame", "time", "label", "boxes", "split", "rows"])
    for c in table.clips:
        boxes = json.dumps([_box(b) for b in c.boxes])
        w.writerow([c.clip_id, c.video, c.frame, repr(c.time), c.label, boxes, c.split, c.rows])
    write_text(out / "clips.csv", buf.getvalue())
    for split in ("train", "test"):
        clips = table.split(split)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["clip_id", "video", "frame", "time"])
        for c in clips:
            w.writerow([c.clip_id, c.video, c.frame, repr(c.time)])
        write_text(out / f"times-{split}.csv", buf.getvalue())
        write_text(out / f"{split}_ids.txt", "".join(f"{c.clip_id}\n" for c in clips))
    entries = fork_test_json(table, duplicate_frames)
    write_text(out / "ChaoticWorld_test.json", json.dumps(entries, indent=1) + "\n")
    leak = leakage(table)
    summary = {
        "root": os.fspath(root),
        "duplicate_frames": duplicate_frames,
        "train_videos": len(table.train_videos),
        "test_videos": len(table.test_videos),
        "train_clips": len(table.split("train")),
        "test_clips": len(table.split("test")),
        "test_json_entries": len(entries),
        "duplicate_frame_count": table.duplicate_frames,
        "duplicate_rows": table.duplicate_rows,
        "boxes_beyond_first": table.extra_boxes,
        "leakage": {
            "frames": leak["overlap"],
            "frame_ids": leak["overlap_ids"],
            "videos": leak["video_overlap"],
            "video_ids": leak["video_overlap_ids"],
            "videos_on_both_lists": leak["videos_on_both_lists"],
        },
    }
    write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary
