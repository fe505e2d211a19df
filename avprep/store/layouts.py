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
methods): which dataset opens them (:func:`avprep.store.open_dataset`), how
``avprep verify`` checks a shard and where it finds the clip ids, what
extraction a store records and how an extracted clip's files become the
sample its reader gives (``avmodels localize``). No reader, checker or
localizer branches on a layout's name.

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


class Layout(Protocol):
    """One packed split's files: the contract between the driver and a writer."""

    name: ClassVar[str]  # the --layout name (the key in LAYOUTS and index.json's "layout")
    format: ClassVar[str]  # index.json's "format"
    format_version: ClassVar[int]
    plan_key: ClassVar[str]  # the shard attribute holding the plan hash (a rerun's "done" test)
    content_checks: ClassVar[tuple[str, ...]]  # what verify's content check covers (its report)
    ids_in_id_list: ClassVar[bool]  # the clip ids live in the id list beside the shards
    opts: PackOptions

    # -- the read side ---------------------------------------------------------------
    @classmethod
    def open_dataset(cls, path: Path, index: StoreIndex, **kw: Any) -> Any:
        """The dataset that reads the store at ``path`` (``index``: its index.json)."""

    @classmethod
    def stored_modalities(cls, index: StoreIndex) -> tuple[str, ...]:
        """The modalities a store holds, from its index alone (no shard opened)."""

    @classmethod
    def verify_variant(cls, index: StoreIndex) -> str:
        """The variant (``train``/``test``) whose datasets verify's shard check reads."""

    @classmethod
    def check_shard(cls, folder: Path, entry: ShardEntry, variant: str, content: bool,
                    problems: list[str]) -> list[str]:  # fmt: skip
        """verify's check of one shard's files (problems appended); the clip ids it read."""

    @classmethod
    def recorded_extraction(cls, ds: Any) -> dict[str, Any]:
        """``{"layout", "profile", "params"}`` an opened dataset records (params None: unknown)."""

    @classmethod
    def extracted_frame(cls, path: Path) -> Any:
        """An extracted frame file as this layout's reader gives the frame (RGB uint8)."""

    @classmethod
    def stored_audio(cls, audio: Any) -> Any:
        """Extracted float32 audio as this layout stores it."""

    @classmethod
    def stored_array(cls, arr: Any) -> Any:
        """An extracted spectrogram/flow array as this layout stores it (before float32)."""

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
class NativeLayout:
    """avprep's native shards: ``<split>-KKKKK-of-NNNNN.h5``, optionally ``<split>.vds.h5``."""

    name: ClassVar[str] = "native"
    format: ClassVar[str] = NATIVE_FORMAT
    format_version: ClassVar[int] = native.NATIVE_FORMAT_VERSION
    plan_key: ClassVar[str] = "plan_sha256"
    content_checks: ClassVar[tuple[str, ...]] = ("frames decodable", "audio decodable")
    ids_in_id_list: ClassVar[bool] = False

    opts: PackOptions
    spec: native.NativeSpec | None = None  # set by prepare()

    @classmethod
    def open_dataset(cls, path: Path, index: StoreIndex, **kw: Any) -> Any:
        from avprep.store.reader import ShardDataset

        return ShardDataset(path, **kw)

    @classmethod
    def stored_modalities(cls, index: StoreIndex) -> tuple[str, ...]:
        mods = index.attrs.get("modalities") or ()
        return tuple(json.loads(mods) if isinstance(mods, str) else mods)

    @classmethod
    def verify_variant(cls, index: StoreIndex) -> str:
        return "train"

    @classmethod
    def check_shard(cls, folder: Path, entry: ShardEntry, variant: str, content: bool,
                    problems: list[str]) -> list[str]:  # fmt: skip
        from avprep.store.verify import check_native_shard

        return check_native_shard(folder, entry, content, problems)

    @classmethod
    def recorded_extraction(cls, ds: Any) -> dict[str, Any]:
        return _shard_extraction(cls.name, getattr(ds, "attrs", None) or {})

    @classmethod
    def extracted_frame(cls, path: Path) -> Any:
        return native.decode_jpeg(path.read_bytes())

    @classmethod
    def stored_audio(cls, audio: Any) -> Any:
        return audio

    @classmethod
    def stored_array(cls, arr: Any) -> Any:
        import numpy as np

        return arr.astype(np.float16)  # what a native shard stores

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
class SsplLayout:
    """SSPL's files: ``h5py_{train,test}_{frames,audios,spects}[_<split>][_<k>].h5`` + id csv."""

    name: ClassVar[str] = "sspl"
    format: ClassVar[str] = SSPL_FORMAT
    format_version: ClassVar[int] = FORMAT_VERSION
    plan_key: ClassVar[str] = "avprep_plan_sha256"
    content_checks: ClassVar[tuple[str, ...]] = ("frames 0-255",)
    ids_in_id_list: ClassVar[bool] = True

    opts: PackOptions
    variant: str = ""  # "train" or "test" (set from the options)

    @classmethod
    def open_dataset(cls, path: Path, index: StoreIndex, **kw: Any) -> Any:
        from avprep.store.reader import SSPLDataset

        kw.setdefault("split", index.split)
        return SSPLDataset(path, **kw)

    @classmethod
    def stored_modalities(cls, index: StoreIndex) -> tuple[str, ...]:
        return ("frame", "audio", "spectrogram")  # SSPL's three files

    @classmethod
    def verify_variant(cls, index: StoreIndex) -> str:
        first = index.shards[0].file if index.shards else ""
        return "test" if first.startswith("h5py_test") else "train"

    @classmethod
    def check_shard(cls, folder: Path, entry: ShardEntry, variant: str, content: bool,
                    problems: list[str]) -> list[str]:  # fmt: skip
        from avprep.store.verify import check_sspl_shard

        check_sspl_shard(folder, entry, variant, content, problems)
        return []  # the ids are in the id list (ids_in_id_list)

    @classmethod
    def recorded_extraction(cls, ds: Any) -> dict[str, Any]:
        """The profile recorded in index.json's attributes (SSPL's files hold none)."""
        from avprep.store.index import INDEX_NAME, read_index

        name, params = "", None
        root = getattr(ds, "root", None)
        if root is not None and (Path(root) / INDEX_NAME).is_file():
            try:
                index_attrs = read_index(root).attrs or {}
            except StoreError:
                index_attrs = {}
            name = str(index_attrs.get("avprep_profile") or "")
            params = _json_value(index_attrs.get("avprep_profile_params"))
        return {"layout": cls.name, "profile": name, "params": params or None}

    @classmethod
    def extracted_frame(cls, path: Path) -> Any:
        import numpy as np

        return sspl.sspl_frame(path).astype(np.uint8)

    @classmethod
    def stored_audio(cls, audio: Any) -> Any:
        return sspl.normalize_audio(audio)  # SSPL's layout stores it normalised

    @classmethod
    def stored_array(cls, arr: Any) -> Any:
        return arr

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


class AsExtracted:
    """No known layout: an extracted clip's files read as they are (``avmodels localize``)."""

    name: ClassVar[str] = ""

    @classmethod
    def recorded_extraction(cls, ds: Any) -> dict[str, Any]:
        return _shard_extraction(cls.name, getattr(ds, "attrs", None) or {})

    @classmethod
    def extracted_frame(cls, path: Path) -> Any:
        import cv2

        return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    @classmethod
    def stored_audio(cls, audio: Any) -> Any:
        return audio

    @classmethod
    def stored_array(cls, arr: Any) -> Any:
        return arr


def _json_value(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return None
    return value


def _shard_extraction(layout: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """The profile a shard's attributes record (native shards carry it in every file)."""
    params = _json_value(attrs.get("profile_params"))
    return {
        "layout": layout,
        "profile": str(attrs.get("profile") or ""),
        "params": dict(params) if isinstance(params, dict) and params else None,
    }


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
