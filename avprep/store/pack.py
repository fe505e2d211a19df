"""``avprep pack-h5``: an extraction folder -> sharded HDF5 (native or SSPL layout).

How it runs:

1. choose the split's clips (all ok clips sorted by id, or ``--ids`` in
   order) and probe their files' headers; unusable clips are skipped with a
   reason, so the row numbering is final before anything is written;
2. cut the rows into shards (:mod:`avprep.store.shard_plan`: ``--shards K``
   gives K shards; SSPL's layout holds 14,400 rows a shard, as its loader reads);
3. write the shards in parallel, one writer process per shard (h5py cannot
   share a file between processes), each row straight into the file, each
   shard under a temporary name renamed when complete;
4. write ``index.json`` (shards, rows, sha256, skipped clips) last.

A rerun skips every shard whose file carries the same plan hash (the hash
of its ids, options and source manifest), removes temporaries a killed run
left, and redoes the rest. The same input gives byte-identical files (but
for ``--virtual``'s file: HDF5 stamps its virtual datasets with the time).

What the files are (names, attributes, which clips fit, what goes beside
the shards) is the layout's business (:mod:`avprep.store.layouts`, one
object per ``--layout``); this driver never branches on the layout's name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py

from avprep.atomic import atomic_path, sha256_file
from avprep.diskfull import check_free
from avprep.errors import ConfigError, StoreError
from avprep.ids import is_safe_id
from avprep.manifest import OK, ClipRecord
from avprep.stage import Stage, StageReport, Work, run_stage
from avprep.store import native
from avprep.store.index import INDEX_NAME, ShardEntry, StoreIndex
from avprep.store.layouts import VIRTUAL_SUFFIX, Layout, PackOptions, get_layout, layout_names
from avprep.store.source import Clip, Selection, read_ids, select

log = logging.getLogger(__name__)

LAYOUTS = layout_names()
FRAME_MODES = ("jpeg", "raw")
__all__ = ["FRAME_MODES", "LAYOUTS", "VIRTUAL_SUFFIX", "PackResult", "ShardTask", "pack"]


@dataclasses.dataclass
class ShardTask:
    """One shard for one writer process."""

    name: str  # the shard's main file name (the key in progress and errors)
    k: int
    row_start: int
    clips: list[Clip]
    files: dict[str, str]  # role -> file name in the output folder
    attrs: dict[str, Any]
    plan_key: str  # the attribute holding the plan hash
    progress: bool = False

    @property
    def clip_id(self) -> str:  # lets avprep.runner name the task
        return self.name


@dataclasses.dataclass
class PackResult:
    out: Path
    layout: str
    split: str
    rows: int
    rows_per_shard: int
    shards: list[str]
    written: list[str]
    reused: list[str]
    skipped: list[tuple[str, str]]
    missing: list[str]
    duplicates: list[str]
    bytes: int
    index: StoreIndex

    def summary(self, top: int = 5) -> str:
        lines = [
            f"packed {self.rows} rows of split {self.split!r} ({self.layout} layout) into "
            f"{len(self.shards)} shard(s) of <= {self.rows_per_shard} rows in {self.out}",
            f"  shards written {len(self.written)}, already complete {len(self.reused)}; "
            f"{self.bytes / 1e6:.1f} MB"
            + (f", {self.bytes / self.rows / 1e3:.1f} kB per row" if self.rows else ""),
        ]
        lines += ["  " + note for note in get_layout(self.layout).summary_notes(self.index)]
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} clip(s) (listed in {INDEX_NAME}):")
            lines += [f"    {cid}: {why}" for cid, why in self.skipped[:top]]
            if len(self.skipped) > top:
                lines.append(f"    ... and {len(self.skipped) - top} more")
        if self.missing:
            shown = ", ".join(self.missing[:top]) + (" ..." if len(self.missing) > top else "")
            lines.append(f"  {len(self.missing)} listed id(s) not in the extraction: {shown}")
        if self.duplicates:
            lines.append(f"  {len(self.duplicates)} duplicate id(s) in the list ignored")
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class _WriteConfig:
    """What every shard writer shares: the output folder and the layout."""

    out: Path
    layout: Layout


def _complete(task: ShardTask, out: Path) -> bool:
    """A shard is done when all its files exist and carry this plan's hash (the hash of
    its ids, options and source manifest): unlike a stage's clips, a shard has no
    manifest record, and a file from another plan must be redone."""
    want = task.attrs[task.plan_key]
    for name in task.files.values():
        path = out / name
        if not path.is_file():
            return False
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get(task.plan_key) != want:
                    return False
        except Exception:  # noqa: BLE001 - an unreadable file is an incomplete one
            return False
    return True


def write_shard(task: ShardTask, cfg: _WriteConfig) -> ClipRecord:
    """The stage's per-shard step: write (or keep) one shard, return a record with its hashes."""
    out, layout = cfg.out, cfg.layout
    reused = _complete(task, out)
    if not reused:
        check_free(out, layout.estimate_bytes(task.clips), f"shard {task.name}")
        with contextlib.ExitStack() as stack:
            tmps = {
                role: stack.enter_context(atomic_path(out / name))
                for role, name in task.files.items()
            }
            layout.write_shard(tmps, task.clips, task.attrs, task.progress)
            for tmp in tmps.values():  # mkstemp makes 0600 files; shards are for sharing
                os.chmod(tmp, _file_mode())
    files = {}
    for name in task.files.values():
        path = out / name
        files[name] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    return ClipRecord(
        clip_id=task.name,
        status=OK,
        meta={"rows": len(task.clips), "row_start": task.row_start, "files": files,
              "reused": reused},
    )  # fmt: skip


