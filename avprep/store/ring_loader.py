"""RingLoader: a batch loader whose workers fill a ring of preallocated shared-memory batches.

torch's ``DataLoader`` sends every batch through a fresh shared-memory
segment: the worker allocates it, the kernel zeroes and maps its pages, the
main process maps it again and unmaps it when the batch is freed. For
SSPL-sized samples (a 256x256 RGB frame, 3 s of float32 audio, a
(3, 96, 64) spectrogram: 462 KB) that traffic, not reading, caps a 2-worker
``DataLoader`` at about 2,300 samples/s on a 2-core machine even when the
samples are zeros (``benchmarks/bench_store.py``), below what avprep's
shards can be decoded at.

``RingLoader`` allocates ``slots`` batches once, before the workers start.
A worker takes a task (slot, batch number, keys), reads the rows straight
into that slot's tensors and reports back through a queue; the main process
hands the batch out (a copy by default; with ``copy=False`` views of the slot
that stay valid until the next batch is requested) and gives the slot back.
Batches come out in the batch sampler's order whatever worker finishes
first, so with the same sampler and generator a ``RingLoader`` yields the
same batches as ``torch.utils.data.DataLoader`` with ``default_collate`` (for
a :class:`~avprep.store.ShardDataset`: as :func:`~avprep.store.batch_loader`).

Samples are dicts. Fields that collate to a tensor (arrays, tensors,
numbers) must have the same shape in every sample: they live in the slots;
other fields (clip ids) travel through the queue as lists. A dataset with a
``read_batch(keys, out=...)`` method (``ShardDataset`` has one) decodes rows
directly into the slot; any other map-style dataset is read per sample
(``__getitems__`` when it has one) and copied in.

Workers are started on the first iteration and kept (like
``persistent_workers=True``); they are seeded as torch seeds DataLoader
workers (``base_seed + worker_id`` for ``random``, numpy and torch). A
worker's exception is raised in the main process with the worker's
traceback; a worker that dies is reported, never waited for forever.
"""

from __future__ import annotations

import inspect
import logging
import math
import pickle
import queue
import random
import traceback
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, RandomSampler, SequentialSampler, default_collate

from avprep.errors import ConfigError, StoreError

log = logging.getLogger(__name__)

# How long the main process waits for a result before it checks that the workers live.
_POLL_S = 2.0


