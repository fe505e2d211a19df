"""The one clip record, from a recipe's row through download, extract and pack.

A :class:`Clip` says which clip (``clip_id``), where it comes from (``url``,
``start``/``end`` in seconds, ``source``: the corpus or ``url``), what it is
(``label``, ``split``) and, once fetched, where its video is (``path``).
Once extracted, it also names its outputs (``frame``, ``audio``,
``spectrogram``, ``flow``: absolute paths) and carries its extraction
record's ``meta``: that is what pack reads (:func:`avprep.store.source.select`).
Recipes give rows (:func:`avprep.recipes.load_clips`: a DataFrame);
:func:`prepare_clips` checks them once (safe id, plain http(s) URL, times) and
drops repeated ids; download fetches each clip; extract reads the videos of
a download folder as clips (:func:`video_of`); pack reads an extraction
folder's records as clips.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from avprep.errors import HostileIdError, InputError
from avprep.ids import check_id, split_vggsound_id
from avprep.scrub import scrub_url

log = logging.getLogger(__name__)

YOUTUBE_URL = "https://www.youtube.com/watch?v={}"
#: the outputs key naming a clip's video in the manifests of this project's writers:
#: ``path`` (download, ingest: ``OUT/<id>.<ext>``) and ``video`` (synth: ``videos/<id>.mp4``)
VIDEO_OUTPUTS = ("path", "video")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".3gp", ".mpg", ".ts")


#: what extraction writes for a clip, in the order pack stores them
OUTPUTS = ("frame", "audio", "spectrogram", "flow")


@dataclasses.dataclass(frozen=True)
class Clip:
    """One clip: where from, which part, what it is, (once fetched) its video and
    (once extracted) its outputs and its extraction record's meta."""

    clip_id: str
    url: str | None = None
    start: float | None = None
    end: float | None = None
    label: str | None = None
    split: str | None = None
    source: str | None = None
    path: str | None = None
    frame: Path | None = None
    audio: Path | None = None
    spectrogram: Path | None = None
    flow: Path | None = None
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False, compare=False)

    def output(self, name: str) -> Path | None:
        """The file extraction wrote for ``name`` (one of :data:`OUTPUTS`), if any."""
        if name not in OUTPUTS:
            raise ValueError(f"unknown output {name!r}; valid: {', '.join(OUTPUTS)}")
        return getattr(self, name)


class RepeatedId(InputError):
    """One clip id for two different URLs: one video would overwrite the other."""


class FirstSeen:
    """The one rule for repeated clip ids, used by the recipe parsers
    (:class:`avprep.recipes.table.Collector`, where a conflict is a malformed
    line) and by :func:`prepare_clips` (rows from anywhere): the first row of an
    id is kept; a repeat with the same URL (or none) is counted in
    ``duplicates`` and dropped; a repeat with another URL raises
    :class:`RepeatedId`.
    """

    def __init__(self) -> None:
        #: the first URL seen for each id (a fast path may insert here directly)
        self.urls: dict[str, str | None] = {}
        self.duplicates = 0

    def is_new(self, clip_id: str, url: str | None) -> bool:
        """True for an id not seen before (now remembered); False for a harmless repeat."""
        if clip_id not in self.urls:
            self.urls[clip_id] = url
            return True
        prev = self.urls[clip_id]
        if prev and url and prev != url:
            raise RepeatedId(
                f"clip id {clip_id!r} already stands for another URL ({prev}); "
                "give the files distinct names"
            )
        self.duplicates += 1
        return False


@dataclasses.dataclass
class Prepared:
    """Result of :func:`prepare_clips`: valid clips and what was dropped."""

    clips: list[Clip]
    duplicates: int = 0
    rejected: list[str] = dataclasses.field(default_factory=list)


def _num(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InputError(f"not a number: {value!r}") from None
    if math.isnan(f):
        return None
    if not math.isfinite(f) or f < 0:
        raise InputError(f"not a time in seconds: {value!r}")
    return f


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    value = str(value).strip()
    return value or None


_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f\s]")
_PLAIN_URL = re.compile(
    r"^https?://[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::(\d{1,5}))?(?:[/?#][\x21-\x7e]*)?$"
)