def _file_mode() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _plan_hash(attrs: dict[str, Any], ids: Sequence[str]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(attrs, sort_keys=True, default=str).encode())
    for cid in ids:
        h.update(cid.encode() + b"\n")
    return h.hexdigest()


def _remove_stale(out: Path, pattern: re.Pattern, keep: set[str]) -> None:
    for p in out.iterdir():
        if pattern.fullmatch(p.name) and p.name not in keep:
            log.warning("removing %s: a shard of an earlier pack with other options", p)
            p.unlink()


def pack_stage(out: Path) -> Stage:
    """The pack-h5 stage's declaration: shards, not clips; no manifest (a shard is done
    when its files carry the plan's hash, checked by :func:`write_shard`)."""
    return Stage(
        name="pack-h5",
        step=write_shard,
        config=None,  # the layout is known once the clips are selected (Work.config)
        out=out,
        desc="shards",
        unit="shard",
        key=_task_name,
        keeps_manifest=False,
        sweep=(("", False),),
    )


def pack(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    split: str,
    *,
    shards: int | None = None,
    rows_per_shard: int | None = None,
    layout: str = "native",
    ids: Sequence[str] | str | os.PathLike | None = None,
    jobs: int | None = None,
    backend: str = "loky",
    scheduler: str | None = None,
    frames: str = "jpeg",
    audio: str = "flac",
    compression: str | None = None,
    modalities: Sequence[str] | None = None,
    test: bool | None = None,
    virtual: bool = False,
    id_list: str | None = None,
    progress: bool = True,
) -> PackResult:
    """Pack the extraction folder ``in_dir`` as split ``split`` into ``out_dir``.

    One pack per folder at a time: ``OUT/.pack-h5.lock`` is held from before
    the old index is read until the new one is written
    (:func:`avprep.stage.run_stage`).
    ``layout`` names a layout of :data:`avprep.store.layouts.LAYOUTS`.
    ``shards`` (K) or ``rows_per_shard`` (N) size the shards (default: one
    shard); with K, exactly K shards of near-equal size; SSPL's sharded train
    layout always holds 14,400 rows a shard (:mod:`avprep.store.shard_plan`).
    ``ids`` is a list of clip ids, or an id list in any form
    :func:`avprep.recipes.clip_ids` reads (a file in any list format, or a
    registry name such as ``sspl/vggss-test-4692``): exactly those clips, in
    that order. ``audio``: ``flac`` (lossless, the
    default) or ``pcm`` (int16) in native shards. ``compression``: the
    lossless HDF5 filter on native PCM audio, spectrograms and flow (default
    ``gzip``: about 20 % off a log-mel spectrogram for ~16 us more per read;
    ``none`` for the SSPL layout, which has none). ``jobs`` writer
    processes (default: one per shard, at most the CPU count). ``test``
    forces SSPL's train/test variant (default: a split named ``test*`` is a
    test split). ``id_list`` overrides the SSPL id csv's name.
    """
    out = Path(out_dir)
    plan: dict[str, Any] = {}

    def select_shards(_manifest: Any) -> Work:
        kind, comp = _check_options(
            layout, split, frames, audio, compression, shards, rows_per_shard
        )
        opts = PackOptions(
            split=split, frames=frames, audio=audio, compression=comp, shards=shards,
            rows_per_shard=rows_per_shard, test=test, virtual=virtual, id_list=id_list,
        )  # fmt: skip
        kind.check_options(opts)
        if out.resolve() == Path(in_dir).resolve():
            raise ConfigError("--out must be another folder than --in")
        wanted = ids
        if wanted is not None and not isinstance(wanted, (list, tuple)):
            wanted, ids_file = read_ids(wanted)
            opts = dataclasses.replace(opts, ids_file=ids_file)
        sel, mods = select(in_dir, ids=wanted, modalities=modalities, progress=progress)
        lay = kind(opts)
        if sel.clips:
            lay.prepare(sel, mods)
        if not sel.clips:
            raise _nothing_to_pack(in_dir, sel)
        bounds = lay.shard_bounds(len(sel.clips))
        _open_out(out, split, lay.name)
        base_attrs = lay.base_attrs(len(bounds), mods, sel)
        n_jobs = jobs if jobs is not None else max(1, min(len(bounds), os.cpu_count() or 1))
        row_progress = progress and (backend == "serial" or n_jobs <= 1 or len(bounds) == 1)
        tasks = _plan_tasks(lay, sel, bounds, base_attrs, row_progress)
        _remove_stale(out, lay.stale_pattern(), {name for t in tasks for name in t.files.values()})
        plan.update(lay=lay, sel=sel, mods=mods, base_attrs=base_attrs, tasks=tasks)
        return Work(tasks, config=_WriteConfig(out, lay))

    def finish(run: StageReport) -> PackResult:
        lay, sel, tasks = plan["lay"], plan["sel"], plan["tasks"]
        results = _shard_results(tasks, run.records)
        index = _write_index(out, lay, sel, plan["mods"], plan["base_attrs"], tasks, results)
        return _result(out, lay, sel, tasks, results, index)

    return run_stage(
        pack_stage(out), select_shards, jobs=jobs if jobs is not None else os.cpu_count() or 1,
        backend=backend, scheduler=scheduler, progress=progress, finish=finish,
    )  # fmt: skip


