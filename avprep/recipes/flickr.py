"""SoundNet-Flickr: the Flickr videos of SoundNet (Aytar et al., 2016).

Clip id = the numeric Flickr video id. Formats:

* ``soundnet-urls``: SoundNet's ``urls_public.txt``, one
  ``http://www.flickr.com/videos/<owner>/<id>/play/orig/<secret>`` a line;
  the id is path segment 5 (``url.split('/')[5]``) and the URL downloads it.
* ``flickr-ids``: bare ids (EZ-VSL, Hear-The-Flow).
* ``flickr-id-csv``: ``<id>,<int>`` (SSPL/LVS/EZ-VSL test csv, often CRLF);
  the second column is unused by every original and ignored here.

A bare id carries no download address (Flickr needs owner and secret): join
with SoundNet's list through :func:`attach_soundnet_urls`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from avprep.recipes.formats import register
from avprep.recipes.table import BadLine, Collector, Row
from avprep.recipes.text import iter_lines

FLICKR_ID = re.compile(r"^\d{1,20}$")
_ID_CSV = re.compile(r"^(\S+?)\s*,\s*(\S*)$")
_URL_CHARS = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces


def flickr_row(raw: str, url: str | None = None) -> Row:
    if not FLICKR_ID.match(raw):
        raise BadLine(f"not a Flickr video id (digits only): {raw[:80]!r}")
    return Row(raw, "flickr", url)


def _soundnet_parts(line: str) -> list[str] | None:
    """The URL's segments re-based so that the Flickr id is segment 5, or ``None``.

    Flickr's own ``http://www.flickr.com/videos/<owner>/<id>/play/orig/<secret>``,
    and the same path served by a mirror under any host and prefix
    (``https://mirror.org/soundnet/videos/<owner>/<id>/play/orig/<secret>``):
    a mirror keeps the Flickr id, never the secret.
    """
    parts = line.split("/")
    if len(parts) < 8 or parts[0] not in ("http:", "https:") or parts[1] != "" or not parts[2]:
        return None
    if (
        parts[2].lower() in ("www.flickr.com", "flickr.com")
        and parts[3] == "videos"
        and parts[6] == "play"
        and parts[7] == "orig"
    ):
        return parts
    # a mirror: the first ".../videos/<owner>/<id>/play/orig" run after the host
    for i in range(3, len(parts) - 4):
        if (
            parts[i] == "videos"
            and parts[i + 3] == "play"
            and parts[i + 4] == "orig"
            and FLICKR_ID.match(parts[i + 2])
        ):
            return parts[:3] + parts[i:]
    return None


def is_soundnet_url(line: str) -> bool:
    return _soundnet_parts(line) is not None


def soundnet_row(line: str) -> Row:
    """A SoundNet URL -> its clip (the id is path segment 5)."""
    parts = _soundnet_parts(line)
    if parts is None:
        raise BadLine(
            "not a SoundNet URL http://www.flickr.com/videos/<owner>/<id>/play/orig/<secret> "
            "(or that path on a mirror): "
            f"{line[:80]!r}"
        )
    if not _URL_CHARS.match(line):
        raise BadLine(f"URL holds spaces or control characters: {line[:80]!r}")
    # about 2 million lines: the id check is inlined (flickr_row) for speed
    clip_id = parts[5]
    if not FLICKR_ID.match(clip_id):
        raise BadLine(f"not a Flickr video id (digits only): {clip_id[:80]!r}")
    return Row(clip_id, "flickr", line)


@register(
    "soundnet-urls",
    ("flickr",),
    "SoundNet urls_public.txt: one Flickr URL a line (or a mirror of that path); "
    "id = the segment after the owner",
    "http://www.flickr.com/videos/27606531@N02/2898394758/play/orig/a1b2c3d4e5",
)
def parse_soundnet_urls(text: str, col: Collector, dataset: str | None) -> None:
    col.feed(iter_lines(text), soundnet_row)


@register("flickr-ids", ("flickr",), "bare Flickr video ids, one a line", "10000130166")
def parse_flickr_ids(text: str, col: Collector, dataset: str | None) -> None:
    col.feed(iter_lines(text), flickr_row)


def _id_csv_row(line: str) -> Row:
    m = _ID_CSV.match(line)
    if not m:
        raise BadLine(f"expected '<id>,<int>': {line[:80]!r}")
    if not re.fullmatch(r"-?\d+", m.group(2)):
        raise BadLine(f"second column is not an integer: {line[:80]!r}")
    return flickr_row(m.group(1))


@register(
    "flickr-id-csv",
    ("flickr",),
    "'<id>,<int>' rows (CRLF allowed); the 2nd column is unused",
    "10000130166,202",
)
def parse_flickr_id_csv(text: str, col: Collector, dataset: str | None) -> None:
    col.feed(iter_lines(text), _id_csv_row)


def attach_soundnet_urls(
    clips: pd.DataFrame, urls: str | Path | pd.DataFrame = "soundnet/urls-public"
) -> pd.DataFrame:
    """Fill the ``url`` of Flickr clips that have none from SoundNet's URL list.

    ``urls`` is a clip table of format ``soundnet-urls``, a path, or a
    registry name (fetched on first use). Returns a copy; clips missing from
    the list keep ``url = None``.
    """
    if not isinstance(urls, pd.DataFrame):
        from avprep.recipes import load_clips

        urls = load_clips(urls, fmt="soundnet-urls", skip_bad=True)
    lookup = dict(zip(urls["clip_id"], urls["url"]))
    out = clips.copy()
    missing = out["url"].isna() & (out["source"] == "flickr")
    out.loc[missing, "url"] = out.loc[missing, "clip_id"].map(lookup)
    out["url"] = out["url"].astype(object).where(out["url"].notna(), None)
    out.attrs = dict(clips.attrs)
    return out