class RingLoader:
    """Batches of ``dataset`` read by ``num_workers`` processes into shared-memory slots.

    ``batch_size``/``shuffle``/``drop_last``/``generator`` build the batch
    sampler as ``DataLoader`` does (``RandomSampler(generator=...)`` +
    ``BatchSampler``); or pass any ``batch_sampler`` (an iterable of key
    lists, re-iterated every epoch; its batches must not exceed
    ``batch_size``, or its own ``batch_size`` attribute when that is unset).
    ``probe_key``: a key of ``dataset`` read once in the main process to learn
    the fields' shapes (default 0). ``slots_per_worker`` batches per worker are
    in flight or ready at a time. ``num_workers=0`` reads in the calling
    process (no slots). ``pin_memory`` copies each batch into pinned memory
    when CUDA is available (implies ``copy``).

    Use it as a ``DataLoader``: ``for batch in loader: ...``; ``len(loader)``
    is the number of batches; :meth:`close` (or the end of the process) stops
    the workers.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = None,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
        batch_sampler: Iterable[Sequence[Any]] | None = None,
        num_workers: int = 2,
        slots_per_worker: int = 2,
        copy: bool = True,
        pin_memory: bool = False,
        probe_key: Any = 0,
        multiprocessing_context: str | None = None,
    ) -> None:
        if batch_sampler is None:
            if batch_size is None or batch_size < 1:
                raise ConfigError("RingLoader needs a batch_size >= 1 or a batch_sampler")
            base = (
                RandomSampler(dataset, generator=generator)
                if shuffle
                else SequentialSampler(dataset)
            )
            batch_sampler = BatchSampler(base, batch_size, drop_last)
        elif batch_size is None:
            batch_size = getattr(batch_sampler, "batch_size", None)
            if batch_size is None:
                raise ConfigError(
                    "RingLoader: give batch_size, the largest batch the sampler makes"
                )
        if num_workers < 0 or slots_per_worker < 1:
            raise ConfigError("RingLoader needs num_workers >= 0 and slots_per_worker >= 1")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.batch_sampler = batch_sampler
        self.num_workers = int(num_workers)
        self.num_slots = max(2, self.num_workers * int(slots_per_worker))
        self.pin_memory = bool(pin_memory) and torch.cuda.is_available()
        self.copy = bool(copy) or self.pin_memory
        self.probe_key = probe_key
        self._context = multiprocessing_context
        self._generator = generator
        self._started = False
        self._workers: list[Any] = []
        self._gen = 0  # iteration number: results of an abandoned iteration are discarded
        self._pending: dict[int, tuple[int, int, dict[str, Any]]] = {}
        self._failed: dict[
            int, tuple[int, BaseException | None, str]
        ] = {}  # seq -> a worker's error
        self._outstanding = 0
        self._held: int | None = None

    def __len__(self) -> int:
        return len(self.batch_sampler)  # type: ignore[arg-type]

    # -- workers ---------------------------------------------------------------
    def _draw_seed(self) -> int:
        # what DataLoader draws from its generator when an iteration starts (once, with
        # persistent workers), before the sampler draws: the same generator gives the same
        # batch order as DataLoader's
        return int(torch.empty((), dtype=torch.int64).random_(generator=self._generator))

    def _start(self) -> None:
        self._base_seed = self._draw_seed()
        probe = _read_batch(self.dataset, [self.probe_key], None)
        self._order = list(probe)
        for k, v in probe.items():
            flat = isinstance(v, torch.Tensor) or (
                isinstance(v, list) and all(isinstance(x, (str, bytes)) for x in v)
            )
            if not flat:
                raise ConfigError(
                    f"RingLoader: field {k!r} collates to a {type(v).__name__}; it takes flat "
                    "samples (arrays, numbers, strings): use torch's DataLoader for this dataset"
                )
        self._fields = {
            k: (tuple(v.shape[1:]), v.dtype)
            for k, v in probe.items()
            if isinstance(v, torch.Tensor)
        }
        self._slots = [
            {
                k: torch.empty((self.batch_size, *shape), dtype=dt).share_memory_()
                for k, (shape, dt) in self._fields.items()
            }  # fmt: skip
            for _ in range(self.num_slots)
        ]
        self._free = list(range(self.num_slots))
        close = getattr(self.dataset, "close", None)
        if callable(close):  # files opened by the probe are not carried into the workers
            close()
        ctx = torch.multiprocessing.get_context(self._context)
        self._tasks = ctx.Queue()
        self._results = ctx.Queue()
        for wid in range(self.num_workers):
            p = ctx.Process(
                target=_worker_loop,
                args=(
                    self.dataset,
                    self._slots,
                    self._tasks,
                    self._results,
                    wid,
                    self._base_seed,
                ),  # fmt: skip
                daemon=True,
                name=f"RingLoader-{wid}",
            )
            p.start()
            self._workers.append(p)
        self._started = True

    def close(self) -> None:
        """Stop the workers and free the slots (a later iteration starts them again)."""
        if not self._started:
            return
        self._started = False
        for _ in self._workers:
            try:
                self._tasks.put(None)
            except (OSError, ValueError):
                break
        for p in self._workers:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        for q in (self._tasks, self._results):
            q.cancel_join_thread()  # a dead reader must not keep this process waiting
            q.close()
        self._workers, self._slots = [], []
        self._pending, self._failed, self._outstanding, self._held = {}, {}, 0, None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: nothing left to report to
            pass

    def __enter__(self) -> RingLoader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- iteration -------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.num_workers == 0:
            self._draw_seed()
            for keys in self.batch_sampler:
                yield _read_batch(self.dataset, list(keys), None)
            return
        if not self._started:
            self._start()
        self._reclaim()
        self._gen += 1
        gen = self._gen
        keys_iter = iter(self.batch_sampler)
        sent = done = 0
        exhausted = False

        def refill() -> None:
            nonlocal sent, exhausted
            while self._free and not exhausted:
                keys = next(keys_iter, None)
                if keys is None:
                    exhausted = True
                    break
                keys = list(keys)
                if len(keys) > self.batch_size:
                    raise ConfigError(
                        f"RingLoader: a batch of {len(keys)} keys exceeds batch_size "
                        f"{self.batch_size}"
                    )
                slot = self._free.pop()
                self._tasks.put((gen, sent, slot, keys))
                self._outstanding += 1
                sent += 1

        refill()
        while done < sent:
            while done not in self._pending and done not in self._failed:
                self._receive()
            if done in self._failed:  # in order: every batch before it was handed out
                self._raise(*self._failed.pop(done))
            slot, n, extras = self._pending.pop(done)
            done += 1
            batch = self._assemble(slot, n, extras)
            if self.copy:
                self._free.append(slot)
                refill()
                yield batch
            else:
                self._held = slot
                refill()
                yield batch
                self._held = None
                self._free.append(slot)
                refill()

    def _assemble(self, slot: int, n: int, extras: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k in self._order:
            if k in self._fields:
                t = self._slots[slot][k][:n]
                if self.pin_memory:
                    t = torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t)
                elif self.copy:
                    t = t.clone()
                out[k] = t
            else:
                out[k] = extras[k]
        return out

    def _receive(self) -> None:
        """Take one result off the queue (into ``_pending``), or raise a worker's failure."""
        while True:
            try:
                gen, seq, slot, n, extras, error = self._results.get(timeout=_POLL_S)
                break
            except queue.Empty:
                dead = [p for p in self._workers if not p.is_alive()]
                if dead:
                    codes = ", ".join(f"{d.name} exit code {d.exitcode}" for d in dead)
                    self.close()
                    raise RuntimeError(
                        f"RingLoader worker died ({codes}); killed by the system (out of "
                        "memory?) or crashed in native code"
                    ) from None
        self._outstanding -= 1
        if gen != self._gen:  # a result of an abandoned iteration
            self._free.append(slot)
            return
        if error is not None:  # raised when the batch's turn comes (a later batch may fail first)
            self._free.append(slot)
            self._failed[seq] = (seq, *error)
            return
        self._pending[seq] = (slot, n, extras)

    @staticmethod
    def _raise(seq: int, exc: BaseException | None, text: str) -> None:
        if exc is not None:
            raise exc from RuntimeError(f"in RingLoader worker:\n{text}")
        raise RuntimeError(f"RingLoader worker failed on batch {seq}:\n{text}")

    def _reclaim(self) -> None:
        """Give back every slot an earlier, abandoned iteration still holds or awaits."""
        if self._held is not None:
            self._free.append(self._held)
            self._held = None
        for slot, _, _ in self._pending.values():
            self._free.append(slot)
        self._pending, self._failed = {}, {}
        while self._outstanding:
            self._gen += 1  # whatever arrives now belongs to no iteration
            self._receive()