def check_url(url: str) -> str:
    """Return ``url`` if it is a plain http(s) URL, else raise :class:`InputError`."""
    m = _PLAIN_URL.match(url)
    if m and (m.group(1) is None or int(m.group(1)) <= 65535):
        return url  # the common shape, without urlsplit's cost (200k-row lists)
    if _BAD_URL_CHARS.search(url):
        raise InputError(f"malformed URL (spaces or control characters): {scrub_url(url)!r}")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InputError(f"malformed URL: {scrub_url(url)!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"not an http(s) URL: {scrub_url(url)!r}")
    return url


def clip_from_row(row: Mapping[str, Any]) -> Clip:
    """The checked :class:`Clip` of one row; an :class:`InputError` says what is wrong."""
    clip_id = check_id(_text(row.get("clip_id")) or "")
    url = _text(row.get("url"))
    start, end = _num(row.get("start")), _num(row.get("end"))
    if url is not None:
        check_url(url)
    else:
        with contextlib.suppress(HostileIdError):
            ytid, id_start = split_vggsound_id(clip_id)
            url = YOUTUBE_URL.format(ytid)
            start = id_start if start is None else start
    if start is not None and end is not None and end <= start:
        raise InputError(f"{clip_id}: end {end} is not after start {start}")
    return Clip(
        clip_id=clip_id,
        url=url,
        start=start,
        end=end,
        label=_text(row.get("label")),
        split=_text(row.get("split")),
        source=_text(row.get("source")),
    )


def _iter_rows(rows: Any) -> Iterable[Mapping[str, Any]]:
    if hasattr(rows, "columns"):  # a DataFrame: column lists are much faster than to_dict
        names = list(rows.columns)
        for values in zip(*(rows[c].tolist() for c in names)):
            yield dict(zip(names, values))
    else:
        yield from rows


def prepare_clips(rows: Any, *, skip_bad: bool = False, limit: int | None = None) -> Prepared:
    """Validate and deduplicate clip rows (dicts or a pandas DataFrame).

    Rows need ``clip_id`` and usually ``url``, ``start``, ``end``. A clip id
    that could escape the output folder, a non-http(s) or malformed URL, or a
    bad time is an :class:`InputError` listing the problems, unless
    ``skip_bad`` (then they are dropped and listed in ``rejected``). Repeated
    clip ids keep their first row, by the recipes' rule (:class:`FirstSeen`:
    the same id with another URL is a bad row). A table from
    :func:`avprep.recipes.load_clips` has no repeats left; the check stays so
    that rows from anywhere are safe. ``limit`` stops after that many clips
    (rows after them are not read).
    """
    clips: list[Clip] = []
    unique = FirstSeen()
    rejected: list[str] = []
    for n, row in enumerate(_iter_rows(rows), 1):
        if limit is not None and len(clips) >= limit:
            break
        try:
            clip = clip_from_row(row)
            if not unique.is_new(clip.clip_id, clip.url):
                continue
        except InputError as exc:  # RepeatedId too: one id for two videos
            rejected.append(f"row {n}: {exc}")
            continue
        clips.append(clip)
    duplicates = unique.duplicates
    if rejected and not skip_bad:
        shown = "\n  ".join(rejected[:10])
        more = f"\n  ... and {len(rejected) - 10} more" if len(rejected) > 10 else ""
        raise InputError(
            f"{len(rejected)} bad clip row(s); fix them or pass --skip-bad:\n  {shown}{more}"
        )
    if duplicates:
        log.warning("dropped %d duplicate clip id(s) (first row kept)", duplicates)
    if rejected:
        log.warning("skipped %d bad clip row(s) (--skip-bad)", len(rejected))
    return Prepared(clips=clips, duplicates=duplicates, rejected=rejected)


def video_of(root: Path, clip_id: str, outputs: Mapping[str, Any]) -> Path | None:
    """The video a manifest record names (``outputs``' :data:`VIDEO_OUTPUTS`, inside ``root``),
    else ``root/<clip_id>.<suffix>`` for a known video suffix; None when there is none."""
    for key in VIDEO_OUTPUTS:
        cand = outputs.get(key)
        if isinstance(cand, str) and cand:
            q = Path(cand)
            q = q if q.is_absolute() else root / q
            # the path must stay inside the folder
            try:
                q.resolve().relative_to(root.resolve())
            except ValueError:
                continue
            if q.is_file():
                return q
    for suffix in VIDEO_SUFFIXES:
        q = root / f"{clip_id}{suffix}"
        if q.is_file():
            return q
    return None
