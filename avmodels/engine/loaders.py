"""The training input: the batch loaders the engine builds, and where the input is finished.

- :func:`make_loader` — torch's ``DataLoader`` (``train.loader=torch``) or
  avprep's :class:`~avprep.store.RingLoader` (``ring``) over a dataset; both
  read a batch with one call (``MethodDataset.__getitems__`` /
  ``read_batch``: the stores' batch reads) and give the same batches.
  ``auto`` (the default, :func:`loader_kind`): ``ring`` for a dataset whose
  workers hand out finished, fixed-shape batches (the batched augmentation
  with ``train.input=cpu``), ``torch`` otherwise. Measured on 2 cores
  (BENCHMARKS.md): the ring moves SSPL's two float32 views 2.2x faster than
  torch's fresh shared memory per batch, HTF's 1.6x, SSL-TIE's 1.2x.
- :func:`input_mode` — ``train.input``: ``cpu`` (workers decode and augment;
  the model gets finished tensors) or ``gpu`` (workers hand over JPEG bytes,
  spectrograms and the drawn augmentation parameters; decoding and the batched
  augmentation run on the training device). ``auto``: ``gpu`` on CUDA when
  the method has a batched augmentation and the stores keep JPEG frames.
- :class:`DeviceInput` — iterates a loader and finishes each batch on the
  device; on CUDA the next batch is finished on a side stream while the
  current step runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler, default_collate

from avprep.errors import ConfigError

log = logging.getLogger(__name__)

from avmodels.engine.loader_kinds import LOADERS  # noqa: E402  (train.loader's choices)

INPUTS = ("auto", "cpu", "gpu")


class Collated(dict):
    """A batch the dataset collated itself (see :func:`collate_batch`)."""


def collate_batch(items: Any) -> dict[str, Any]:
    """DataLoader ``collate_fn``: ``default_collate``, or a :class:`Collated` batch as is."""
    if isinstance(items, Collated):
        return dict(items)
    return default_collate(items)


def loader_kind(requested: str | None, dataset: Dataset) -> str:
    """``torch`` or ``ring`` for ``train.loader`` (``auto``: see the module docstring)."""
    requested = requested or "auto"
    LOADERS.get(requested)  # an unknown name: ConfigError listing the registered ones
    if requested != "auto":
        return requested
    finished = getattr(dataset, "batched", None) is not None
    return "ring" if finished and not getattr(dataset, "defer_frames", False) else "torch"


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    sampler: Sampler | None = None,
    num_workers: int = 0,
    pin_memory: bool = False,
    drop_last: bool = False,
    kind: str = "auto",
) -> Any:
    """Batches of ``dataset`` in ``sampler``'s order, from the loader ``kind``
    names in :data:`~avmodels.engine.loader_kinds.LOADERS` (``auto`` resolved by
    :func:`loader_kind`)."""
    build = LOADERS.get(loader_kind(kind, dataset)).build
    return build(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                 pin_memory=pin_memory, drop_last=drop_last)  # fmt: skip


def input_mode(requested: str | None, device: torch.device, augment: str, batched: bool,
               deferrable: bool) -> str:  # fmt: skip
    """``cpu`` or ``gpu`` for ``train.input`` (see the module docstring)."""
    requested = requested or "auto"
    if requested not in INPUTS:
        raise ConfigError(f"train.input {requested!r}; valid: {', '.join(INPUTS)}")
    possible = augment == "batch" and batched and deferrable
    if requested == "auto":
        return "gpu" if device.type == "cuda" and possible else "cpu"
    if requested == "gpu" and not possible:
        why = (
            "train.augment=sample"
            if augment != "batch"
            else "this method has no batched augmentation"
            if not batched
            else "a store holds raw (not JPEG) frames"
        )
        raise ConfigError(f"train.input=gpu is not possible: {why}; use train.input=cpu")
    return requested


class DeviceInput:
    """Iterate ``loader``, finishing each batch with ``finish(batch, device)``.

    On CUDA the finish of batch k+1 is queued on a side stream before batch k
    is handed out, so decoding and augmentation overlap the step; the
    consumer's stream waits for it. Elsewhere batches are finished in turn.
    """

    def __init__(self, loader: Any, finish: Any, device: torch.device) -> None:
        self.loader, self.finish, self.device = loader, finish, device

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.device.type != "cuda":
            for batch in self.loader:
                yield self.finish(batch, self.device)
            return
        side = torch.cuda.Stream(device=self.device)
        it = iter(self.loader)

        def start() -> dict[str, Any] | None:
            raw = next(it, None)
            if raw is None:
                return None
            with torch.cuda.stream(side):
                return self.finish(raw, self.device)

        nxt = start()
        while nxt is not None:
            cur = nxt
            torch.cuda.current_stream(self.device).wait_stream(side)
            for v in cur.values():
                if isinstance(v, torch.Tensor) and v.is_cuda:
                    v.record_stream(torch.cuda.current_stream(self.device))
            nxt = start()
            yield cur
