"""Manifests: the record of every long step.

A manifest is an append-only JSON-lines file, one :class:`ClipRecord` a line.
The last record of a clip wins, so a rerun appends instead of rewriting; a
line cut short by a crash (kill -9 or a full disk mid-write) is ignored on
load, and the first append of a later run cuts it off (or terminates it, if
it is a whole record that only lacks its newline) so the new record starts on
a line of its own. A line that is valid JSON but not a record (``null``, a
list, a non-string ``clip_id``, an unknown status) is an :class:`InputError`
naming the file and line. Only the parent process appends (workers return
records), so lines never interleave.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from avprep.errors import InputError

log = logging.getLogger(__name__)

OK = "ok"
FAILED = "failed"
UNAVAILABLE = "unavailable"
SKIPPED = "skipped"
STATUSES = (OK, FAILED, UNAVAILABLE, SKIPPED)

MANIFEST_NAME = "manifest.jsonl"  # a stage's records, in the folder it writes (OUT/manifest.jsonl)


@dataclasses.dataclass
class ClipRecord:
    """What happened to one clip in one step."""

    clip_id: str
    status: str
    error: str | None = None
    outputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    attempts: int = 1
    time: float = dataclasses.field(default_factory=time.time)

    def __post_init__(self) -> None:
        if not isinstance(self.clip_id, str):
            raise ValueError(f"clip_id must be a string, not {type(self.clip_id).__name__}")
        if self.status not in STATUSES:
            raise ValueError(f"bad status {self.status!r}; valid: {', '.join(STATUSES)}")

    @property
    def ok(self) -> bool:
        return self.status == OK

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClipRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class Manifest:
    """An append-only JSONL manifest with last-record-wins reads."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._records: dict[str, ClipRecord] = {}
        self._header: dict[str, Any] = {}
        self._repaired = False
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        bad = 0
        with open(self.path, encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    d = json.loads(line)
                except (json.JSONDecodeError, RecursionError):
                    bad += 1  # a line cut short by a crash
                    continue
                if isinstance(d, dict) and isinstance(d.get("_header"), dict):
                    self._header.update(d["_header"])
                    continue
                try:
                    if not isinstance(d, dict):
                        raise ValueError(f"a JSON {type(d).__name__}, not an object")
                    rec = ClipRecord.from_dict(d)
                except (TypeError, ValueError) as exc:
                    raise InputError(
                        f"{self.path}:{lineno}: not a manifest record ({exc}); "
                        "fix or remove that line"
                    ) from None
                self._records[rec.clip_id] = rec
        if bad:
            log.warning("%s: ignored %d unreadable line(s) (interrupted write?)", self.path, bad)

    # -- reading -----------------------------------------------------------
    def get(self, clip_id: str) -> ClipRecord | None:
        return self._records.get(clip_id)

    def __contains__(self, clip_id: object) -> bool:
        return clip_id in self._records

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> Iterator[ClipRecord]:
        return iter(self._records.values())

    def ok_ids(self) -> list[str]:
        return [r.clip_id for r in self._records.values() if r.ok]

    def counts(self) -> Counter:
        return Counter(r.status for r in self._records.values())

    @property
    def header(self) -> dict[str, Any]:
        """Run-level facts (tool versions, profile) written with :meth:`write_header`."""
        return dict(self._header)

    # -- writing -----------------------------------------------------------
    def repair_tail(self) -> int:
        """Make the file end with a newline before appending; return bytes removed.

        A last line without its newline is what a write cut short leaves. If
        it is a whole JSON object only the newline is added; otherwise the
        torn bytes (already ignored on load) are cut off, so the next record
        is not glued onto them and lost with them.
        """
        self._repaired = True
        try:
            fh = open(self.path, "r+b")
        except FileNotFoundError:
            return 0
        with fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return 0
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return 0
            start, pos, chunk = 0, size, 1 << 16
            while pos > 0:  # find the start of the last line
                step = min(chunk, pos)
                pos -= step
                fh.seek(pos)
                nl = fh.read(step).rfind(b"\n")
                if nl >= 0:
                    start = pos + nl + 1
                    break
            fh.seek(start)
            tail = fh.read()
            try:
                whole = isinstance(json.loads(tail.decode("utf-8")), dict)
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                whole = False
            if whole:
                fh.seek(size)
                fh.write(b"\n")
                removed = 0
            else:
                fh.truncate(start)
                removed = size - start
                log.warning(
                    "%s: removed a torn last line (%d bytes) an interrupted write left",
                    self.path, removed,
                )  # fmt: skip
            fh.flush()
            os.fsync(fh.fileno())
        return removed

    def _append_lines(self, lines: Iterable[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if not self._repaired:
                self.repair_tail()
            with open(self.path, "a", encoding="utf-8") as fh:
                for line in lines:
                    fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            from avprep.diskfull import FULL_ERRNOS, disk_full_error

            if exc.errno in FULL_ERRNOS:  # a line cut short is repaired by the next append
                raise disk_full_error(self.path) from None
            raise

    def write_header(self, **facts: Any) -> None:
        self._header.update(facts)
        self._append_lines([json.dumps({"_header": facts}, sort_keys=True, default=str)])

    def append(self, record: ClipRecord) -> None:
        self._append_lines([record.to_json()])
        self._records[record.clip_id] = record

    def summary(self, top: int = 5) -> str:
        """Counts per status and the most common error reasons, as text."""
        counts = self.counts()
        lines = ["status       clips"]
        for status in STATUSES:
            if counts.get(status):
                lines.append(f"{status:<12} {counts[status]:>6}")
        lines.append(f"{'total':<12} {len(self):>6}")
        reasons = Counter(
            _generic_reason(r.error, r.clip_id)
            for r in self._records.values()
            if r.error and not r.ok
        )
        if reasons:
            lines.append("top error reasons:")
            for reason, n in reasons.most_common(top):
                lines.append(f"  {n:>6}  {reason[:160]}")
        return "\n".join(lines)


def is_done(record: ClipRecord | None, out_dir: str | os.PathLike) -> bool:
    """A clip is done when its record is ok and every output it records still exists.

    ``record.outputs`` holds paths relative to ``out_dir`` (a file or a
    folder); a record with no outputs is not done. Extraction and released
    folders use this as it is; download adds its own checks on top
    (:func:`avprep.stages.download.is_done`).
    """
    if record is None or not record.ok or not record.outputs:
        return False
    root = Path(out_dir)
    return all((root / rel).exists() for rel in record.outputs.values())


def _generic_reason(error: str, clip_id: str) -> str:
    """``error`` with the clip's own id replaced by ``<id>``, so reasons group across clips."""
    if len(clip_id) < 3:  # too short to replace without hitting ordinary words
        return error
    return error.replace(clip_id, "<id>")
