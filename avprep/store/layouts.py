"""Pack layouts: what ``avprep pack-h5`` writes, as objects.

A layout says everything about the files of one packed split that is not
the packing itself: which clips it can hold, how the rows are cut into
shards, each shard's file names and attributes, how one shard is written,
what goes beside the shards (an id list, a virtual file) and which
attributes the index keeps. The driver (:mod:`avprep.store.pack`) selects the
clips, plans the shards, runs the writers in parallel and writes the index;
it asks the layout and never branches on its name.

- :class:`NativeLayout`: avprep's own shards (:mod:`avprep.store.native`);
- :class:`SsplLayout`: SSPL's ``h5py_*`` files, as its loader reads them
  (:mod:`avprep.store.sspl`).

The layout also says how its stores are read back (the read side, class
methods inherited from :mod:`avprep.store.layout_reading`): which dataset
opens them, which modalities they hold, how ``avprep verify`` checks a shard,
what extraction a store records and how an extracted clip becomes a sample.

``LAYOUTS`` is the registry (``--layout`` offers its names). A layout object
is built for one pack from its :class:`PackOptions`, prepared on the split's
selection, then sent to the writer processes: it must stay picklable.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

from avprep import __version__
from avprep.errors import ConfigError, StoreError
from avprep.store import native, sspl
from avprep.store.index import (
    FORMAT_VERSION,
    NATIVE_FORMAT,
    SSPL_FORMAT,
    ShardEntry,
    StoreIndex,
)
from avprep.store.layout_reading import (
    AsExtracted,
    LayoutReading,
    NativeReading,
    SsplReading,
)
from avprep.store.shard_plan import shard_bounds, sspl_num_train_note, sspl_sharded
from avprep.store.source import Clip, Selection, most_common

log = logging.getLogger(__name__)

VIRTUAL_SUFFIX = ".vds.h5"


@dataclasses.dataclass(frozen=True)
class PackOptions:
    """The options of one pack that a layout reads (checked by the driver first)."""

    split: str
    frames: str = "jpeg"
    audio: str = "flac"
    compression: str = "none"
    shards: int | None = None
    rows_per_shard: int | None = None
    test: bool | None = None
    virtual: bool = False
    id_list: str | None = None
    ids_file: str | None = None  # the --ids list's file name, when it was a file


class Layout(LayoutReading, Protocol):
    """One packed split's files: the contract between the driver and a writer.

    The read side (``name``, ``format``, how a store is read back) is
    :class:`avprep.store.layout_reading.LayoutReading`.
    """

    format_version: ClassVar[int]
    plan_key: ClassVar[str]  # the shard attribute holding the plan hash (a rerun's "done" test)
    opts: PackOptions

    @classmethod
    def resolve_compression(cls, compression: str | None) -> str:
        """The HDF5 filter to use when ``--compression`` is ``compression`` (None: default)."""

    @classmethod
    def check_options(cls, opts: PackOptions) -> None:
        """Refuse options this layout cannot honour (a :class:`ConfigError`)."""

    @classmethod
    def summary_notes(cls, index: StoreIndex) -> list[str]:
        """Extra lines for the pack summary (what to set in the original's code, ...)."""

    def prepare(self, sel: Selection, modalities: tuple[str, ...]) -> None:
        """Check the split's clips against the layout; skip (with a reason) those it cannot hold."""

    def shard_bounds(self, n: int) -> list[tuple[int, int]]:
        """``(row_start, rows)`` per shard for ``n`` rows."""

    def base_attrs(
        self, num_shards: int, modalities: tuple[str, ...], sel: Selection
    ) -> dict[str, Any]:
        """Attributes every shard file carries (and the index, see :meth:`index_attrs`)."""

    def shard_files(self, k: int, num_shards: int) -> dict[str, str]:
        """Role -> file name of shard ``k`` (0-based); the first is the shard's main file."""

    def shard_attrs(
        self, base: dict[str, Any], k: int, row_start: int, rows: int, num_shards: int
    ) -> dict[str, Any]:
        """``base`` plus shard ``k``'s own attributes (the plan hash is added by the driver)."""

    def stale_pattern(self) -> re.Pattern:
        """File names of this split's shards, to remove those an earlier plan left."""

    def estimate_bytes(self, clips: Sequence[Clip]) -> int:
        """An upper bound of the bytes one shard of ``clips`` takes (checked against free space)."""

    def write_shard(
        self, tmps: dict[str, Path], clips: Sequence[Clip], attrs: dict[str, Any], progress: bool
    ) -> None:
        """Write one shard's files at the temporary paths ``tmps`` (role -> path)."""

    def index_files(self, files: dict[str, dict]) -> dict[str, dict]:
        """What the index lists of one shard's files (bytes and sha256 by name)."""

    def write_extras(
        self, out: Path, entries: Sequence[ShardEntry], row_ids: Sequence[str]
    ) -> tuple[str | None, str | None]:
        """Write the files beside the shards; ``(id list name, virtual file name)``."""

    def index_attrs(
        self, base: dict[str, Any], modalities: tuple[str, ...], params: dict[str, Any]
    ) -> dict[str, Any]:
        """The attributes ``index.json`` keeps (from the shards' ``base``)."""


def _profile_attrs(sel: Selection) -> tuple[str, str]:
    """The extraction's profile name and its parameters as canonical JSON."""
    header = sel.header
    params = header.get("profile_params") or {}
    return str(header.get("profile") or ""), json.dumps(params, sort_keys=True, default=str)


@dataclasses.dataclass
class NativeLayout(NativeReading):
    """avprep's native shards: ``<split>-KKKKK-of-NNNNN.h5``, optionally ``<split>.vds.h5``."""

    name: ClassVar[str] = "native"
    format: ClassVar[str] = NATIVE_FORMAT
    format_version: ClassVar[int] = native.NATIVE_FORMAT_VERSION
    plan_key: ClassVar[str] = "plan_sha256"

    opts: PackOptions
    spec: native.NativeSpec | None = None  # set by prepare()

    @classmethod
    def resolve_compression(cls, compression: str | None) -> str:
        return "gzip" if compression is None else compression

    @classmethod
    def check_options(cls, opts: PackOptions) -> None:
        return None

    @classmethod
    def summary_notes(cls, index: StoreIndex) -> list[str]:
        return []

    def prepare(self, sel: Selection, modalities: tuple[str, ...]) -> None:
        self.spec = _native_spec(sel, modalities, self.opts)

    def shard_bounds(self, n: int) -> list[tuple[int, int]]:
        o = self.opts  # native shards have no train/test variant
        return shard_bounds(
            n, shards=o.shards, rows_per_shard=o.rows_per_shard, layout=self.name, variant=""
        )

    def base_attrs(
        self, num_shards: int, modalities: tuple[str, ...], sel: Selection
    ) -> dict[str, Any]:
        spec, o = self.spec, self.opts
        profile, params = _profile_attrs(sel)
        return {
            "format": NATIVE_FORMAT,
            "format_version": native.NATIVE_FORMAT_VERSION,
            "avprep_version": __version__,
            "split": o.split,
            "num_shards": num_shards,
            "modalities": json.dumps(list(modalities)),
            "frames": o.frames if "frame" in modalities else "",
            "audio_encoding": o.audio if "audio" in modalities else "",
            "compression": o.compression,
            "sample_rate": int(spec.sample_rate or 0),
            "audio_length": int(spec.audio_length or 0),
            "spectrogram_name": spec.spectrogram_name or "",
            "profile": profile,
            "profile_params": params,
            "source_manifest_sha256": sel.manifest_sha256,
        }

    def shard_files(self, k: int, num_shards: int) -> dict[str, str]:
        return {"shard": native.shard_name(self.opts.split, k, num_shards)}

    def shard_attrs(
        self, base: dict[str, Any], k: int, row_start: int, rows: int, num_shards: int
    ) -> dict[str, Any]:
        return {**base, "shard": k, "row_start": row_start, "rows": rows}

    def stale_pattern(self) -> re.Pattern:
        return re.compile(re.escape(self.opts.split) + r"-\d{5}-of-\d{5}\.h5")

    def estimate_bytes(self, clips: Sequence[Clip]) -> int:
        return native.estimate_shard_bytes(clips, self.spec)

    def write_shard(
        self, tmps: dict[str, Path], clips: Sequence[Clip], attrs: dict[str, Any], progress: bool
    ) -> None:
        native.write_shard(tmps["shard"], clips, self.spec, attrs, progress=progress)

    def index_files(self, files: dict[str, dict]) -> dict[str, dict]:
        return {}  # one file a shard: its entry's bytes and sha256 say it all

    def write_extras(
        self, out: Path, entries: Sequence[ShardEntry], row_ids: Sequence[str]
    ) -> tuple[str | None, str | None]:
        if not self.opts.virtual:
            return None, None
        vds = self.opts.split + VIRTUAL_SUFFIX
        native.write_virtual(out, vds, [e.file for e in entries], [e.rows for e in entries])
        return None, vds

    def index_attrs(
        self, base: dict[str, Any], modalities: tuple[str, ...], params: dict[str, Any]
    ) -> dict[str, Any]:
        return {**base, "modalities": list(modalities), "profile_params": params}


def _native_spec(
    sel: Selection, modalities: tuple[str, ...], opts: PackOptions
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
    if "frame" in modalities and opts.frames == "raw":
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
        frames=opts.frames,
        frame_shape=frame_shape,
        sample_rate=sample_rate,
        audio_length=audio_length,
        spectrogram_shape=spect,
        spectrogram_name=sel.spectrogram_name,
        flow_shape=flow,
        compression=opts.compression,
        audio=opts.audio,
    )


@dataclasses.dataclass
class SsplLayout(SsplReading):
    """SSPL's files: ``h5py_{train,test}_{frames,audios,spects}[_<split>][_<k>].h5`` + id csv."""

    name: ClassVar[str] = "sspl"
    format: ClassVar[str] = SSPL_FORMAT
    format_version: ClassVar[int] = FORMAT_VERSION
    plan_key: ClassVar[str] = "avprep_plan_sha256"

    opts: PackOptions
    variant: str = ""  # "train" or "test" (set from the options)

    def __post_init__(self) -> None:
        self.variant = sspl.variant_of(self.opts.split, self.opts.test)

    @classmethod
    def resolve_compression(cls, compression: str | None) -> str:
        if compression not in (None, "none"):
            raise ConfigError("--compression applies to the native layout only")
        return "none"

    @classmethod
    def check_options(cls, opts: PackOptions) -> None:
        if opts.frames != "jpeg" or opts.compression != "none" or opts.audio != "flac":
            raise ConfigError("--frames/--audio/--compression apply to the native layout only")

    @classmethod
    def summary_notes(cls, index: StoreIndex) -> list[str]:
        if index.attrs.get("avprep_variant") != "train":
            return []
        return [sspl_num_train_note(index.rows)]

    def prepare(self, sel: Selection, modalities: tuple[str, ...]) -> None:
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

    def shard_bounds(self, n: int) -> list[tuple[int, int]]:
        o = self.opts
        bounds = shard_bounds(
            n, shards=o.shards, rows_per_shard=o.rows_per_shard, layout=self.name,
            variant=self.variant,
        )  # fmt: skip
        m = re.fullmatch(r"(\d+)k", o.split)
        if m and n != int(m.group(1)) * 1000:
            log.warning(
                "split %r has %d rows; SSPL's loader expects exactly %d (its --num_train)",
                o.split, n, int(m.group(1)) * 1000,
            )  # fmt: skip
        return bounds

    def base_attrs(
        self, num_shards: int, modalities: tuple[str, ...], sel: Selection
    ) -> dict[str, Any]:
        profile, params = _profile_attrs(sel)
        return {
            "avprep_format": SSPL_FORMAT,
            "avprep_version": __version__,
            "avprep_split": self.opts.split,
            "avprep_variant": self.variant,
            "avprep_profile": profile,
            "avprep_profile_params": params,
            "avprep_source_manifest_sha256": sel.manifest_sha256,
        }

    def shard_files(self, k: int, num_shards: int) -> dict[str, str]:
        o = self.opts
        sharded = sspl_sharded(o.shards, o.rows_per_shard, self.variant)
        return sspl.file_names(o.split, self.variant, k, num_shards, sharded=sharded)

    def shard_attrs(
        self, base: dict[str, Any], k: int, row_start: int, rows: int, num_shards: int
    ) -> dict[str, Any]:
        return {**base, "avprep_shard": k + 1, "avprep_num_shards": num_shards,
                "avprep_row_start": row_start}  # fmt: skip

    def stale_pattern(self) -> re.Pattern:
        if self.variant == "test":
            return re.compile(r"h5py_test_(frames|audios|spects)(_\d+)?\.h5")
        return re.compile(
            r"h5py_train_(frames|audios|spects)_" + re.escape(self.opts.split) + r"(_\d+)?\.h5"
        )

    def estimate_bytes(self, clips: Sequence[Clip]) -> int:
        return sspl.shard_bytes(len(clips))

    def write_shard(
        self, tmps: dict[str, Path], clips: Sequence[Clip], attrs: dict[str, Any], progress: bool
    ) -> None:
        sspl.write_shard(tmps, clips, self.variant, attrs, progress=progress)

    def index_files(self, files: dict[str, dict]) -> dict[str, dict]:
        return files  # three files a shard: the index lists each one's bytes and sha256

    def write_extras(
        self, out: Path, entries: Sequence[ShardEntry], row_ids: Sequence[str]
    ) -> tuple[str | None, str | None]:
        o = self.opts
        name = o.id_list or sspl.id_list_name(o.split, self.variant, row_ids, o.ids_file)
        if "/" in name or name.startswith("."):
            raise ConfigError(f"--id-list must be a plain file name, not {name!r}")
        sspl.write_id_list(out / name, row_ids)
        return name, None

    def index_attrs(
        self, base: dict[str, Any], modalities: tuple[str, ...], params: dict[str, Any]
    ) -> dict[str, Any]:
        return dict(base)


LAYOUTS: dict[str, type[Layout]] = {cls.name: cls for cls in (NativeLayout, SsplLayout)}


def layout_of_index(index: StoreIndex) -> type[Layout] | None:
    """The layout an index.json names (its ``layout``, else its ``format``), or None."""
    if index.layout in LAYOUTS:
        return LAYOUTS[index.layout]
    return next((cls for cls in LAYOUTS.values() if index.format == cls.format), None)


def layout_of_dataset(attrs: dict[str, Any]) -> type[Layout] | type[AsExtracted]:
    """The layout of an opened dataset from its attributes (:class:`AsExtracted` if none)."""
    for cls in LAYOUTS.values():
        if attrs.get("layout") == cls.name or attrs.get("format") == cls.format:
            return cls
    return AsExtracted


def dataset_modalities(ds: Any) -> tuple[str, ...] | None:
    """The modalities an opened dataset holds, by its layout (None: unknown or unrecorded)."""
    attrs = getattr(ds, "attrs", None) or {}
    layout = layout_of_dataset(attrs)
    if layout is AsExtracted:
        return None
    return layout.modalities_in(attrs) or None


def sample_layout(name: str) -> type[Layout] | type[AsExtracted]:
    """The layout by a recorded name (``""``: :class:`AsExtracted`); ConfigError if unknown."""
    return AsExtracted if name == AsExtracted.name else get_layout(name)


def layout_names() -> tuple[str, ...]:
    """The registered layouts' names, in registration order (``--layout``'s choices)."""
    return tuple(LAYOUTS)


def get_layout(name: str) -> type[Layout]:
    """The layout class registered as ``name`` (a :class:`ConfigError` for an unknown one)."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ConfigError(f"unknown layout {name!r}; valid: {', '.join(LAYOUTS)}") from None
