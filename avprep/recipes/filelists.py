"""Corpus-agnostic id lists: bare ids, ``<id>.<ext>`` names and ``dir/.../<id>.<ext>`` paths.

The papers list the same clips in many shapes: Attention as ``<id>.wav`` /
``<id>.png``, SSL-TIE as ``<id>.jpg`` and ``videos/a/b/c/<id>.mp4``. Only the
stem matters (paths are never opened). With ``dataset`` given, the stem must
be an id of that corpus; without, each id is recognised by its shape: digits
-> Flickr, ``<ytid>_<start>`` -> VGGSound, any other safe id -> ``other``.
"""

from __future__ import annotations

import re

from avprep.ids import is_safe_id
from avprep.recipes.chaotic import chaotic_row
from avprep.recipes.flickr import FLICKR_ID, flickr_row
from avprep.recipes.formats import register
from avprep.recipes.table import BadLine, Collector, Row
from avprep.recipes.text import iter_lines
from avprep.recipes.vggsound import HTF_ID, VGGSOUND_ID, vggsound_row

MEDIA_EXTS = frozenset(
    "mp4 mkv webm avi mov flv m4v wav flac mp3 m4a aac ogg opus jpg jpeg png bmp webp npy".split()
)
_NAME = re.compile(r"^(.+)\.([A-Za-z0-9]{1,5})$")


def id_row(raw: str, dataset: str | None) -> Row:
    """One clip id of ``dataset`` (or of the corpus its shape names)."""
    if dataset == "flickr":
        return flickr_row(raw)
    if dataset == "vggsound":
        return vggsound_row(raw)
    if dataset == "chaotic":
        return chaotic_row(raw)
    if dataset == "url":
        raise BadLine(f"expected an http(s) URL: {raw[:80]!r}")
    if FLICKR_ID.match(raw):
        return flickr_row(raw)
    if VGGSOUND_ID.match(raw) or HTF_ID.match(raw):
        return vggsound_row(raw)
    if not is_safe_id(raw):
        raise BadLine(
            f"unsafe clip id {raw[:80]!r}: ids may hold only letters, digits, '_', '-' and "
            "inner dots (no '/', '..', spaces or shell characters)"
        )
    return Row(raw, "other")


def _name_row(name: str, dataset: str | None) -> Row:
    m = _NAME.match(name)
    if not m or m.group(2).lower() not in MEDIA_EXTS:
        raise BadLine(f"expected '<id>.<ext>' with a media extension: {name[:80]!r}")
    return id_row(m.group(1), dataset)


def _file_name(line: str, dataset: str | None) -> Row:
    if "/" in line or "\\" in line:
        raise BadLine(f"expected a file name without folders: {line[:80]!r}")
    return _name_row(line, dataset)


def _file_path(line: str, dataset: str | None) -> Row:
    segments = re.split(r"[/\\]", line)
    if any(s == ".." for s in segments):
        raise BadLine(f"path climbs out of its folder ('..'): {line[:80]!r}")
    return _name_row(segments[-1], dataset)


@register(
    "file-names",
    ("flickr", "vggsound", "chaotic"),
    "'<id>.<ext>' names (.wav .jpg .png .mp4 ...), one a line",
    "10000130166.jpg",
)
def parse_file_names(text: str, col: Collector, dataset: str | None) -> None:
    col.feed(iter_lines(text), lambda line: _file_name(line, dataset))


@register(
    "file-paths",
    ("flickr", "vggsound", "chaotic"),
    "relative paths ending in '<id>.<ext>', e.g. SSL-TIE's videos/a/b/c/<id>.mp4",
    "videos/0/0/0/2615133000.mp4",
)
def parse_file_paths(text: str, col: Collector, dataset: str | None) -> None:
    col.feed(iter_lines(text), lambda line: _file_path(line, dataset))


@register(
    "ids",
    ("flickr", "vggsound", "chaotic"),
    "any safe clip ids, one a line; corpus recognised by the id's shape",
    "synth_000001",
)
def parse_ids(text: str, col: Collector, dataset: str | None) -> None:
    col.feed(iter_lines(text), lambda line: id_row(line, dataset))


@register(
    "id-csv",
    ("flickr", "vggsound", "chaotic"),
    "'<id>,<anything>' rows: the first CSV column is the clip id, the rest is unused",
    "zpWuikVorYg_000032,1",
)
def parse_id_csv(text: str, col: Collector, dataset: str | None) -> None:
    col.feed(
        iter_lines(text), lambda line: id_row(line.split(",", 1)[0].strip().strip('"'), dataset)
    )