def _check_options(
    layout: str,
    split: str,
    frames: str,
    audio: str,
    compression: str | None,
    shards: int | None,
    rows_per_shard: int | None,
) -> tuple[type[Layout], str]:
    """The layout class and the compression to use; a :class:`ConfigError` for bad options."""
    kind = get_layout(layout)
    if frames not in FRAME_MODES:
        raise ConfigError(f"unknown frame mode {frames!r}; valid: {', '.join(FRAME_MODES)}")
    if audio not in native.AUDIO_ENCODINGS:
        raise ConfigError(
            f"unknown audio encoding {audio!r}; valid: {', '.join(native.AUDIO_ENCODINGS)}"
        )
    compression = kind.resolve_compression(compression)
    if compression not in native.COMPRESSIONS:
        raise ConfigError(
            f"unknown compression {compression!r}; valid: {', '.join(native.COMPRESSIONS)}"
        )
    if not is_safe_id(split):
        raise ConfigError(f"split name {split!r} may hold only letters, digits, '_', '-', '.'")
    if shards is not None and rows_per_shard is not None:
        raise ConfigError("give --shards or --rows-per-shard, not both")
    if (shards is not None and shards < 1) or (rows_per_shard is not None and rows_per_shard < 1):
        raise ConfigError("--shards and --rows-per-shard must be at least 1")
    return kind, compression


def _nothing_to_pack(in_dir: str | os.PathLike, sel: Selection) -> StoreError:
    reasons = "; ".join(f"{c}: {w}" for c, w in sel.skipped[:3])
    return StoreError(
        f"nothing to pack from {in_dir}: no usable clip"
        + (f" ({len(sel.skipped)} skipped, e.g. {reasons})" if sel.skipped else "")
        + (f"; {len(sel.missing)} listed id(s) not extracted" if sel.missing else "")
    )


