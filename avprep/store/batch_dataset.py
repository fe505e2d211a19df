"""Whole-batch loading over a native store: :class:`ShardBatchDataset` (the item for a
list of rows is their collated batch) and :func:`batch_loader` (a DataLoader whose
workers build each batch with :meth:`ShardDataset.read_batch`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from avprep.errors import ConfigError
from avprep.store.shard_dataset import ShardDataset


class ShardBatchDataset(Dataset):
    """Batches of a :class:`ShardDataset`: the item for a list of rows is their collated batch.

    Use it with a batch sampler, so that each worker call builds one whole
    batch with :meth:`ShardDataset.read_batch` (see :func:`batch_loader`)::

        bds = ShardBatchDataset("shards/train", modalities=["frame", "spectrogram"])
        sampler = BatchSampler(RandomSampler(bds), batch_size=128, drop_last=True)
        loader = DataLoader(bds, sampler=sampler, batch_size=None, num_workers=8)
    """

    def __init__(self, dataset: ShardDataset | str | os.PathLike, **kw: Any) -> None:
        if isinstance(dataset, ShardDataset):
            if kw:
                raise ConfigError("pass ShardDataset options with a path, not with a dataset")
            self.dataset = dataset
        else:
            self.dataset = ShardDataset(dataset, **kw)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, rows: Sequence[int]) -> dict[str, Any]:
        if isinstance(rows, (int, np.integer)):
            rows = [int(rows)]
        return self.dataset.read_batch(rows)

    @property
    def ids(self) -> list[str]:
        return self.dataset.ids


def batch_loader(
    dataset: ShardDataset | str | os.PathLike,
    batch_size: int,
    *,
    shuffle: bool = True,
    drop_last: bool = False,
    generator: torch.Generator | None = None,
    **loader_kw: Any,
) -> torch.utils.data.DataLoader:
    """A DataLoader over ``dataset`` whose workers read and collate whole batches.

    Batches hold the same samples, in the same order, as
    ``DataLoader(dataset, batch_size, shuffle=shuffle, generator=generator)``
    with :func:`collate`; ``loader_kw`` go to the DataLoader (``num_workers``,
    ``pin_memory``, ``persistent_workers``, ...).
    """
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

    bds = ShardBatchDataset(dataset)
    base = RandomSampler(bds, generator=generator) if shuffle else SequentialSampler(bds)
    sampler = BatchSampler(base, batch_size, drop_last)
    # the generator seeds the workers too, as DataLoader(..., generator=...) does, so the
    # order matches a plain DataLoader's with the same generator
    return DataLoader(bds, sampler=sampler, batch_size=None, generator=generator, **loader_kw)
