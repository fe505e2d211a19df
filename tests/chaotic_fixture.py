"""A Chaotic-World-shaped fixture: the official ``SSL_ssl_format`` layout, tiny.

Group CSVs carry the columns the fork reads (``start_fid, start_time, bbox,
ssl``) among others; ``bbox`` cells are Python-literal lists of boxes in
320x180 pixels, as the fork's ``eval(...)[0]`` expects.
"""

from __future__ import annotations

import csv
from pathlib import Path

GROUP_HEADER = ["group_id", "start_fid", "start_time", "end_fid", "end_time", "bbox", "ssl"]


def write_ssl_format(
    root: Path,
    videos: dict[str, list[tuple[int, float, str, str]]],
    train: list[str],
    test: list[str],
) -> Path:
    """``videos``: VID -> rows (start_fid, start_time, bbox cell, class)."""
    group = root / "annotation" / "group"
    frame = root / "annotation" / "frame"
    group.mkdir(parents=True, exist_ok=True)
    frame.mkdir(parents=True, exist_ok=True)
    for vid, rows in videos.items():
        with open(group / f"{vid}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(GROUP_HEADER)
            for i, (fid, t, bbox, cls) in enumerate(rows):
                w.writerow([i, fid, t, fid + 10, t + 0.4, bbox, cls])
        with open(frame / f"{vid}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["fid", "time", "bbox", "ssl"])
            for fid, t, bbox, cls in rows:
                w.writerow([fid, t, bbox, cls])
    (root / "train_ssl.txt").write_text("".join(f"{v}\n" for v in train))
    (root / "test_ssl.txt").write_text("".join(f"{v}\n" for v in test))
    return root
