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
left, and redoes the rest. The same input gives byte-identical files.
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

from avprep import __version__
from avprep.atomic import atomic_path, cleanup_temps, sha256_file
from avprep.diskfull import check_free
from avprep.errors import ConfigError, StoreError
from avprep.ids import is_safe_id
from avprep.lock import folder_lock
from avprep.manifest import OK, ClipRecord
from avprep.runner import map_clips
from avprep.store import native, sspl
from avprep.store.index import (
    FORMAT_VERSION,
    INDEX_NAME,
    NATIVE_FORMAT,
    SSPL_FORMAT,
    ShardEntry,
    StoreIndex,
)
from avprep.store.shard_plan import shard_bounds, sspl_num_train_note, sspl_sharded
from avprep.store.source import Clip, Selection, most_common, read_ids, select

log = logging.getLogger(__name__)

LAYOUTS = ("native", "sspl")
FRAME_MODES = ("jpeg", "raw")
VIRTUAL_SUFFIX = ".vds.h5"


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
        if self.layout == "sspl" and self.index.attrs.get("avprep_variant") == "train":
            lines.append("  " + sspl_num_train_note(self.rows))
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


class _ShardWriter:
    """Picklable worker: write (or keep) one shard, return a record with its hashes."""

    def __init__(self, out: Path, layout: str, spec: native.NativeSpec | None, variant: str):
        self.out = out
        self.layout = layout
        self.spec = spec
        self.variant = variant

    def _complete(self, task: ShardTask) -> bool:
        want = task.attrs[task.plan_key]
        for name in task.files.values():
            path = self.out / name
            if not path.is_file():
                return False
            try:
                with h5py.File(path, "r") as f:
                    if f.attrs.get(task.plan_key) != want:
                        return False
            except Exception:  # noqa: BLE001 - an unreadable file is an incomplete one
                return False
        return True

    def __call__(self, task: ShardTask) -> ClipRecord:
        reused = self._complete(task)
        if not reused:
            need = (
                native.estimate_shard_bytes(task.clips, self.spec)
                if self.layout == "native"
                else sspl.shard_bytes(len(task.clips))
            )
            check_free(self.out, need, f"shard {task.name}")
            with contextlib.ExitStack() as stack:
                tmps = {
                    role: stack.enter_context(atomic_path(self.out / name))
                    for role, name in task.files.items()
                }
                if self.layout == "native":
                    native.write_shard(
                        tmps["shard"], task.clips, self.spec, task.attrs, progress=task.progress
                    )
                else:
                    sspl.write_shard(
                        tmps, task.clips, self.variant, task.attrs, progress=task.progress
                    )
                for tmp in tmps.values():  # mkstemp makes 0600 files; shards are for sharing
                    os.chmod(tmp, _file_mode())
        files = {}
        for name in task.files.values():
            path = self.out / name
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


def _native_spec(
    sel: Selection, modalities: tuple[str, ...], frames: str, compression: str, audio: str
) -> native.NativeSpec:
    """Reference shapes (the most common in the split) and skip clips that differ."""
    keep = [True] * len(sel.clips)
    why: list[str | None] = [None] * len(sel.clips)

    def reference(field: str, label: str, fmt=str) -> Any:
        values = [getattr(p, field) for p in sel.probes]
        ref = most_common(values)
        for i, v in enumerate(values):
            if keep[i] and v != ref:
                keep[i] = False
                why[i] = f"{label} {fmt(v)} differs from the split's {fmt(ref)}"
        return ref

    def audio_fmt(a: tuple[int, int, int]) -> str:
        return f"{a[2]} samples x{a[1]} ch at {a[0]} Hz"

    frame_shape = sample_rate = audio_length = spect = flow = None
    if "frame" in modalities and frames == "raw":
        h, w = reference("frame_size", "frame size")
        frame_shape = (h, w, 3)
    if "audio" in modalities:
        sample_rate, channels, audio_length = reference("audio", "audio", audio_fmt)
        if channels != 1:
            raise StoreError(f"the split's audio has {channels} channels; pack needs mono audio")
    if "spectrogram" in modalities:
        spect = reference("spectrogram", "spectrogram shape")
    if "flow" in modalities:
        flow = reference("flow", "flow shape")
    sel.skip(keep, why)
    return native.NativeSpec(
        modalities=modalities,
        frames=frames,
        frame_shape=frame_shape,
        sample_rate=sample_rate,
        audio_length=audio_length,
        spectrogram_shape=spect,
        spectrogram_name=sel.spectrogram_name,
        flow_shape=flow,
        compression=compression,
        audio=audio,
    )


