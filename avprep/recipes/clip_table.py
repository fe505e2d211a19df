"""The clip table itself as a CSV: what ``avprep metadata parse --out x.csv`` and
``avprep audioset-instrument clips`` write, read back with every column.

A header line ``clip_id,source,url,start,end,label,split`` (:data:`COLUMNS`)
then one clip a line; empty cells are unknown (NaN times, no url/label/split).
This is how clips with their own start and end (AudioSet segments joined to a
tag pickle) reach ``avprep download``, which cuts those sections.
"""

from __future__ import annotations

import csv
import math

from avprep.ids import is_safe_id
from avprep.recipes.formats import register
from avprep.recipes.table import COLUMNS, SOURCES, BadLine, Collector, Row
from avprep.recipes.text import iter_lines
from avprep.recipes.urls import url_row

HEADER = ",".join(COLUMNS)


def is_header(line: str) -> bool:
    return line.replace(" ", "").lstrip("\ufeff") == HEADER


def _seconds(value: str, name: str) -> float:
    if not value:
        return math.nan
    try:
        t = float(value)
    except ValueError:
        raise BadLine(f"{name} {value[:40]!r} is not a number of seconds") from None
    if not math.isfinite(t) or t < 0:
        raise BadLine(f"{name} {value[:40]!r} is not a time >= 0")
    return t


def table_row(fields: list[str]) -> Row:
    if len(fields) != len(COLUMNS):
        raise BadLine(f"expected {len(COLUMNS)} columns ({HEADER}), got {len(fields)}")
    cid, source, url, start, end, label, split = (f.strip() for f in fields)
    if not is_safe_id(cid):
        raise BadLine(f"clip id {cid[:60]!r} is not a safe id")
    if source not in SOURCES:
        raise BadLine(f"source {source[:20]!r}; valid: {', '.join(SOURCES)}")
    if url:
        url_row(url)  # http(s), a host, no spaces: raises BadLine otherwise
    s, e = _seconds(start, "start"), _seconds(end, "end")
    if not math.isnan(s) and not math.isnan(e) and e <= s:
        raise BadLine(f"end {e} is not after start {s}")
    return Row(cid, source, url or None, s, e, label or None, split or None)


@register(
    "clip-table-csv",
    ("flickr", "vggsound", "url", "chaotic"),
    f"the clip table as CSV with its header ({HEADER}), as avprep writes it",
    "-0SdAVK79lg,url,https://www.youtube.com/watch?v=-0SdAVK79lg,30.0,40.0,Guitar,test",
)
def parse_clip_table(text: str, col: Collector, dataset: str | None) -> None:
    lines = iter_lines(text)
    first = next(lines, None)
    if first is None:
        return
    if not is_header(first[1]):
        col.reject(first[0], f"the first line must be the header {HEADER}")
        return
    rows = ((n, next(csv.reader([line]))) for n, line in lines)
    col.feed(rows, table_row)
