"""Why downloads failed, grouped by cause rather than by message.

A failure's message names its clip (the id, the URL, a Flickr secret), so no
two messages are alike and a count of messages groups nothing. :func:`cause_of`
masks what is particular to the clip (URLs, the id, long id-like tokens,
quoted names) so that "HTTP Error 404" on 3,000 clips reads as one cause;
:func:`group_causes` counts them with one example clip each, and
:func:`failure_hint` says what to check when nothing could be fetched.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from avprep.manifest import ClipRecord

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.I)
_QUOTED = re.compile(r"'[^']{6,}'|\"[^\"]{6,}\"")
_TOKEN = re.compile(r"\b(?=[A-Za-z0-9_@-]*\d)[A-Za-z0-9_@-]{8,}\b")
_SPACE = re.compile(r"\s+")


def cause_of(reason: str, clip_id: str = "") -> str:
    """The reason with what is particular to the clip masked (``<url>``, ``<id>``)."""
    text = reason or "unknown error"
    if clip_id:
        text = text.replace(clip_id, "<id>")
        ytid = clip_id[:11] if re.match(r"^[A-Za-z0-9_-]{11}_\d+$", clip_id) else None
        if ytid:
            text = text.replace(ytid, "<id>")
    text = _URL.sub("<url>", text)
    text = _QUOTED.sub("'<name>'", text)
    text = _TOKEN.sub("<id>", text)
    return _SPACE.sub(" ", text).strip()[:200]


def group_causes(records: Iterable[ClipRecord]) -> list[tuple[str, int, str]]:
    """``(cause, clips, an example clip id)`` of the records that are not ok, most common first."""
    counts: Counter[str] = Counter()
    example: dict[str, str] = {}
    for r in records:
        if r.ok:
            continue
        cause = cause_of(r.error or r.status, r.clip_id)
        counts[cause] += 1
        example.setdefault(cause, r.clip_id)
    return [(c, n, example[c]) for c, n in counts.most_common()]


def failure_hint(records: Iterable[ClipRecord]) -> str | None:
    """A next step when every attempted clip failed (none ok), else ``None``."""
    recs = list(records)
    if not recs or any(r.ok for r in recs):
        return None
    failed = [r for r in recs if r.status == "failed"]
    if not failed:
        return None
    return (
        f"none of the {len(recs)} attempted clips could be fetched: network unreachable or "
        "blocked? Check `avprep doctor`, pass a proxy with --proxy (or AVPREP_PROXY), "
        "cookies with --cookies, slow down with --rate-limit, and see docs/download.md; "
        "or bring your own copy with `avprep ingest`"
    )
