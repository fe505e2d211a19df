"""The official Chaotic World ``SSL_ssl_format`` folder, read safely.

Layout (as the SSPL fork for ICME 2024 MMVRAC Track 4 documents it)::

    SSL_ssl_format/
      annotation/group/<VID>.csv   one row per annotated moment: start_fid, start_time, bbox, ssl, ...
      annotation/frame/<VID>.csv   per-frame annotations (read as a table; not used by the fork)
      train_ssl.txt, test_ssl.txt  video ids, one a line (also looked for under annotation/)

The fork reads ``bbox`` with Python ``eval`` and keeps its first box; here a
cell must be a literal list of ``[x1, y1, x2, y2]`` number boxes, checked on
the syntax tree without evaluating anything: anything else (a call, a name, an
attribute, ``__import__('os')...``) is refused with ``file:line``.

:func:`build_clip_table` turns the folder into one row per annotated frame:
clip id ``<VID>_<fid:06d>``, video, frame (``start_fid``, 1-based as the fork's
PNGs), time (``start_time``), class (``ssl``), boxes (320x180 pixels) and split.
A frame listed twice in a video's CSV is merged (``merge``: the union of the
rows' boxes) or replaced (``last``: the last row wins, the fork's dict rule);
the count is reported either way.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import math
import os
from pathlib import Path

from avprep.errors import AnnotationError, HostileIdError
from avprep.ids import check_id

DUPLICATE_FRAMES = ("merge", "last")
GROUP_COLUMNS = ("start_fid", "start_time", "bbox", "ssl")
_MAX_CELL = 20_000  # characters: a bbox cell is a handful of boxes
_SIGNS = (ast.USub, ast.UAdd)

Box = tuple[float, float, float, float]


def parse_bbox(cell: str, where: str) -> tuple[Box, ...]:
    """A ``bbox`` cell -> boxes, accepting only a literal list of 4-number lists.

    The cell is parsed to a syntax tree (never evaluated); only list/tuple
    displays of numeric literals (optionally signed) pass.
    """
    text = cell.strip()
    if not text:
        raise AnnotationError(f"{where}: empty bbox cell")
    if len(text) > _MAX_CELL:
        raise AnnotationError(f"{where}: bbox cell of {len(text)} characters refused")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise AnnotationError(f"{where}: bbox {text[:60]!r} is not a list of boxes") from None
    body = tree.body
    if not isinstance(body, ast.List | ast.Tuple):
        raise AnnotationError(f"{where}: bbox {text[:60]!r} is not a list of boxes (refused)")
    boxes = []
    for node in body.elts:
        if not isinstance(node, ast.List | ast.Tuple) or len(node.elts) != 4:
            raise AnnotationError(
                f"{where}: bbox {text[:60]!r}: each box must be [x1, y1, x2, y2] (refused)"
            )
        boxes.append(tuple(_number(v, text, where) for v in node.elts))
    if not boxes:
        raise AnnotationError(f"{where}: bbox {text[:60]!r} holds no box")
    return tuple(boxes)  # type: ignore[return-value]


def _number(node: ast.AST, text: str, where: str) -> float:
    sign = 1.0
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, _SIGNS):
        sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
        node = node.operand
    ok = (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    )
    if not ok:
        raise AnnotationError(
            f"{where}: bbox {text[:60]!r} holds something other than numbers (refused)"
        )
    v = sign * float(node.value)
    if not math.isfinite(v):
        raise AnnotationError(f"{where}: bbox {text[:60]!r} holds a non-finite number")
    return v


@dataclasses.dataclass(frozen=True)
class GroupRow:
    """One row of ``annotation/group/<VID>.csv``."""

    video: str
    frame: int
    time: float
    boxes: tuple[Box, ...]
    label: str
    line: int


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AnnotationError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: cannot read ({exc})") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise AnnotationError(f"{path}: empty file")
    header = [h.strip() for h in rows[0]]
    body = [(i, r) for i, r in enumerate(rows[1:], start=2) if r and any(c.strip() for c in r)]
    return header, body


def read_group_csv(path: str | os.PathLike, video: str | None = None) -> list[GroupRow]:
    """The rows of one group CSV (``video`` defaults to the file stem)."""
    p = Path(path)
    vid = check_id(video or p.stem)
    header, body = _read_csv(p)
    missing = [c for c in GROUP_COLUMNS if c not in header]
    if missing:
        raise AnnotationError(f"{p}:1: missing column(s) {', '.join(missing)}")
    at = {c: header.index(c) for c in GROUP_COLUMNS}
    out = []
    for line, row in body:
        where = f"{p}:{line}"
        if len(row) < len(header):
            raise AnnotationError(f"{where}: expected {len(header)} fields, got {len(row)}")
        fid_s = row[at["start_fid"]].strip()
        try:
            fid_f = float(fid_s)
        except ValueError:
            raise AnnotationError(
                f"{where}: start_fid {fid_s[:40]!r} is not a frame number"
            ) from None
        if not math.isfinite(fid_f) or fid_f != int(fid_f) or fid_f < 1:
            raise AnnotationError(f"{where}: start_fid must be an integer >= 1, got {fid_s[:40]!r}")
        t_s = row[at["start_time"]].strip()
        try:
            t = float(t_s)
        except ValueError:
            raise AnnotationError(f"{where}: start_time {t_s[:40]!r} is not seconds") from None
        if not math.isfinite(t) or t < 0:
            raise AnnotationError(f"{where}: start_time must be finite and >= 0, got {t_s[:40]!r}")
        boxes = parse_bbox(row[at["bbox"]], where)
        out.append(GroupRow(vid, int(fid_f), t, boxes, row[at["ssl"]].strip(), line))
    return out


def read_frame_csv(path: str | os.PathLike) -> list[dict[str, object]]:
    """``annotation/frame/<VID>.csv`` as rows of ``{column: value}``.

    The fork does not use these files and their columns are not documented;
    every cell stays a string except ``bbox`` cells, parsed as by :func:`parse_bbox`.
    """
    p = Path(path)
    header, body = _read_csv(p)
    out = []
    for line, row in body:
        d: dict[str, object] = dict(zip(header, (c.strip() for c in row)))
        if "bbox" in d:
            d["bbox"] = parse_bbox(str(d["bbox"]), f"{p}:{line}")
        out.append(d)
    return out


def read_video_list(path: str | os.PathLike) -> list[str]:
    """``train_ssl.txt`` / ``test_ssl.txt``: video ids, one a line (file order, no repeats)."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8-sig").split("\n")
    except FileNotFoundError:
        raise AnnotationError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{p}: cannot read ({exc})") from None
    out: list[str] = []
    for i, raw in enumerate(lines, start=1):
        s = raw.strip()
        if not s:
            continue
        try:
            check_id(s)
        except HostileIdError as exc:
            raise HostileIdError(f"{p}:{i}: {exc}") from None
        if s not in out:
            out.append(s)
    return out


