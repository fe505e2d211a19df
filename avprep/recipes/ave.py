"""AVE (Tian et al., ECCV 2018 "Audio-Visual Event Localization in Unconstrained Videos").

Multi-Source trains and shows results on AVE's 4,143 ten-second clips (28
event categories). The dataset's annotation files (``Annotations.txt`` in the
authors' repository ``YapengTian/AVE-ECCV18``; ``trainSet.txt``, ``valSet.txt``,
``testSet.txt`` only inside the dataset archive ``AVE_Dataset.zip``) hold one
clip a line::

    Category&VideoID&Quality&StartTime&EndTime

(the archive's copies start with that header line). The clips themselves come
from the archive (``AVE/<VideoID>.mp4``, already cut to 10 s), not from
YouTube: the rows have no URL, ``start = 0`` and ``end = 10`` (the whole clip
file), ``label = Category``. The event's own window (StartTime, EndTime, whole
seconds inside the clip) is checked but not a column of the clip table.
"""

from __future__ import annotations

from avprep.recipes.formats import register
from avprep.recipes.table import BadLine, Collector, Row
from avprep.recipes.text import iter_lines

HEADER = "Category&VideoID&Quality&StartTime&EndTime"
CLIP_SECONDS = 10.0


def ave_row(line: str) -> Row:
    parts = line.split("&")
    if len(parts) != 5:
        raise BadLine(f"expected Category&VideoID&Quality&StartTime&EndTime: {line[:80]!r}")
    category, vid, _quality, start, end = (p.strip() for p in parts)
    if not vid or not category:
        raise BadLine(f"empty video id or category: {line[:80]!r}")
    try:
        t0, t1 = int(start), int(end)
    except ValueError:
        raise BadLine(f"event start/end are not whole seconds: {line[:80]!r}") from None
    if not 0 <= t0 <= t1 <= CLIP_SECONDS:  # the published file has a 0-0 window
        raise BadLine(f"event window {t0}-{t1} s outside the 10 s clip: {line[:80]!r}")
    return Row(vid, "other", None, 0.0, CLIP_SECONDS, category, None)


@register(
    "ave-annotations",
    ("url",),
    "AVE annotations: 'Category&VideoID&Quality&StartTime&EndTime' (optional header line)",
    "Church bell&RUhOCu3LNXM&good&0&10",
)
def parse_ave(text: str, col: Collector, dataset: str | None) -> None:
    col.feed(((n, s) for n, s in iter_lines(text) if s != HEADER), ave_row)
