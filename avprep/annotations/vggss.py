"""VGG-SS annotations: the published JSON and the per-clip XML that SSL-TIE reads.

The JSON (``vggss.json``, 5,158 entries) is a list of
``{"file": "<ytid>_<start:06d>", "class": "...", "bbox": [[xmin, ymin, xmax, ymax], ...]}``
with coordinates normalised to the full frame. The same shape, with an optional
``"annotator"`` list beside ``"bbox"``, holds Flickr boxes after
``avprep convert flickr-json``, so one reader serves both.

SSL-TIE reads one XML file per clip: every root-level ``<bbox>`` element holds one
element per box whose children are ``xmin``, ``ymin``, ``xmax``, ``ymax`` as
normalised floats, in that order (SSL-TIE reads them by position). We write the
floats with Python's shortest round-trip ``repr`` so reading back gives exactly
the converted values.
"""

from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET  # writing only; parsing goes through xmlsafe
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from avprep.annotations.model import (
    DEFAULT_BAD_BOXES,
    Annotation,
    apply_policy,
    check_policy,
)
from avprep.annotations.xmlsafe import parse_xml
from avprep.errors import AnnotationError, HostileIdError
from avprep.ids import check_id

COORD_NAMES = ("xmin", "ymin", "xmax", "ymax")
MAX_JSON_BYTES = 256 << 20


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise AnnotationError(f"{where}: coordinate {v!r} is not a number")
    return float(v)


def box_coords(b: Any, where: str) -> tuple[float, float, float, float]:
    if not isinstance(b, list | tuple) or len(b) != 4:
        raise AnnotationError(f"{where}: a box must be [xmin, ymin, xmax, ymax], got {b!r}")
    return tuple(_number(v, where) for v in b)  # type: ignore[return-value]


