"""The clip table every recipe produces, and the collector parsers fill.

One row per clip: ``clip_id``, ``source`` (flickr | vggsound | url | chaotic |
other), ``url`` (download or YouTube watch URL; None if unknown), ``start``
and ``end`` (seconds, NaN if unknown), ``label``, ``split``. Parsers hand
rows (or the reason a line is malformed) to a :class:`Collector`, which
drops duplicates (:class:`avprep.clip.FirstSeen`, the rule
:func:`avprep.clip.prepare_clips` applies too) and remembers bad lines with
their line numbers. :class:`Row` stays the parsers' own row (a NamedTuple:
200k of them build in about a third of the time of frozen
:class:`avprep.clip.Clip` records); the clip table is what leaves.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import NamedTuple, TypeVar

import pandas as pd

from avprep.clip import FirstSeen, RepeatedId

log = logging.getLogger(__name__)

COLUMNS = ("clip_id", "source", "url", "start", "end", "label", "split")
SOURCES = ("flickr", "vggsound", "url", "chaotic", "other")

T = TypeVar("T")


class BadLine(ValueError):
    """A line (or JSON item) that cannot become a clip; the message says why."""


class Row(NamedTuple):
    clip_id: str
    source: str
    url: str | None = None
    start: float = math.nan
    end: float = math.nan
    label: str | None = None
    split: str | None = None


class Collector:
    """Accumulates rows, duplicates and malformed lines of one input file.

    ``unit`` names what the numbers count ("line", or "item" for JSON lists).
    """

    def __init__(self, path: str, unit: str = "line") -> None:
        self.path = path
        self.unit = unit
        self.rows: list[Row] = []
        self.bad: list[tuple[int, str]] = []
        self._unique = FirstSeen()

    @property
    def duplicates(self) -> int:
        """Repeated ids dropped (first row kept)."""
        return self._unique.duplicates

    def add(self, where: int, row: Row) -> None:
        """Keep ``row`` unless its id was seen (:class:`avprep.clip.FirstSeen`'s rule;
        the same id for another URL is a :class:`BadLine`)."""
        try:
            new = self._unique.is_new(row.clip_id, row.url)
        except RepeatedId as exc:
            raise BadLine(str(exc)) from None
        if new:
            self.rows.append(row)

    def reject(self, where: int, reason: str) -> None:
        self.bad.append((where, f"{self.unit} {where}: {reason}"))

    def feed(self, items: Iterable[tuple[int, T]], to_row: Callable[[T], Row]) -> None:
        """Turn each ``(number, item)`` into a row; a :class:`BadLine` is recorded."""
        add, urls, rows = self.add, self._unique.urls, self.rows
        for where, item in items:
            try:
                row = to_row(item)
                if row.clip_id not in urls:  # FirstSeen.is_new's new-id branch, inlined
                    urls[row.clip_id] = row.url
                    rows.append(row)
                else:
                    add(where, row)
            except BadLine as exc:
                self.reject(where, str(exc))

    def frame(self) -> pd.DataFrame:
        if not self.rows:
            return empty_frame()
        cols = dict(zip(COLUMNS, (list(c) for c in zip(*self.rows))))
        return _typed(cols)


# url/label/split stay object columns so that "unknown" is None, as documented
_DTYPES = {"start": "float64", "end": "float64", "url": object, "label": object, "split": object}


def _typed(cols: dict[str, list]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(cols[c], dtype=_DTYPES.get(c)) for c in COLUMNS})


def empty_frame() -> pd.DataFrame:
    return _typed({c: [] for c in COLUMNS})
