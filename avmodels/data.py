"""Datasets the engine trains on: avprep shards -> a method's transformed samples.

- :class:`Sources` concatenates stores (native shards or SSPL's layout,
  opened with :func:`avprep.store.open_dataset`) and keeps clip ids.
- :func:`split_validation` holds out a fraction of clips, chosen by a hash of
  (seed, clip id): the same clips whatever the order or number of shards.
- :class:`MethodDataset` applies the method's ``sample_transform`` with the
  global RNGs seeded per (seed, epoch, row) and restored afterwards, so a
  sample's augmentation does not depend on the worker, the world size or a
  resume; it also adds cached frozen features (:class:`FeatureTable`).
- :class:`EpochSampler` shuffles once per epoch and deals batches to
  processes so that step k of an N-process run sees exactly the global
  batch k of a one-process run with N times the batch size; it can skip the
  batches a resumed run already did.
- :func:`ensure_feature_cache` computes a method's cached features (e.g.
  SSPL's frozen VGGish embeddings) once per clip and weights version and
  stores them beside the shards.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate
from tqdm.auto import tqdm

from avprep.atomic import atomic_path
from avprep.errors import ConfigError, StoreError

log = logging.getLogger(__name__)


# -- sources -------------------------------------------------------------------
class Sources(Dataset):
    """Several store datasets as one; ``ids`` and ``paths`` kept for caches and eval."""

    def __init__(self, datasets: Sequence[Any], paths: Sequence[Path | None] | None = None):
        if not datasets:
            raise ConfigError("no training data given")
        self.datasets = list(datasets)
        self.paths = list(paths) if paths is not None else [None] * len(self.datasets)
        self.ids: list[str] = []
        for ds in self.datasets:
            ids = getattr(ds, "ids", None)
            if ids is None:
                ids = [str(ds[i]["clip_id"]) for i in range(len(ds))]
            self.ids.extend(str(i) for i in ids)
        self.starts = np.cumsum([0, *[len(d) for d in self.datasets]]).tolist()
        self._row_of: dict[str, int] | None = None

    def __len__(self) -> int:
        return self.starts[-1]

    def locate(self, row: int) -> tuple[int, int]:
        k = int(np.searchsorted(self.starts, row, side="right")) - 1
        return k, row - self.starts[k]

    def __getitem__(self, row: int) -> dict[str, Any]:
        k, r = self.locate(row)
        sample = dict(self.datasets[k][r])
        sample["index"] = row
        return sample

    def row_of(self, clip_id: str) -> int:
        if self._row_of is None:
            self._row_of = {c: i for i, c in enumerate(self.ids)}
        return self._row_of[clip_id]


def open_sources(
    paths: Sequence[str | os.PathLike],
    modalities: Sequence[str] | None,
    ids_csv: str | os.PathLike | None = None,
) -> Sources:
    """Open each store path (folder with ``index.json``, shard file, SSPL file/folder).

    ``ids_csv``: the row ids of one SSPL-layout store kept outside its files
    (e.g. the Chaotic World fork's ``ChaoticWorld_test.csv``), one id a line.
    """
    from avprep.store import open_dataset
    from avprep.store.reader import SSPLDataset

    if ids_csv is not None and len(paths) != 1:
        raise ConfigError("an id file names the rows of ONE SSPL-layout store: give one --data")
    datasets, resolved = [], []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise StoreError(f"no store at {path}")
        kw = {"modalities": list(modalities)} if modalities is not None else {}
        ds = open_dataset(path, **kw)
        if ids_csv is not None:
            if not isinstance(ds, SSPLDataset):
                raise ConfigError(
                    f"--ids-from is for SSPL-layout h5 files (ids kept outside); {path} keeps its ids"
                )
            ds.close()
            ds = open_dataset(path, ids_csv=ids_csv, **kw)
        datasets.append(ds)
        resolved.append(path.resolve())
    return Sources(datasets, resolved)


def split_validation(ids: Sequence[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train rows, validation rows): ``fraction`` of the clips, picked by hash of the id."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"validation fraction must be in (0, 1), got {fraction}")
    n = len(ids)
    k = max(1, round(n * fraction))
    if k >= n:
        raise ConfigError(f"validation fraction {fraction} leaves no training clip ({n} clips)")
    score = [hashlib.sha256(f"{seed}:{cid}".encode()).hexdigest() for cid in ids]
    order = sorted(range(n), key=lambda i: score[i])
    val = sorted(order[:k])
    chosen = set(val)
    return [i for i in range(n) if i not in chosen], val


# -- per-sample seeding --------------------------------------------------------
def sample_seed(seed: int, epoch: int, row: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, row]).generate_state(1)[0])


@contextlib.contextmanager
def seeded_rngs(seed: int) -> Iterator[None]:
    """Seed python/numpy/torch-CPU RNGs for a block, then restore their states."""
    py, npst, tst = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed)
    torch.random.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npst)
        torch.set_rng_state(tst)


# -- cached features -----------------------------------------------------------
class FeatureTable:
    """Read-only rows of one cached feature over a :class:`Sources` (lazy, per process)."""

    def __init__(self, name: str, files: Sequence[Path], starts: Sequence[int]) -> None:
        self.name = name
        self.files = [Path(f) for f in files]
        self.starts = list(starts)
        self._pid: int | None = None
        self._open: dict[int, Any] = {}

    def get(self, row: int) -> np.ndarray:
        if self._pid != os.getpid():
            self._open, self._pid = {}, os.getpid()
        k = int(np.searchsorted(self.starts, row, side="right")) - 1
        if k not in self._open:
            self._open[k] = h5py.File(self.files[k], "r")["values"]
        return np.asarray(self._open[k][row - self.starts[k]])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pid": None, "_open": {}}


def _ids_hash(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def cache_file(
    source: Path | None, name: str, version: str, ids: Sequence[str], cache_dir: str | None
) -> Path:
    """Where a cached feature of one source lives (beside it unless ``cache_dir``)."""
    tag = f"{name}-{hashlib.sha256(version.encode()).hexdigest()[:16]}.h5"
    if cache_dir:
        key = str(source) if source is not None else _ids_hash(ids)
        return Path(cache_dir) / f"{hashlib.sha256(key.encode()).hexdigest()[:12]}.{tag}"
    if source is None:
        raise ConfigError("in-memory data: set data.feature_cache_dir to cache features")
    if source.is_dir():
        return source / "features" / tag
    return source.parent / "features" / f"{source.stem}.{tag}"


def _cache_is_valid(path: Path, version: str, ids: Sequence[str]) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return (
                f.attrs.get("version") == version
                and f.attrs.get("ids_sha256") == _ids_hash(ids)
                and f["values"].shape[0] == len(ids)
            )
    except (OSError, KeyError):
        return False


class _Prepared(Dataset):
    def __init__(self, ds: Any, prepare: Any) -> None:
        self.ds, self.prepare = ds, prepare

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.prepare(self.ds[i])


def ensure_feature_cache(
    spec: Any,
    dataset: Any,
    ids: Sequence[str],
    path: Path,
    device: torch.device,
    batch_size: int = 32,
    num_workers: int = 0,
) -> Path:
    """Compute ``spec`` (a :class:`CachedFeature`) for every row of ``dataset`` into ``path``."""
    if _cache_is_valid(path, spec.version, ids):
        return path
    log.info("computing %s for %d clips -> %s", spec.name, len(ids), path)
    loader = DataLoader(
        _Prepared(dataset, spec.prepare),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=default_collate,
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.attrs["version"] = spec.version
            f.attrs["ids_sha256"] = _ids_hash(ids)
            f.attrs["name"] = spec.name
            f.create_dataset("clip_id", data=list(ids), dtype=h5py.string_dtype("utf-8"))
            values = None
            row = 0
            with torch.no_grad():
                # disable=None: no bar when stderr is not a terminal (a log file)
                bar = tqdm(
                    loader, desc=f"cache {spec.name}", unit="batch", leave=False, disable=None
                )
                for batch in bar:
                    batch = {
                        k: v.to(device) if isinstance(v, torch.Tensor) else v
                        for k, v in batch.items()
                    }
                    out = spec.compute(batch).float().cpu().numpy()
                    if values is None:
                        values = f.create_dataset(
                            "values",
                            (len(ids), *out.shape[1:]),
                            dtype=np.float32,
                            chunks=(1, *out.shape[1:]),
                        )
                    values[row : row + len(out)] = out
                    row += len(out)
            if row != len(ids):
                raise StoreError(f"feature cache {path}: wrote {row} rows for {len(ids)} clips")
    except PermissionError as exc:
        raise ConfigError(
            f"cannot write the feature cache {path} ({exc}); set data.feature_cache_dir"
        ) from exc
    return path


def feature_tables(
    specs: Sequence[Any],
    sources: Sources,
    cache_dir: str | None,
    device: torch.device,
    *,
    build: bool = True,
    batch_size: int = 32,
    num_workers: int = 0,
) -> list[FeatureTable]:
    """Cache files of every spec for every source (built when ``build``), as tables."""
    tables = []
    for spec in specs:
        files = []
        for k, ds in enumerate(sources.datasets):
            ids = sources.ids[sources.starts[k] : sources.starts[k + 1]]
            path = cache_file(sources.paths[k], spec.name, spec.version, ids, cache_dir)
            if build:
                src = ds
                inputs = getattr(spec, "inputs", ())
                if sources.paths[k] is not None and inputs:
                    from avprep.store import open_dataset

                    stored = _stored_modalities(ds)
                    wanted = [m for m in inputs if stored is None or m in stored]
                    src = open_dataset(sources.paths[k], modalities=wanted)
                ensure_feature_cache(spec, src, ids, path, device, batch_size, num_workers)
            files.append(path)
        tables.append(FeatureTable(spec.name, files, sources.starts))
    return tables


def _stored_modalities(ds: Any) -> list[str] | None:
    attrs = getattr(ds, "attrs", {}) or {}
    mods = attrs.get("modalities")
    if mods:
        return list(mods)
    if attrs.get("layout") == "sspl":
        return ["frame", "audio", "spectrogram"]
    return None


# -- the method's view of the data ---------------------------------------------
class MethodDataset(Dataset):
    """Rows of ``sources`` (optionally a subset) through a method's sample transform.

    Index with a row position or ``(position, epoch)`` (what
    :class:`EpochSampler` yields): the transform runs with RNGs seeded by
    (seed, epoch, source row).
    """

    def __init__(
        self,
        sources: Sources,
        transform: Any,
        rows: Sequence[int] | None = None,
        seed: int = 0,
        features: Sequence[FeatureTable] = (),
    ) -> None:
        self.sources = sources
        self.transform = transform
        self.rows = list(range(len(sources))) if rows is None else list(rows)
        self.seed = int(seed)
        self.features = list(features)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def ids(self) -> list[str]:
        return [self.sources.ids[r] for r in self.rows]

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        pos, epoch = key if isinstance(key, tuple) else (key, 0)
        row = self.rows[pos]
        sample = self.sources[row]
        for table in self.features:
            sample[table.name] = table.get(row)
        with seeded_rngs(sample_seed(self.seed, epoch, row)):
            out = self.transform(sample)
        out.setdefault("clip_id", str(sample["clip_id"]))
        return out


class EpochSampler(Sampler):
    """Yields ``(position, epoch)``; see the module docstring for the batch dealing."""

    def __init__(
        self,
        n: int,
        *,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = True,
    ) -> None:
        self.n, self.batch_size = n, batch_size
        self.rank, self.world = rank, world_size
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0
        self.skip_batches = 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip_batches = epoch, skip_batches

    def _mine(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        glob = self.batch_size * self.world
        if self.drop_last:
            order = order[: (self.n // glob) * glob]
        elif self.n % self.world:
            order += order[: self.world - self.n % self.world]  # pad as DistributedSampler
        mine = order[self.rank :: self.world]
        return mine[self.skip_batches * self.batch_size :]

    def batches_per_epoch(self) -> int:
        glob = self.batch_size * self.world
        if self.drop_last:
            return self.n // glob
        per_rank = math.ceil(self.n / self.world)
        return math.ceil(per_rank / self.batch_size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for pos in self._mine():
            yield (pos, self.epoch)

    def __len__(self) -> int:
        return len(self._mine())


LOADERS = ("torch", "ring")


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    sampler: Sampler | None = None,
    num_workers: int = 0,
    pin_memory: bool = False,
    drop_last: bool = False,
    kind: str = "torch",
) -> Any:
    """Batches of ``dataset`` (collated with ``default_collate``) in ``sampler``'s order.

    ``kind="ring"`` gives avprep's :class:`~avprep.store.RingLoader`: the same
    batches, written by the workers into reused shared memory and handed out
    as views valid until the next batch (the training loop is done with a
    batch when it asks for the next).
    """
    if kind not in LOADERS:
        raise ConfigError(f"unknown train.loader {kind!r}; valid: {', '.join(LOADERS)}")
    if kind == "ring":
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
            generator=torch.Generator().manual_seed(0),  # as below: not the global RNG
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
        collate_fn=default_collate,
        persistent_workers=num_workers > 0,
        # its own generator: creating an iterator must not consume the global RNG,
        # or a resumed run's model randomness would drift from an uninterrupted one
        generator=torch.Generator().manual_seed(0),
    )