def load_json_list(path: str | os.PathLike) -> list[Any]:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise AnnotationError(f"{path}: too large for an annotation file")
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise AnnotationError(f"cannot read annotation file {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise AnnotationError(f"{path}:1: JSON nested too deeply to be annotations") from None
    if not isinstance(data, list):
        raise AnnotationError(f"{path}: expected a JSON list of entries, got {type(data).__name__}")
    return data


def entry_clip_id(entry: Any, where: str) -> str:
    if not isinstance(entry, dict) or "file" not in entry or "bbox" not in entry:
        raise AnnotationError(f"{where}: an entry needs 'file' and 'bbox' keys")
    name = entry["file"]
    if not isinstance(name, str):
        raise AnnotationError(f"{where}: 'file' must be a string, got {name!r}")
    try:
        return check_id(name)
    except HostileIdError as exc:
        raise AnnotationError(f"{where}: {exc}") from None


def read_vggss_json(
    path: str | os.PathLike,
    *,
    benchmark: str = "vggss",
    bad_boxes: str = DEFAULT_BAD_BOXES,
) -> dict[str, Annotation]:
    """Parse a VGG-SS-style JSON file (also Flickr boxes in that form) into annotations.

    A duplicate clip id is an error: the originals keep the last entry
    silently, which hides a broken file.
    """
    check_policy(bad_boxes)
    out: dict[str, Annotation] = {}
    for i, entry in enumerate(load_json_list(path)):
        where = f"{path}: entry {i}"
        cid = entry_clip_id(entry, where)
        if cid in out:
            raise AnnotationError(f"{where}: clip {cid!r} appears twice")
        if not isinstance(entry["bbox"], list):
            raise AnnotationError(f"{where}: 'bbox' must be a list of boxes")
        raw = tuple(box_coords(b, where) for b in entry["bbox"])
        who = entry.get("annotator", [0] * len(raw))
        if (
            not isinstance(who, list)
            or len(who) != len(raw)
            or not all(isinstance(a, int) and not isinstance(a, bool) for a in who)
        ):
            raise AnnotationError(f"{where}: 'annotator' must be one integer per box")
        label = entry.get("class")
        boxes, defects = apply_policy(cid, raw, who, None, bad_boxes)
        out[cid] = Annotation(
            clip_id=cid,
            benchmark=benchmark,
            boxes=boxes,
            label=label if isinstance(label, str) else None,
            raw_boxes=raw,
            raw_annotators=tuple(who),
            source_size=None,
            defects=tuple(defects),
        )
    return out


def to_json_entries(annotations: Mapping[str, Annotation]) -> list[dict[str, Any]]:
    """The VGG-SS JSON form of ``annotations`` (usable boxes, with annotators if several)."""
    entries = []
    for cid, a in annotations.items():
        e: dict[str, Any] = {"file": cid}
        if a.label is not None:
            e["class"] = a.label
        e["bbox"] = [b.as_list() for b in a.boxes]
        if a.n_annotators > 1 or any(b.annotator for b in a.boxes):
            e["annotator"] = [b.annotator for b in a.boxes]
        entries.append(e)
    return entries


def dumps_json_entries(entries: list[dict[str, Any]]) -> str:
    """One entry a line: diff-friendly, and still one JSON list."""
    if not entries:
        return "[]\n"
    return "[\n" + ",\n".join(json.dumps(e, allow_nan=False) for e in entries) + "\n]\n"


# -- SSL-TIE XML ---------------------------------------------------------------


def vggss_xml_bytes(ann: Annotation) -> bytes:
    """The SSL-TIE XML of one clip: ``<annotation>`` with ``<bbox>`` holding one ``<box>`` a box."""
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = ann.clip_id
    if ann.label is not None:
        ET.SubElement(root, "class").text = ann.label
    holder = ET.SubElement(root, "bbox")
    for b in ann.boxes:
        el = ET.SubElement(holder, "box", annotator=str(b.annotator))
        for name, v in zip(COORD_NAMES, b.as_list()):
            if not math.isfinite(v):
                raise AnnotationError(
                    f"{ann.clip_id}: cannot write a non-finite coordinate to XML "
                    "(use --bad-boxes drop or clip)"
                )
            ET.SubElement(el, name).text = repr(float(v))
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def read_vggss_xml(
    path: str | os.PathLike,
    *,
    clip_id: str | None = None,
    benchmark: str = "vggss",
    bad_boxes: str = DEFAULT_BAD_BOXES,
) -> Annotation:
    """Read one SSL-TIE style XML: coordinates by position, as SSL-TIE does."""
    path = Path(path)
    cid = clip_id if clip_id is not None else path.name.split(".")[0]
    try:
        check_id(cid)
    except HostileIdError as exc:
        raise AnnotationError(f"{path}: {exc}") from None
    root = parse_xml(path)
    raw: list[tuple[float, float, float, float]] = []
    who: list[int] = []
    for holder in root:
        if holder.tag != "bbox":
            continue
        for j, el in enumerate(holder):
            vals = [c.text for c in el]
            if len(vals) != 4:
                raise AnnotationError(
                    f"{path}: box {j} has {len(vals)} values; expected xmin, ymin, xmax, ymax"
                )
            try:
                raw.append(tuple(float(v) for v in vals))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise AnnotationError(f"{path}: box {j} holds a non-number: {vals!r}") from None
            try:
                who.append(int(el.get("annotator", "0")))
            except ValueError:
                raise AnnotationError(f"{path}: box {j} has a bad annotator attribute") from None
    label_el = root.find("class")
    boxes, defects = apply_policy(cid, raw, who, None, bad_boxes)
    return Annotation(
        clip_id=cid,
        benchmark=benchmark,
        boxes=boxes,
        label=label_el.text if label_el is not None else None,
        raw_boxes=tuple(raw),
        raw_annotators=tuple(who),
        source_size=None,
        defects=tuple(defects),
    )


def read_vggss_xml_dir(
    folder: str | os.PathLike,
    *,
    benchmark: str = "vggss",
    bad_boxes: str = DEFAULT_BAD_BOXES,
) -> dict[str, Annotation]:
    """Every ``<id>.xml`` of ``folder``, sorted by id."""
    folder = Path(folder)
    out: dict[str, Annotation] = {}
    for p in sorted(folder.glob("*.xml")):
        ann = read_vggss_xml(p, benchmark=benchmark, bad_boxes=bad_boxes)
        if ann.clip_id in out:
            raise AnnotationError(f"{p}: clip {ann.clip_id!r} appears twice in {folder}")
        out[ann.clip_id] = ann
    return out
