"""PyTorch datasets over packed stores: avprep's native shards and SSPL's layout.

Both return the same sample dict, so training code does not care which
layout it reads::

    {"clip_id": str, "index": int, "frame": uint8 (H, W, 3) RGB,
     "audio": float32 (T,), "sample_rate": int, "spectrogram": float32,
     "flow": float32 (2, H, W) (native, when stored), "frame_time": float}

Files are opened lazily, once per process, on first access: a dataset made
in the parent and sent to DataLoader workers (fork or spawn) never shares an
HDF5 handle across processes (h5py handles are not fork-safe), and no file
is reopened per sample.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from avprep.errors import StoreError
from avprep.store.batch_dataset import ShardBatchDataset, batch_loader
from avprep.store.batches import Transform, collate, decode_jpeg_batch
from avprep.store.index import INDEX_NAME, read_index
from avprep.store.layouts import NativeLayout, layout_of_index
from avprep.store.shard_dataset import ShardDataset
from avprep.store.sspl_dataset import SSPLDataset

__all__ = [
    "SSPLDataset",
    "ShardBatchDataset",
    "ShardDataset",
    "Transform",
    "batch_loader",
    "collate",
    "decode_jpeg_batch",
    "open_dataset",
]


_SSPL_NAME = re.compile(r"h5py_(train|test)_(frames|audios|spects)(?:_(.+?))?(?:_(\d+))?\.h5")


def open_dataset(path: str | os.PathLike, **kw: Any) -> ShardDataset | SSPLDataset:
    """The right dataset for ``path``: a native store/shard or an SSPL folder/file.

    For an SSPL folder without ``index.json`` pass ``split=``.
    """
    path = Path(path)
    if path.is_dir():
        if (path / INDEX_NAME).is_file():
            idx = read_index(path)
            # an index naming no known layout: ShardDataset says what it holds
            return (layout_of_index(idx) or NativeLayout).open_dataset(path, idx, **kw)
        if "split" in kw:
            return SSPLDataset(path, **kw)
        raise StoreError(f"{path} has no {INDEX_NAME}; for an SSPL folder pass split=")
    m = _SSPL_NAME.fullmatch(path.name)
    if m:
        variant, _, split, _ = m.groups()
        kw.setdefault("split", split or "test")
        kw.setdefault("test", variant == "test")
        return SSPLDataset(path.parent, **kw)
    return ShardDataset(path, **kw)