def _check_sspl(sel: Selection, modalities: tuple[str, ...]) -> None:
    lacking = [m for m in ("frame", "audio", "spectrogram") if m not in modalities]
    if lacking:
        raise ConfigError(
            f"the SSPL layout needs frames, audio and spectrograms; the extraction has no "
            f"{', '.join(lacking)} (extract with --profile sspl)"
        )
    keep, why = [], []
    for p in sel.probes:
        reason = None
        sr, ch, _ = p.audio
        if sr != sspl.SAMPLE_RATE or ch != 1:
            reason = f"audio is {sr} Hz x{ch} ch; SSPL needs {sspl.SAMPLE_RATE} Hz mono"
        elif p.spectrogram != sspl.SPECT_SHAPE:
            reason = f"spectrogram shape {p.spectrogram}; SSPL needs {sspl.SPECT_SHAPE}"
        keep.append(reason is None)
        why.append(reason)
    sel.skip(keep, why)


def _remove_stale(out: Path, pattern: re.Pattern, keep: set[str]) -> None:
    for p in out.iterdir():
        if pattern.fullmatch(p.name) and p.name not in keep:
            log.warning("removing %s: a shard of an earlier pack with other options", p)
            p.unlink()


def pack(
    in_dir: str | os.PathLike, out_dir: str | os.PathLike, split: str, **kw: Any
) -> PackResult:
    """Pack the extraction folder ``in_dir`` as split ``split`` into ``out_dir``.

    One pack per folder at a time: ``OUT/.pack-h5.lock`` is held from before
    the old index is read until the new one is written. Options: see
    :func:`_pack_locked`.
    """
    with folder_lock(out_dir, "pack-h5"):
        return _pack_locked(in_dir, out_dir, split, **kw)


