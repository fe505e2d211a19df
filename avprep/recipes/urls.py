"""Plain http(s) URL lists: any video address yt-dlp or a web server can serve.

Clip id = the stem of the URL's last path segment (``.../clip_01.mp4`` ->
``clip_01``), which must be a safe id (``avprep.ids``): ids are never
invented or rewritten, so two lists of the same files agree. Exceptions:
SoundNet Flickr URLs keep their Flickr id (``source = flickr``) and YouTube
addresses (watch, youtu.be, shorts, embed) use the video id.
"""

from __future__ import annotations

import re
import urllib.parse

from avprep.ids import is_safe_id
from avprep.recipes.flickr import is_soundnet_url, soundnet_row
from avprep.recipes.formats import register
from avprep.recipes.table import BadLine, Collector, Row
from avprep.recipes.text import iter_lines
from avprep.recipes.vggsound import YTID

_URL_CHARS = re.compile(r"^[\x21-\x7e]+$")
_YOUTUBE_HOSTS = {"youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com"}


def redact(url: str, limit: int = 100) -> str:
    """``url`` for messages: user:password@ removed, cut to ``limit`` characters."""
    shown = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@", r"\1***@", url)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def youtube_id(parts: urllib.parse.SplitResult) -> str | None:
    host = (parts.hostname or "").lower()
    candidate = None
    if host == "youtu.be":
        candidate = parts.path.strip("/").split("/")[0]
    elif host in _YOUTUBE_HOSTS:
        if parts.path.rstrip("/") == "/watch":
            candidate = (urllib.parse.parse_qs(parts.query).get("v") or [""])[0]
        else:
            m = re.match(r"^/(?:shorts|embed|live|v)/([^/?#]+)", parts.path)
            candidate = m.group(1) if m else None
    return candidate if candidate and YTID.match(candidate) else None


def url_row(line: str) -> Row:
    if not _URL_CHARS.match(line):
        raise BadLine(f"URL holds spaces or control characters: {redact(line)!r}")
    if is_soundnet_url(line):
        return soundnet_row(line)
    try:
        parts = urllib.parse.urlsplit(line)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise BadLine(f"malformed URL ({exc}): {redact(line)!r}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise BadLine(f"only http(s) URLs can be downloaded: {redact(line)!r}")
    if not parts.hostname:
        raise BadLine(f"URL has no host: {redact(line)!r}")
    yt = youtube_id(parts)
    if yt:
        return Row(yt, "url", line)
    if any(urllib.parse.unquote(s) in (".", "..") for s in parts.path.split("/")):
        # a client would resolve /../../etc/passwd to /etc/passwd: never take an id from it
        raise BadLine(f"hostile URL path with '.' or '..' segments: {redact(line)!r}")
    segment = urllib.parse.unquote(parts.path.rstrip("/").rsplit("/", 1)[-1])
    if not segment:
        raise BadLine(f"URL has no file name to take a clip id from: {redact(line)!r}")
    stem = segment.rsplit(".", 1)[0] if "." in segment[1:] else segment
    if not is_safe_id(stem) or "/" in segment or "\\" in segment:
        raise BadLine(
            f"file name {segment[:60]!r} is not a safe clip id (letters, digits, '_', '-', "
            f"inner dots): {redact(line)!r}"
        )
    return Row(stem, "url", line)


@register(
    "url-list",
    ("url", "flickr"),
    "http(s) URLs, one a line; clip id = stem of the last path segment",
    "https://example.org/media/clip_01.mp4",
)
def parse_url_list(text: str, col: Collector, dataset: str | None) -> None:
    # with dataset=flickr every line must be a SoundNet URL (a Flickr clip)
    col.feed(iter_lines(text), soundnet_row if dataset == "flickr" else url_row)