@dataclasses.dataclass(frozen=True)
class ChaoticClip:
    """One annotated frame: the unit of the clip table."""

    clip_id: str
    video: str
    frame: int
    time: float
    label: str
    boxes: tuple[Box, ...]
    split: str
    rows: int  # how many CSV rows named this frame (> 1: a duplicate)
    fork_box: Box  # the box the fork keeps: the first box of the last row


@dataclasses.dataclass
class ClipTable:
    clips: list[ChaoticClip]
    train_videos: list[str]
    test_videos: list[str]
    duplicate_frames: int  # frames named by more than one row
    duplicate_rows: int  # rows beyond the first of such frames
    extra_boxes: int  # boxes beyond a row's first (the fork drops them)
    fork_rows: list[GroupRow]  # every test row in file order (the fork's JSON has one entry each)

    def split(self, name: str) -> list[ChaoticClip]:
        return [c for c in self.clips if c.split == name]


def find_layout(root: str | os.PathLike) -> tuple[Path, Path, Path]:
    """``(group folder, train list, test list)`` under ``root`` (the SSL_ssl_format folder)."""
    r = Path(root)
    group = next((g for g in (r / "annotation" / "group", r / "group") if g.is_dir()), None)
    if group is None:
        raise AnnotationError(f"{r}: no annotation/group folder (is it SSL_ssl_format?)")
    lists = []
    for name in ("train_ssl.txt", "test_ssl.txt"):
        cands = [r / name, r / "annotation" / name, group.parent / name]
        found = next((c for c in cands if c.is_file()), None)
        if found is None:
            raise AnnotationError(f"{r}: no {name} (looked in {', '.join(map(str, cands[:2]))})")
        lists.append(found)
    return group, lists[0], lists[1]


def build_clip_table(root: str | os.PathLike, *, duplicate_frames: str = "merge") -> ClipTable:
    """The clip table of an ``SSL_ssl_format`` folder (train videos first, list order).

    Within a video, clips follow the first row naming each frame (the order of
    the fork's ``train_list.csv`` / ``test_list.csv``).
    """
    if duplicate_frames not in DUPLICATE_FRAMES:
        raise AnnotationError(
            f"unknown duplicate_frames {duplicate_frames!r}; valid: {', '.join(DUPLICATE_FRAMES)}"
        )
    group, train_txt, test_txt = find_layout(root)
    train, test = read_video_list(train_txt), read_video_list(test_txt)
    clips: list[ChaoticClip] = []
    dup_frames = dup_rows = extra = 0
    fork_rows: list[GroupRow] = []
    # a video on both lists stays on both (the fork does the same); check_leakage reports it
    for split, videos in (("train", train), ("test", test)):
        for vid in videos:
            rows = read_group_csv(group / f"{vid}.csv", vid)
            if split == "test":
                fork_rows += rows
            by_frame: dict[int, list[GroupRow]] = {}
            for r in rows:
                by_frame.setdefault(r.frame, []).append(r)
                extra += len(r.boxes) - 1
            for fid, rs in by_frame.items():
                if len(rs) > 1:
                    dup_frames += 1
                    dup_rows += len(rs) - 1
                keep = rs[-1:] if duplicate_frames == "last" else rs
                boxes = tuple(dict.fromkeys(b for r in keep for b in r.boxes))
                clips.append(
                    ChaoticClip(
                        clip_id=f"{vid}_{fid:06d}",
                        video=vid,
                        frame=fid,
                        time=keep[0].time if duplicate_frames == "merge" else rs[-1].time,
                        label=keep[-1].label if duplicate_frames == "last" else rs[0].label,
                        boxes=boxes,
                        split=split,
                        rows=len(rs),
                        fork_box=rs[-1].boxes[0],
                    )
                )
    return ClipTable(clips, train, test, dup_frames, dup_rows, extra, fork_rows)