def _pack_locked(
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

    ``shards`` (K) or ``rows_per_shard`` (N) size the shards (default: one
    shard); with K, exactly K shards of near-equal size; SSPL's sharded train
    layout always holds 14,400 rows a shard (:mod:`avprep.store.shard_plan`). ``ids`` is a list of clip ids, or
    an id list in any form :func:`avprep.recipes.clip_ids` reads (a file in
    any list format, or a registry name such as ``sspl/vggss-test-4692``):
    exactly those clips, in that order. ``audio``: ``flac`` (lossless, the
    default) or ``pcm`` (int16) in native shards. ``compression``: the
    lossless HDF5 filter on native PCM audio, spectrograms and flow (default
    ``gzip``: about 20 % off a log-mel spectrogram for ~16 us more per read;
    ``none`` for the SSPL layout, which has none). ``jobs`` writer
    processes (default: one per shard, at most the CPU count). ``test``
    forces SSPL's train/test variant (default: a split named ``test*`` is a
    test split). ``id_list`` overrides the SSPL id csv's name.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    if frames not in FRAME_MODES:
        raise ConfigError(f"unknown frame mode {frames!r}; valid: {', '.join(FRAME_MODES)}")
    if audio not in native.AUDIO_ENCODINGS:
        raise ConfigError(
            f"unknown audio encoding {audio!r}; valid: {', '.join(native.AUDIO_ENCODINGS)}"
        )
    if layout == "sspl" and compression not in (None, "none"):
        raise ConfigError("--compression applies to the native layout only")
    if compression is None:
        compression = "gzip" if layout == "native" else "none"
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
    if layout == "sspl" and (frames != "jpeg" or compression != "none" or audio != "flac"):
        raise ConfigError("--frames/--audio/--compression apply to the native layout only")
    out = Path(out_dir)
    in_path = Path(in_dir)
    if out.resolve() == in_path.resolve():
        raise ConfigError("--out must be another folder than --in")

    ids_file = None
    if ids is not None and not isinstance(ids, (list, tuple)):
        ids, ids_file = read_ids(ids)
    sel, mods = select(in_dir, ids=ids, modalities=modalities, progress=progress)
    variant = sspl.variant_of(split, test)
    spec = None
    if sel.clips and layout == "native":
        spec = _native_spec(sel, mods, frames, compression, audio)
    elif sel.clips:
        _check_sspl(sel, mods)
    n = len(sel.clips)
    if n == 0:
        reasons = "; ".join(f"{c}: {w}" for c, w in sel.skipped[:3])
        raise StoreError(
            f"nothing to pack from {in_dir}: no usable clip"
            + (f" ({len(sel.skipped)} skipped, e.g. {reasons})" if sel.skipped else "")
            + (f"; {len(sel.missing)} listed id(s) not extracted" if sel.missing else "")
        )

    bounds = shard_bounds(
        n, shards=shards, rows_per_shard=rows_per_shard, layout=layout, variant=variant
    )
    num = len(bounds)
    rps = max(rows for _, rows in bounds)
    if layout == "sspl":
        m = re.fullmatch(r"(\d+)k", split)
        if m and n != int(m.group(1)) * 1000:
            log.warning(
                "split %r has %d rows; SSPL's loader expects exactly %d (its --num_train)",
                split, n, int(m.group(1)) * 1000,
            )  # fmt: skip

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
    removed = cleanup_temps(out)
    if removed:
        log.info("removed %d temporary file(s) an interrupted run left in %s", removed, out)

    header = sel.header
    params = header.get("profile_params") or {}
    base_attrs: dict[str, Any]
    if layout == "native":
        base_attrs = {
            "format": NATIVE_FORMAT,
            "format_version": native.NATIVE_FORMAT_VERSION,
            "avprep_version": __version__,
            "split": split,
            "num_shards": num,
            "modalities": json.dumps(list(mods)),
            "frames": frames if "frame" in mods else "",
            "audio_encoding": audio if "audio" in mods else "",
            "compression": compression,
            "sample_rate": int(spec.sample_rate or 0),
            "audio_length": int(spec.audio_length or 0),
            "spectrogram_name": spec.spectrogram_name or "",
            "profile": str(header.get("profile") or ""),
            "profile_params": json.dumps(params, sort_keys=True, default=str),
            "source_manifest_sha256": sel.manifest_sha256,
        }
        plan_key = "plan_sha256"
    else:
        base_attrs = {
            "avprep_format": SSPL_FORMAT,
            "avprep_version": __version__,
            "avprep_split": split,
            "avprep_variant": variant,
            "avprep_profile": str(header.get("profile") or ""),
            "avprep_profile_params": json.dumps(params, sort_keys=True, default=str),
            "avprep_source_manifest_sha256": sel.manifest_sha256,
        }
        plan_key = "avprep_plan_sha256"

    jobs = jobs if jobs is not None else max(1, min(num, os.cpu_count() or 1))
    row_progress = progress and (backend == "serial" or jobs <= 1 or num == 1)
    tasks: list[ShardTask] = []
    for k, (start, count) in enumerate(bounds):
        clips = sel.clips[start : start + count]
        if layout == "native":
            files = {"shard": native.shard_name(split, k, num)}
            attrs = {**base_attrs, "shard": k, "row_start": start, "rows": len(clips)}
        else:
            files = sspl.file_names(
                split, variant, k, num, sharded=sspl_sharded(shards, rows_per_shard, variant)
            )
            attrs = {**base_attrs, "avprep_shard": k + 1, "avprep_num_shards": num,
                     "avprep_row_start": start}  # fmt: skip
        attrs[plan_key] = _plan_hash(attrs, [c.clip_id for c in clips])
        name = next(iter(files.values()))
        tasks.append(ShardTask(name, k, start, clips, files, attrs, plan_key, row_progress))

    if layout == "native":
        pattern = re.compile(re.escape(split) + r"-\d{5}-of-\d{5}\.h5")
    elif variant == "test":
        pattern = re.compile(r"h5py_test_(frames|audios|spects)(_\d+)?\.h5")
    else:
        pattern = re.compile(
            r"h5py_train_(frames|audios|spects)_" + re.escape(split) + r"(_\d+)?\.h5"
        )
    _remove_stale(out, pattern, {name for t in tasks for name in t.files.values()})

    writer = _ShardWriter(out, layout, spec, variant)
    results: dict[str, ClipRecord] = {}
    for rec in map_clips(
        writer, tasks, jobs=jobs, backend=backend, scheduler=scheduler, desc="shards",
        key=_task_name, progress=progress, unit="shard",
    ):  # fmt: skip
        results[rec.clip_id] = rec
    failed = [(t.name, results[t.name].error) for t in tasks if not results[t.name].ok]
    if failed:
        detail = "; ".join(f"{name}: {err}" for name, err in failed[:3])
        raise StoreError(
            f"{len(failed)} of {num} shard(s) failed ({detail}). Finished shards are kept: "
            "fix the cause and rerun the same command to resume"
        )

    entries = []
    total_bytes = 0
    for t in tasks:
        files = results[t.name].meta["files"]
        main = files[t.name]
        total_bytes += sum(f["bytes"] for f in files.values())
        entries.append(
            ShardEntry(
                file=t.name,
                row_start=t.row_start,
                rows=len(t.clips),
                bytes=main["bytes"],
                sha256=main["sha256"],
                files=files if layout == "sspl" else {},
            )
        )
    row_ids = [c.clip_id for c in sel.clips]
    id_list_file = None
    if layout == "sspl":
        id_list_file = id_list or sspl.id_list_name(split, variant, row_ids, ids_file)
        if "/" in id_list_file or id_list_file.startswith("."):
            raise ConfigError(f"--id-list must be a plain file name, not {id_list_file!r}")
        sspl.write_id_list(out / id_list_file, row_ids)
    vds = None
    if virtual and layout == "native":
        vds = split + VIRTUAL_SUFFIX
        native.write_virtual(out, vds, [e.file for e in entries], [e.rows for e in entries])
    index_attrs = {k: v for k, v in base_attrs.items()}
    if layout == "native":
        index_attrs["modalities"] = list(mods)
        index_attrs["profile_params"] = params
    index = StoreIndex(
        layout=layout,
        split=split,
        rows=n,
        rows_per_shard=rps,
        shards=entries,
        attrs=index_attrs,
        skipped=[{"clip_id": c, "reason": r} for c, r in sel.skipped],
        missing=list(sel.missing),
        id_list=id_list_file,
        virtual=vds,
        format=NATIVE_FORMAT if layout == "native" else SSPL_FORMAT,
        format_version=native.NATIVE_FORMAT_VERSION if layout == "native" else FORMAT_VERSION,
    )
    index.write(out)
    for name in (INDEX_NAME, id_list_file, vds):
        if name:
            os.chmod(out / name, _file_mode())
    written = [t.name for t in tasks if not results[t.name].meta["reused"]]
    reused = [t.name for t in tasks if results[t.name].meta["reused"]]
    return PackResult(
        out=out,
        layout=layout,
        split=split,
        rows=n,
        rows_per_shard=rps,
        shards=[t.name for t in tasks],
        written=written,
        reused=reused,
        skipped=list(sel.skipped),
        missing=list(sel.missing),
        duplicates=list(sel.duplicates),
        bytes=total_bytes,
        index=index,
    )


def _task_name(task: ShardTask) -> str:
    return task.name
