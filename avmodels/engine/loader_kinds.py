"""The batch loaders ``train.loader`` names (the registry its choices come from).

- ``auto`` (the default): ``ring`` when the workers hand out finished,
  fixed-shape batches (the batched augmentation with ``train.input=cpu``),
  ``torch`` otherwise (:func:`avmodels.engine.loaders.loader_kind`);
- ``torch``: torch's ``DataLoader``;
- ``ring``: avprep's :class:`~avprep.store.RingLoader`: the same batches, written
  by the workers into reused shared memory (faster when loading is the
  bottleneck; every sample field must be fixed-shape).

:func:`avmodels.engine.loaders.make_loader` resolves ``auto`` and calls the
named kind's ``build``. torch and avprep's store are imported when a loader is
built, so config validation can list the choices without them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from avprep.registry import Registry


@dataclass(frozen=True)
class LoaderKind:
    name: str
    summary: str
    # (dataset, *, batch_size, sampler, num_workers, pin_memory, drop_last) -> batches;
    # None for ``auto``, which names another kind (``loaders.loader_kind``)
    build: Callable[..., Any] | None = None


def _generator() -> Any:
    """The loader's own RNG: creating an iterator must not consume the global one,
    or a resumed run's model randomness would drift from an uninterrupted one."""
    import torch

    return torch.Generator().manual_seed(0)


def torch_loader(dataset, *, batch_size, sampler, num_workers, pin_memory, drop_last) -> Any:  # noqa: ANN001
    """torch's ``DataLoader`` (collating with :func:`~avmodels.engine.loaders.collate_batch`)."""
    from torch.utils.data import DataLoader

    from avmodels.engine.loaders import collate_batch

    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
        collate_fn=collate_batch,
        persistent_workers=num_workers > 0,
        generator=_generator(),
    )


def ring_loader(dataset, *, batch_size, sampler, num_workers, pin_memory, drop_last) -> Any:  # noqa: ANN001
    """avprep's ``RingLoader``: the same batches, written by the workers into reused
    shared memory and handed out as views valid until the next batch (the training
    loop is done with a batch when it asks for the next)."""
    from torch.utils.data import BatchSampler, SequentialSampler

    from avprep.store import RingLoader

    base = sampler if sampler is not None else SequentialSampler(dataset)
    return RingLoader(
        dataset,
        batch_size,
        batch_sampler=BatchSampler(base, batch_size, drop_last),
        num_workers=num_workers,
        pin_memory=pin_memory,
        copy=False,
        probe_key=next(iter(base), 0),
        generator=_generator(),
    )


LOADERS: Registry[LoaderKind] = Registry("loader (train.loader)")
LOADERS.add("auto", LoaderKind("auto", "ring for finished batches (augment=batch, input=cpu)"))
LOADERS.add("torch", LoaderKind("torch", "torch's DataLoader", torch_loader))
LOADERS.add(
    "ring", LoaderKind("ring", "avprep's RingLoader: batches in reused shared memory", ring_loader)
)
