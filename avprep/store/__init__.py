"""Sharded HDF5 stores: avprep's native format, SSPL's layout, and readers.

``avprep pack-h5`` writes them (:func:`avprep.store.pack.pack`), ``avprep
verify`` checks them (:func:`avprep.store.verify.verify_store`), and the
PyTorch datasets read them::

    from avprep.store import open_dataset
    ds = open_dataset("shards/train")   # ShardDataset or SSPLDataset
    sample = ds[0]                      # {"clip_id", "frame", "audio", ...}

The readers import torch; they are loaded on first use so that packing and
verifying do not.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "RingLoader",
    "SSPLDataset",
    "ShardBatchDataset",
    "ShardDataset",
    "batch_loader",
    "collate",
    "decode_jpeg_batch",
    "open_dataset",
    "verify_store",
]


def __getattr__(name: str) -> Any:
    if name in ("ShardDataset", "ShardBatchDataset", "SSPLDataset", "open_dataset", "collate",
                "decode_jpeg_batch", "batch_loader"):  # fmt: skip
        from avprep.store import reader

        return getattr(reader, name)
    if name == "RingLoader":
        from avprep.store.ring_loader import RingLoader

        return RingLoader
    if name == "verify_store":
        from avprep.store.verify import verify_store

        return verify_store
    raise AttributeError(f"module 'avprep.store' has no attribute {name!r}")
