"""``avprep verify``: check a packed store before trusting it with a training run.

Checks, for both layouts: ``index.json`` readable; every indexed file present
and nothing unindexed that looks like a shard (a renamed file); sha256 as
indexed (a corrupted or truncated file); each file opens; names, dtypes and
shapes as the layout says; row counts as indexed and consistent across
files; clip ids present and unique; every JPEG frame and FLAC clip
decodable (FLAC with libFLAC, to the stored length, mono); no NaN or inf in
float arrays (and SSPL frames within 0-255). An SSPL folder without
``index.json`` passes only if its files are not an unfinished avprep pack
and its id csv lists exactly as many ids as the files hold rows (so a store
missing shards fails). Content is read in
blocks of rows, so memory stays small whatever the store size. Leftover
temporaries of an interrupted pack are warnings, not problems.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from avprep.atomic import TMP_PREFIX, sha256_file
from avprep.errors import ConfigError, StoreError
from avprep.ids import is_safe_id
from avprep.manifest import FAILED, OK, ClipRecord
from avprep.runner import map_clips
from avprep.store import sspl
from avprep.store.index import INDEX_NAME, NATIVE_FORMAT, ShardEntry, StoreIndex, read_index
from avprep.store.layouts import Layout, SsplLayout, get_layout
from avprep.store.native import decode_flac, decode_jpeg

log = logging.getLogger(__name__)

BLOCK_ROWS = 64
_SSPL_FILE = re.compile(r"h5py_(train|test)_(frames|audios|spects).*\.h5")


@dataclasses.dataclass
class VerifyReport:
    path: Path
    layout: str | None = None
    split: str | None = None
    shards: int = 0
    rows: int = 0
    checks: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self, top: int = 50) -> str:
        lines = [f"store {self.path}"]
        if self.layout:
            lines.append(
                f"  layout {self.layout}, split {self.split!r}, {self.shards} shard(s), "
                f"{self.rows} rows"
            )
        if self.checks:
            lines.append("  checked: " + ", ".join(self.checks))
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        if self.ok:
            lines.append("  OK: no problems found")
        else:
            lines.append(f"  {len(self.problems)} PROBLEM(S):")
            lines += [f"    - {p}" for p in self.problems[:top]]
            if len(self.problems) > top:
                lines.append(f"    ... and {len(self.problems) - top} more")
        return "\n".join(lines)


@dataclasses.dataclass
class _Job:
    clip_id: str  # the shard's name, for the runner
    entry: ShardEntry


def _finite_blocks(ds: h5py.Dataset, label: str, problems: list[str], lo=None, hi=None) -> None:
    bad = []
    for start in range(0, ds.shape[0], BLOCK_ROWS):
        block = ds[start : start + BLOCK_ROWS]
        flat = block.reshape(block.shape[0], -1)
        ok = np.isfinite(flat).all(axis=1)
        if lo is not None:
            ok &= (flat >= lo).all(axis=1) & (flat <= hi).all(axis=1)
        bad.extend(start + int(i) for i in np.flatnonzero(~ok))
    if bad:
        what = "NaN/inf" if lo is None else f"NaN/inf or values outside {lo}-{hi}"
        problems.append(f"{label}: {len(bad)} row(s) with {what} (first rows {bad[:5]})")


class _Checker:
    """Picklable per-shard check (sizes, hashes, then the layout's own check of the files);
    returns a record whose meta holds problems and ids."""

    def __init__(self, folder: Path, layout: type[Layout], variant: str, hashes: bool,
                 content: bool):  # fmt: skip
        self.folder = folder
        self.layout = layout
        self.variant = variant
        self.hashes = hashes
        self.content = content

    def __call__(self, job: _Job) -> ClipRecord:
        entry = job.entry
        problems: list[str] = []
        files = entry.files or {entry.file: {"sha256": entry.sha256, "bytes": entry.bytes}}
        for name, facts in files.items():
            path = self.folder / name
            if not path.is_file():
                continue  # reported once by the caller
            size = path.stat().st_size
            if size != facts["bytes"]:
                problems.append(f"{name}: {size} bytes, index says {facts['bytes']} (truncated?)")
            if self.hashes and sha256_file(path) != facts["sha256"]:
                problems.append(f"{name}: sha256 differs from index.json (corrupted or modified)")
        ids: list[str] = []
        try:
            ids = self.layout.check_shard(self.folder, entry, self.variant, self.content, problems)
        except OSError as exc:
            problems.append(f"{entry.file}: cannot be read by HDF5 ({exc}); truncated or corrupted")
        except (KeyError, ValueError, TypeError) as exc:
            problems.append(f"{entry.file}: malformed ({type(exc).__name__}: {exc})")
        return ClipRecord(
            clip_id=job.clip_id,
            status=OK if not problems else FAILED,
            meta={"problems": problems, "ids": ids},
        )


def check_native_shard(folder: Path, entry: ShardEntry, content: bool,
                       problems: list[str]) -> list[str]:  # fmt: skip
    """A native shard's rows, ids, offset tables and (``content``) frames, audio and arrays."""
    name = entry.file
    with h5py.File(folder / name, "r") as f:
        fmt = f.attrs.get("format")
        fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
        if fmt != NATIVE_FORMAT:
            problems.append(f"{name}: not an avprep native shard (format={fmt!r})")
            return []
        n = int(f["clip_id"].shape[0])
        if n != entry.rows or int(f.attrs.get("rows", -1)) != entry.rows:
            problems.append(f"{name}: {n} rows, index says {entry.rows}")
        ids = [s.decode("utf-8") for s in f["clip_id"][:]]
        unsafe = [i for i in ids if not is_safe_id(i)]
        if unsafe:
            problems.append(f"{name}: {len(unsafe)} malformed clip id(s), e.g. {unsafe[0]!r}")
        for key in ("frame", "audio", "spectrogram", "flow", "meta", "frame_time"):
            if key in f and f[key].shape[0] != n:
                problems.append(f"{name}: {key} has {f[key].shape[0]} rows, clip_id has {n}")
        length = int(f.attrs.get("audio_length", 0))
        for data, table, what in (("frame_jpeg", "frame_offset", "frame"),
                                  ("audio_flac", "audio_offset", "audio clip")):  # fmt: skip
            if data not in f:
                continue
            off = f[table][:]
            size = f[data].shape[0]
            if off.shape != (n + 1,) or off[0] != 0 or off[-1] != size or (np.diff(off) <= 0).any():
                problems.append(f"{name}: {table} table is inconsistent with {data}")
            elif content:
                bad = []
                for i in range(n):
                    raw = f[data][off[i] : off[i + 1]]
                    if not (_jpeg_ok(raw) if data == "frame_jpeg" else _flac_ok(raw, length)):
                        bad.append(ids[i] if i < len(ids) else str(i))
                if bad:
                    problems.append(
                        f"{name}: {len(bad)} {what}(s) not decodable, e.g. {', '.join(bad[:3])}"
                    )
        if content:
            for key in ("spectrogram", "flow"):
                if key in f:
                    _finite_blocks(f[key], f"{name}: {key}", problems)
        return ids


def check_sspl_shard(folder: Path, entry: ShardEntry, variant: str, content: bool,
                     problems: list[str]) -> None:  # fmt: skip
    """One shard of SSPL's files: dataset names, shapes, dtypes, rows, (``content``) values."""
    rows = {}
    for kind, name in _sspl_names(entry).items():
        path = folder / name
        if not path.is_file():
            continue
        with h5py.File(path, "r") as f:
            key = sspl.dataset_key(variant, kind)
            if key not in f:
                problems.append(f"{name}: no dataset {key!r} (has {', '.join(f.keys())})")
                continue
            ds = f[key]
            want = {
                "frames": (sspl.FRAME_SIZE, sspl.FRAME_SIZE, 3),
                "audios": (sspl.AUDIO_LENGTH,),
                "spects": sspl.SPECT_SHAPE,
            }[kind]
            if ds.shape[1:] != want or ds.dtype != np.float32:
                problems.append(
                    f"{name}: {key} is {ds.shape} {ds.dtype}, SSPL expects (N, "
                    f"{', '.join(map(str, want))}) float32"
                )
                continue
            rows[kind] = ds.shape[0]
            if content:
                lo, hi = (0, 255) if kind == "frames" else (None, None)
                _finite_blocks(ds, f"{name}: {key}", problems, lo, hi)
    if len(set(rows.values())) > 1:
        problems.append(f"shard {entry.file}: row counts differ between files: {rows}")
    elif rows and next(iter(rows.values())) != entry.rows:
        problems.append(
            f"shard {entry.file}: {next(iter(rows.values()))} rows, index says {entry.rows}"
        )


def _jpeg_ok(raw: np.ndarray) -> bool:
    img = decode_jpeg(raw)
    return img is not None and img.size > 0


def _flac_ok(raw: np.ndarray, length: int) -> bool:
    """Decodes with libFLAC (the reference decoder), mono, ``length`` samples if known."""
    try:
        pcm = decode_flac(raw, reference=True)
    except StoreError:
        return False
    return pcm.size > 0 and (length <= 0 or pcm.shape[0] == length)


def _sspl_names(entry: ShardEntry) -> dict[str, str]:
    names = {}
    for name in entry.files or [entry.file]:
        m = _SSPL_FILE.fullmatch(name)
        if m:
            names[m.group(2)] = name
    return names


def _discover_sspl(folder: Path) -> StoreIndex | None:
    """An index for SSPL files written by SSPL's own script (no index.json, no hashes)."""
    frames = sorted(p.name for p in folder.glob("h5py_*_frames*.h5"))
    if not frames:
        return None
    entries, start = [], 0
    split = None
    for name in sorted(
        frames, key=lambda s: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]
    ):
        m = re.fullmatch(r"h5py_(train|test)_frames(?:_(.+?))?(?:_(\d+))?\.h5", name)
        if not m:
            continue
        split = m.group(2) or "test"
        variant = m.group(1)
        try:
            with h5py.File(folder / name, "r") as f:
                n = int(f[f"{variant}_frames"].shape[0]) if f"{variant}_frames" in f else 0
        except OSError:
            n = 0  # unreadable (truncated?): the shard check reports it
        others = {name.replace("_frames", f"_{k}"): {} for k in sspl.KINDS}
        entries.append(
            ShardEntry(file=name, row_start=start, rows=n, bytes=-1, sha256="", files=others)
        )
        start += n
    return StoreIndex(
        layout=SsplLayout.name,
        split=split or "",
        rows=start,
        rows_per_shard=entries[0].rows,
        shards=entries,
    )


