"""``DIR/index.json``: the table of contents of a packed store.

Written last, after every shard is complete, so its presence means the store
is whole. It lists the shards (file name, first row, row count, bytes,
sha256), the split, the layout (``native`` or ``sspl``), the clips that were
skipped and why, and the ids asked for that the extraction did not have.
Both layouts get one: SSPL's code ignores it; ``avprep verify`` and the
readers use it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from avprep.atomic import write_json
from avprep.errors import StoreError

INDEX_NAME = "index.json"
NATIVE_FORMAT = "avprep-native"
SSPL_FORMAT = "avprep-sspl"
FORMAT_VERSION = 1


@dataclasses.dataclass
class ShardEntry:
    file: str  # a name inside DIR (sspl: the frames file; audios/spects in ``files``)
    row_start: int
    rows: int
    bytes: int
    sha256: str
    files: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class StoreIndex:
    layout: str  # "native" | "sspl"
    split: str
    rows: int
    rows_per_shard: int
    shards: list[ShardEntry]
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)
    skipped: list[dict[str, str]] = dataclasses.field(default_factory=list)
    missing: list[str] = dataclasses.field(default_factory=list)
    id_list: str | None = None  # sspl: the id csv beside the h5 files
    virtual: str | None = None  # native: the optional virtual-dataset file
    format: str = NATIVE_FORMAT
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def write(self, folder: str | os.PathLike) -> Path:
        return write_json(Path(folder) / INDEX_NAME, self.to_dict())

    def all_files(self) -> list[str]:
        """Every data file the index vouches for (sspl: three per shard)."""
        out: list[str] = []
        for s in self.shards:
            out.extend(s.files) if s.files else out.append(s.file)
        return out


def read_index(folder: str | os.PathLike) -> StoreIndex:
    """Load ``folder/index.json``; a missing or malformed index is a StoreError."""
    path = Path(folder) / INDEX_NAME
    if not path.is_file():
        raise StoreError(
            f"{path} not found: not a packed store, or packing did not finish "
            "(rerun `avprep pack-h5` with the same options to resume)"
        )
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        shards = [ShardEntry(**s) for s in d.pop("shards")]
        return StoreIndex(shards=shards, **d)
    except (json.JSONDecodeError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise StoreError(f"{path} is malformed ({exc}); repack the store") from exc
