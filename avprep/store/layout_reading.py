"""How a packed store is read back, per layout: the read side of :mod:`avprep.store.layouts`.

Each layout (:class:`avprep.store.layouts.NativeLayout`, ``SsplLayout``) says
how its stores are read back, in class methods it inherits from here: which
dataset opens them (:func:`avprep.store.open_dataset`), which modalities they
hold, how ``avprep verify`` checks a shard and where it finds the clip ids,
what extraction a store records and how an extracted clip's files become the
sample its reader gives (``avmodels localize``). No reader, checker or
localizer branches on a layout's name.

- :class:`LayoutReading`: the read half of the ``Layout`` contract;
- :class:`NativeReading` / :class:`SsplReading`: the two layouts' read sides;
- :class:`AsExtracted`: no known layout, an extracted clip's files as they are.

The registry (``LAYOUTS``) and the look-ups by name, index or dataset stay in
:mod:`avprep.store.layouts`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Protocol

from avprep.errors import StoreError
from avprep.store import native, sspl
from avprep.store.index import ShardEntry, StoreIndex


class LayoutReading(Protocol):
    """How one layout's stores are read back (class methods; no pack state needed)."""

    name: ClassVar[str]  # the --layout name (the key in LAYOUTS and index.json's "layout")
    format: ClassVar[str]  # index.json's "format"
    content_checks: ClassVar[tuple[str, ...]]  # what verify's content check covers (its report)
    ids_in_id_list: ClassVar[bool]  # the clip ids live in the id list beside the shards

    @classmethod
    def open_dataset(cls, path: Path, index: StoreIndex, **kw: Any) -> Any:
        """The dataset that reads the store at ``path`` (``index``: its index.json)."""

    @classmethod
    def stored_modalities(cls, index: StoreIndex) -> tuple[str, ...]:
        """The modalities a store holds, from its index alone (no shard opened)."""

    @classmethod
    def modalities_in(cls, attrs: dict[str, Any]) -> tuple[str, ...]:
        """The modalities a store's attributes (its index's or an opened dataset's) name."""

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


class NativeReading:
    """The read side of avprep's native shards."""

    content_checks: ClassVar[tuple[str, ...]] = ("frames decodable", "audio decodable")
    ids_in_id_list: ClassVar[bool] = False

    @classmethod
    def open_dataset(cls, path: Path, index: StoreIndex, **kw: Any) -> Any:
        from avprep.store.shard_dataset import ShardDataset

        return ShardDataset(path, **kw)

    @classmethod
    def stored_modalities(cls, index: StoreIndex) -> tuple[str, ...]:
        return cls.modalities_in(index.attrs)

    @classmethod
    def modalities_in(cls, attrs: dict[str, Any]) -> tuple[str, ...]:
        mods = attrs.get("modalities") or ()
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


class SsplReading:
    """The read side of SSPL's ``h5py_*`` files (and their id list)."""

    content_checks: ClassVar[tuple[str, ...]] = ("frames 0-255",)
    ids_in_id_list: ClassVar[bool] = True

    @classmethod
    def open_dataset(cls, path: Path, index: StoreIndex, **kw: Any) -> Any:
        from avprep.store.sspl_dataset import SSPLDataset

        kw.setdefault("split", index.split)
        return SSPLDataset(path, **kw)

    @classmethod
    def stored_modalities(cls, index: StoreIndex) -> tuple[str, ...]:
        return cls.modalities_in(index.attrs)

    @classmethod
    def modalities_in(cls, attrs: dict[str, Any]) -> tuple[str, ...]:
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