def verify_store(
    path: str | os.PathLike,
    *,
    hashes: bool = True,
    content: bool = True,
    jobs: int = 1,
    backend: str = "loky",
    progress: bool = True,
) -> VerifyReport:
    """Check the store at ``path`` and return a report (``report.ok`` false on any problem)."""
    folder = Path(path)
    report = VerifyReport(path=folder)
    if not folder.is_dir():
        raise StoreError(f"no store folder at {folder}")
    temps = sorted(p.name for p in folder.glob(TMP_PREFIX + "*"))
    if temps:
        report.warnings.append(
            f"{len(temps)} temporary file(s) from an interrupted pack (e.g. {temps[0]}); "
            "rerun pack-h5 to finish, or delete them"
        )
    found = _read_or_discover_index(folder, report)
    if found is None:
        return report
    index, indexed = found
    hashes = hashes and indexed
    try:
        layout = get_layout(index.layout)
    except ConfigError as exc:
        report.problems.append(f"{INDEX_NAME}: {exc}")
        return report
    report.layout, report.split = index.layout, index.split
    report.shards, report.rows = len(index.shards), index.rows
    report.checks = ["index", "files present", "row counts", "dtypes/shapes"]
    if hashes:
        report.checks.append("sha256")
    if content:
        report.checks += [*layout.content_checks, "no NaN/inf"]
    report.checks.append("unique ids")

    _check_files_and_rows(folder, index, report)
    if not indexed:
        for e in index.shards:  # sizes unknown without an index: skip the size check
            e.files = {n: {"bytes": (folder / n).stat().st_size if (folder / n).is_file() else -1,
                           "sha256": ""} for n in e.files}  # fmt: skip
    checker = _Checker(folder, layout, layout.verify_variant(index), hashes, content)
    all_ids = _check_shards(checker, folder, index, report, jobs, backend, progress)
    if layout.ids_in_id_list:
        all_ids = _id_list_ids(folder, index, report)
    dup = [i for i, c in Counter(all_ids).items() if c > 1]
    if dup:
        report.problems.append(f"{len(dup)} clip id(s) appear more than once, e.g. {dup[:3]}")
    if index.virtual and (folder / index.virtual).is_file():
        _check_virtual(folder, index, report)
    return report


