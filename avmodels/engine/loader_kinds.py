"""The batch loaders ``train.loader`` names (the registry its choices come from).

- ``auto`` (the default): ``ring`` when the workers hand out finished,
  fixed-shape batches (the batched augmentation with ``train.input=cpu``),
  ``torch`` otherwise (:func:`avmodels.engine.loaders.loader_kind`);
- ``torch``: torch's ``DataLoader``;
- ``ring``: avprep's :class:`~avprep.store.RingLoader`: the same batches, written
  by the workers into reused shared memory (faster when loading is the
  bottleneck; every sample field must be fixed-shape).

:func:`avmodels.engine.loaders.make_loader` builds the one named.
"""

from __future__ import annotations

from dataclasses import dataclass

from avprep.registry import Registry


@dataclass(frozen=True)
class LoaderKind:
    name: str
    summary: str


LOADERS: Registry[LoaderKind] = Registry("loader (train.loader)")
LOADERS.add("auto", LoaderKind("auto", "ring for finished batches (augment=batch, input=cpu)"))
LOADERS.add("torch", LoaderKind("torch", "torch's DataLoader"))
LOADERS.add("ring", LoaderKind("ring", "avprep's RingLoader: batches in reused shared memory"))