def _open_out(out: Path, split: str, layout: str) -> None:
    """Make ``out``; refuse one holding another split or layout; drop its old index
    (its temporaries are swept by :func:`avprep.stage.run_stage`)."""
    out.mkdir(parents=True, exist_ok=True)
    old_index = out / INDEX_NAME
    if old_index.is_file():
        try:
            old = json.loads(old_index.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = {}
        if old.get("split") not in (None, split) or old.get("layout") not in (None, layout):
            raise ConfigError(
                f"{out} already holds split {old.get('split')!r} ({old.get('layout')} layout); "
                "pack each split into its own folder"
            )
        old_index.unlink()  # rewritten when this run completes


def _plan_tasks(
    lay: Layout,
    sel: Selection,
    bounds: Sequence[tuple[int, int]],
    base_attrs: dict[str, Any],
    row_progress: bool,
) -> list[ShardTask]:
    """One task per shard: its clips, file names and attributes (with the plan hash)."""
    num = len(bounds)
    tasks: list[ShardTask] = []
    for k, (start, count) in enumerate(bounds):
        clips = sel.clips[start : start + count]
        files = lay.shard_files(k, num)
        attrs = lay.shard_attrs(base_attrs, k, start, len(clips), num)
        attrs[lay.plan_key] = _plan_hash(attrs, [c.clip_id for c in clips])
        name = next(iter(files.values()))
        tasks.append(ShardTask(name, k, start, clips, files, attrs, lay.plan_key, row_progress))
    return tasks


def _shard_results(
    tasks: Sequence[ShardTask], records: Sequence[ClipRecord]
) -> dict[str, ClipRecord]:
    """Each shard's record; a :class:`StoreError` naming the shards that failed."""
    results = {rec.clip_id: rec for rec in records}
    failed = [(t.name, results[t.name].error) for t in tasks if not results[t.name].ok]
    if failed:
        detail = "; ".join(f"{name}: {err}" for name, err in failed[:3])
        raise StoreError(
            f"{len(failed)} of {len(tasks)} shard(s) failed ({detail}). Finished shards are "
            "kept: fix the cause and rerun the same command to resume"
        )
    return results


def _write_index(
    out: Path,
    lay: Layout,
    sel: Selection,
    mods: tuple[str, ...],
    base_attrs: dict[str, Any],
    tasks: Sequence[ShardTask],
    results: dict[str, ClipRecord],
) -> StoreIndex:
    """Write the files beside the shards, then ``index.json`` (last)."""
    entries = []
    for t in tasks:
        files = results[t.name].meta["files"]
        main = files[t.name]
        entries.append(
            ShardEntry(
                file=t.name,
                row_start=t.row_start,
                rows=len(t.clips),
                bytes=main["bytes"],
                sha256=main["sha256"],
                files=lay.index_files(files),
            )
        )
    id_list_file, vds = lay.write_extras(out, entries, [c.clip_id for c in sel.clips])
    params = sel.header.get("profile_params") or {}
    index = StoreIndex(
        layout=lay.name,
        split=lay.opts.split,
        rows=len(sel.clips),
        rows_per_shard=max(len(t.clips) for t in tasks),
        shards=entries,
        attrs=lay.index_attrs(base_attrs, mods, params),
        skipped=[{"clip_id": c, "reason": r} for c, r in sel.skipped],
        missing=list(sel.missing),
        id_list=id_list_file,
        virtual=vds,
        format=lay.format,
        format_version=lay.format_version,
    )
    index.write(out)
    for name in (INDEX_NAME, id_list_file, vds):
        if name:
            os.chmod(out / name, _file_mode())
    return index


def _result(
    out: Path,
    lay: Layout,
    sel: Selection,
    tasks: Sequence[ShardTask],
    results: dict[str, ClipRecord],
    index: StoreIndex,
) -> PackResult:
    return PackResult(
        out=out,
        layout=lay.name,
        split=index.split,
        rows=index.rows,
        rows_per_shard=index.rows_per_shard,
        shards=[t.name for t in tasks],
        written=[t.name for t in tasks if not results[t.name].meta["reused"]],
        reused=[t.name for t in tasks if results[t.name].meta["reused"]],
        skipped=list(sel.skipped),
        missing=list(sel.missing),
        duplicates=list(sel.duplicates),
        bytes=sum(f["bytes"] for r in results.values() for f in r.meta["files"].values()),
        index=index,
    )


def _task_name(task: ShardTask) -> str:
    return task.name