def _read_or_discover_index(folder: Path, report: VerifyReport) -> tuple[StoreIndex, bool] | None:
    """(the store's index, whether it came from ``index.json``); without one, SSPL files
    found in ``folder`` make an index (no sha256 to check); None when neither is there
    (the problem is on ``report``)."""
    try:
        return read_index(folder), True
    except StoreError as exc:
        index = _discover_sspl(folder)
        if index is None:
            report.problems.append(str(exc))
            return None
    report.warnings.append(f"no {INDEX_NAME}: SSPL files found; sha256 cannot be checked")
    report.problems.extend(_sspl_completeness(folder, index))
    return index, False


def _check_files_and_rows(folder: Path, index: StoreIndex, report: VerifyReport) -> None:
    """Every listed file present, no unlisted shard, the shards' rows adding up to the index's."""
    expected = set(index.all_files())
    for name in sorted(expected):
        if not (folder / name).is_file():
            report.problems.append(f"{name} is missing (deleted or renamed?)")
    if index.virtual:
        expected.add(index.virtual)
        if not (folder / index.virtual).is_file():
            report.problems.append(f"virtual dataset file {index.virtual} is missing")
    for p in sorted(folder.glob("*.h5")):
        if p.name not in expected and not p.name.startswith(TMP_PREFIX):
            report.problems.append(
                f"{p.name} is not listed in {INDEX_NAME} (a renamed shard, or a stray file)"
            )
    start = 0
    for e in index.shards:
        if e.row_start != start:
            report.problems.append(f"{e.file}: starts at row {e.row_start}, expected {start}")
        start += e.rows
    if start != index.rows:
        report.problems.append(f"shards hold {start} rows, index says {index.rows}")