# -- reading (runs in the workers, and once in the main process to probe) -------
def _read_batch(dataset: Any, keys: list[Any], out: dict[str, torch.Tensor] | None) -> dict:
    """The collated batch of ``keys``; tensor fields written into ``out`` when given."""
    read = getattr(dataset, "read_batch", None)
    if read is not None and "out" in inspect.signature(read).parameters:
        batch = read(keys, out=out)
    elif out is None:
        batch = default_collate(_samples(dataset, keys))
    else:
        return _collate_into(_samples(dataset, keys), out)
    if out is not None:
        for k, t in out.items():
            v = batch.get(k)
            if not isinstance(v, torch.Tensor):
                raise StoreError(f"field {k!r} is not a tensor in this batch (sizes differ?)")
            if v.data_ptr() != t.data_ptr():
                _check_shape(k, v, t)
                t[: len(v)].copy_(v)
                batch[k] = t[: len(v)]
    return batch


def _samples(dataset: Any, keys: list[Any]) -> list[Any]:
    getitems = getattr(dataset, "__getitems__", None)
    return list(getitems(keys)) if getitems is not None else [dataset[k] for k in keys]


def _collate_into(samples: list[dict[str, Any]], out: dict[str, torch.Tensor]) -> dict[str, Any]:
    """``default_collate(samples)`` with the tensor fields written row by row into ``out``."""
    n = len(samples)
    batch: dict[str, Any] = {}
    for k in samples[0]:
        if k in out:
            dst = out[k][:n]
            for j, s in enumerate(samples):
                v = torch.as_tensor(s[k])
                if tuple(v.shape) != tuple(dst.shape[1:]):
                    raise StoreError(
                        f"field {k!r} has shape {tuple(v.shape)} in one sample, "
                        f"{tuple(dst.shape[1:])} in the first: RingLoader needs fixed shapes"
                    )
                dst[j].copy_(v)
            batch[k] = dst
        else:
            batch[k] = [s[k] for s in samples]
    return batch


def _check_shape(name: str, value: torch.Tensor, slot: torch.Tensor) -> None:
    if tuple(value.shape[1:]) != tuple(slot.shape[1:]) or len(value) > len(slot):
        raise StoreError(
            f"field {name!r} has batch shape {tuple(value.shape)}; the loader's slots hold "
            f"{tuple(slot.shape)} (RingLoader needs the same shape in every sample)"
        )


def _worker_loop(
    dataset: Any,
    slots: list[dict[str, torch.Tensor]],
    tasks: Any,
    results: Any,
    worker_id: int,
    base_seed: int,
) -> None:
    torch.set_num_threads(1)
    seed = base_seed + worker_id
    random.seed(seed)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    while True:
        try:
            task = tasks.get()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if task is None:
            return
        gen, seq, slot, keys = task
        try:
            batch = _read_batch(dataset, keys, slots[slot])
            extras = {k: v for k, v in batch.items() if k not in slots[slot]}
            results.put((gen, seq, slot, len(keys), extras, None))
        except Exception as exc:  # noqa: BLE001 - every failure goes to the main process
            text = traceback.format_exc()
            try:
                pickle.dumps(exc)
            except Exception:  # noqa: BLE001 - an exception that cannot travel: its text does
                exc = None
            results.put((gen, seq, slot, 0, None, (exc, text)))


def slot_bytes(loader: RingLoader) -> int:
    """Bytes of shared memory the loader's slots take (0 before the first iteration)."""
    if not loader._started:
        return 0
    per = sum(math.prod(shape) * torch.empty((), dtype=dt).element_size()
              for shape, dt in loader._fields.values())  # fmt: skip
    return per * loader.batch_size * loader.num_slots
