"""Chaotic World (ICME 2024 MMVRAC Track 4) sound-source annotations.

The test JSON is a list of ``{"file": "<VID>_<fid:06d>", "class": ..., "bbox": [x1, y1, x2, y2]}``:
ONE flat box per entry, in **320x180 pixel** coordinates. We normalise by the
frame size. A frame listed twice has its boxes merged by default (recorded as a
defect), since dropping either would lose a sounding object; ``duplicate_frames
= "last"`` keeps the last entry's box instead, as the SSPL fork's
``gt_all[file] = bbox`` dict does.

The official ``SSL_ssl_format`` folder (group CSVs, train/test lists) is read by
:mod:`avprep.annotations.chaotic_ssl`.
"""

from __future__ import annotations

import os

from avprep.annotations.model import (
    DEFAULT_BAD_BOXES,
    DUPLICATE_ENTRY,
    Annotation,
    Defect,
    apply_policy,
    check_policy,
)
from avprep.annotations.vggss import box_coords, entry_clip_id, load_json_list
from avprep.errors import AnnotationError

CHAOTIC_SIZE = (320, 180)


DUPLICATE_FRAMES = ("merge", "last")


def read_chaotic_json(
    path: str | os.PathLike, *, bad_boxes: str = DEFAULT_BAD_BOXES, duplicate_frames: str = "merge"
) -> dict[str, Annotation]:
    """Parse a Chaotic World test JSON into annotations (boxes normalised by 320x180).

    ``duplicate_frames``: ``merge`` (the union of the entries' boxes) or ``last``
    (the last entry's box, the SSPL fork's rule).
    """
    check_policy(bad_boxes)
    if duplicate_frames not in DUPLICATE_FRAMES:
        raise AnnotationError(
            f"unknown duplicate_frames {duplicate_frames!r}; valid: {', '.join(DUPLICATE_FRAMES)}"
        )
    raw: dict[str, list[tuple[float, float, float, float]]] = {}
    labels: dict[str, str | None] = {}
    notes: dict[str, list[Defect]] = {}
    for i, entry in enumerate(load_json_list(path)):
        where = f"{path}: entry {i}"
        cid = entry_clip_id(entry, where)
        bbox = entry["bbox"]
        if isinstance(bbox, list) and bbox and isinstance(bbox[0], list):
            if len(bbox) != 1:
                raise AnnotationError(f"{where}: Chaotic World entries hold one box")
            bbox = bbox[0]
        box = box_coords(bbox, where)
        if cid in raw:
            action = "merged" if duplicate_frames == "merge" else "replaced (last kept)"
            notes.setdefault(cid, []).append(
                Defect(cid, DUPLICATE_ENTRY, f"listed again at entry {i}", None, action)
            )
            if duplicate_frames == "last":
                raw[cid] = []
        raw.setdefault(cid, []).append(box)
        label = entry.get("class")
        if duplicate_frames == "last" or cid not in labels:
            labels[cid] = label if isinstance(label, str) else None
    out: dict[str, Annotation] = {}
    for cid, boxes_raw in raw.items():
        boxes, defects = apply_policy(cid, boxes_raw, [0] * len(boxes_raw), CHAOTIC_SIZE, bad_boxes)
        out[cid] = Annotation(
            clip_id=cid,
            benchmark="chaotic",
            boxes=boxes,
            label=labels[cid],
            raw_boxes=tuple(boxes_raw),
            raw_annotators=(0,) * len(boxes_raw),
            source_size=CHAOTIC_SIZE,
            defects=tuple(notes.get(cid, []) + defects),
        )
    return out