def _check_shards(
    checker: _Checker,
    folder: Path,
    index: StoreIndex,
    report: VerifyReport,
    jobs: int,
    backend: str,
    progress: bool,
) -> list[str]:
    """Run ``checker`` over every shard whose files are all present; the ids they hold."""
    present = [
        _Job(e.file, e)
        for e in index.shards
        if all((folder / n).is_file() for n in (e.files or [e.file]))
    ]
    all_ids: list[str] = []
    for rec in map_clips(
        checker, present, jobs=jobs, backend=backend, desc="verifying", key=_job_name,
        progress=progress, unit="shard",
    ):  # fmt: skip
        if rec.error:  # the checker itself crashed
            report.problems.append(f"{rec.clip_id}: check failed: {rec.error}")
        report.problems.extend(rec.meta.get("problems", []))
        all_ids.extend(rec.meta.get("ids", []))
    return all_ids


def _check_virtual(folder: Path, index: StoreIndex, report: VerifyReport) -> None:
    """The virtual dataset file: its row count, and every virtual dataset resolving."""
    try:
        with h5py.File(folder / index.virtual, "r") as f:
            if int(f.attrs.get("rows", -1)) != index.rows:
                report.problems.append(f"{index.virtual}: rows attribute != {index.rows}")
            for key in f:
                if f[key].is_virtual:
                    f[key][0]  # resolves the source mapping
    except (OSError, KeyError) as exc:
        report.problems.append(f"{index.virtual}: cannot be read ({exc})")


def _sspl_completeness(folder: Path, index: StoreIndex) -> list[str]:
    """Without index.json: can we tell every shard and row is there? If not, say why.

    Files avprep wrote without their index are an unfinished pack. SSPL's own
    files need their id csv: its id count is the row count the store must
    have (a store missing shards, or one cut short, holds fewer).
    """
    if not index.shards:
        return []
    first = index.shards[0].file
    unfinished = sspl.unfinished_pack(folder, first)
    if unfinished:
        return [unfinished]
    variant = "test" if first.startswith("h5py_test") else "train"
    csv = sspl.find_id_csv(folder, index.split, variant)
    if csv is None:
        return [
            f"no {INDEX_NAME} and no id list (SSPL's *_videos_{index.split}.csv) beside the "
            "files: cannot tell whether every shard and row is present; put the id csv "
            "beside the files"
        ]
    index.id_list = csv.name  # cross-checked against the rows by _id_list_ids
    return []


def _id_list_ids(folder: Path, index: StoreIndex, report: VerifyReport) -> list[str]:
    if not index.id_list:
        report.warnings.append("no id list recorded: ids not checked")
        return []
    path = folder / index.id_list
    if not path.is_file():
        report.problems.append(f"id list {index.id_list} is missing")
        return []
    try:
        ids = sspl.read_id_csv(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable list is a problem to report
        report.problems.append(f"id list {index.id_list} unreadable: {exc}")
        return []
    if len(ids) != index.rows:
        report.problems.append(f"id list {index.id_list} has {len(ids)} ids for {index.rows} rows")
    return ids


def _job_name(job: _Job) -> str:
    return job.clip_id


def report_dict(report: VerifyReport) -> dict[str, Any]:
    d = dataclasses.asdict(report)
    d["path"] = str(report.path)
    d["ok"] = report.ok
    return d
