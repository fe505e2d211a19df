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

    def samples(self, rows: Sequence[int]) -> list[dict[str, Any]]:
        """``[self[r] for r in rows]``, read per store with its batch read when it has one."""
        out: list[dict[str, Any] | None] = [None] * len(rows)
        for k, (pos, local) in self._groups(rows).items():
            ds = self.datasets[k]
            getitems = getattr(ds, "__getitems__", None)
            got = getitems(local) if getitems is not None else [ds[r] for r in local]
            for p, r, s in zip(pos, local, got, strict=True):
                out[p] = {**s, "index": self.starts[k] + r}
        return out  # type: ignore[return-value]

    def can_defer_frames(self) -> bool:
        """Whether every store keeps JPEG frames (so workers can hand over the bytes)."""
        return all(
            hasattr(ds, "read_batch") and (getattr(ds, "attrs", {}) or {}).get("frames") != "raw"
            for ds in self.datasets
        )

    def read_batch(self, rows: Sequence[int], decode: bool = True) -> dict[str, Any]:
        """The rows as one collated batch, each store read with its batch read.

        ``frame``: (B, H, W, 3) uint8 decoded straight into one batch buffer (a
        list when sizes differ); with ``decode=False`` the JPEG bytes instead,
        as a list under ``frame_jpeg``. ``index``: rows of these sources.
        """
        from avprep.store.reader import collate

        parts = []
        for k, (pos, local) in self._groups(rows).items():
            ds = self.datasets[k]
            if not decode:
                ds = self._undecoded(k)
            if hasattr(ds, "read_batch"):
                b = dict(ds.read_batch(local))
            else:
                b = collate([ds[r] for r in local])
            b["index"] = torch.as_tensor([self.starts[k] + r for r in local], dtype=torch.int64)
            if not decode:
                b["frame_jpeg"] = [f.numpy().tobytes() for f in b.pop("frame")]
            parts.append((pos, b))
        if len(parts) == 1 and parts[0][0] == list(range(len(rows))):
            return parts[0][1]
        order = [p for pos, _ in parts for p in pos]
        inverse = torch.empty(len(order), dtype=torch.int64)
        inverse[torch.as_tensor(order)] = torch.arange(len(order))
        batch: dict[str, Any] = {}
        for key in parts[0][1]:
            vals = [b[key] for _, b in parts]
            same = all(isinstance(v, torch.Tensor) for v in vals) and (
                len({tuple(v.shape[1:]) for v in vals}) == 1
            )
            if same:
                batch[key] = torch.cat(vals)[inverse]
            else:
                flat = [x for v in vals for x in v]
                batch[key] = [flat[i] for i in inverse.tolist()]
        return batch

    def _groups(self, rows: Sequence[int]) -> dict[int, tuple[list[int], list[int]]]:
        """store -> (batch positions, rows in that store), in first-seen order."""
        groups: dict[int, tuple[list[int], list[int]]] = {}
        for p, row in enumerate(rows):
            k, r = self.locate(int(row))
            g = groups.setdefault(k, ([], []))
            g[0].append(p)
            g[1].append(r)
        return groups

    def _undecoded(self, k: int) -> Any:
        """Store ``k`` opened again with ``decode_jpeg=False`` (cached, per process)."""
        cache = self.__dict__.setdefault("_raw", {})
        if k not in cache:
            from avprep.store import ShardDataset

            ds = self.datasets[k]
            cache[k] = ShardDataset(ds.path, modalities=list(ds.modalities), decode_jpeg=False)
        return cache[k]


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
    progress: bool = True,
) -> Path:
    """Compute ``spec`` (a :class:`CachedFeature`) for every row of ``dataset`` into ``path``.

    ``progress``: a bar on a terminal (``--no-progress`` turns it off; never in a log file).
    """
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
                    loader,
                    desc=f"cache {spec.name}",
                    unit="batch",
                    leave=False,
                    disable=None if progress else True,
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
    progress: bool = True,
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
                    from avprep.store.layouts import dataset_modalities

                    stored = dataset_modalities(ds)
                    wanted = [m for m in inputs if stored is None or m in stored]
                    src = open_dataset(sources.paths[k], modalities=wanted)
                ensure_feature_cache(
                    spec, src, ids, path, device, batch_size, num_workers, progress=progress
                )
            files.append(path)
        tables.append(FeatureTable(spec.name, files, sources.starts))
    return tables


# -- the method's view of the data ---------------------------------------------
AUGMENT = ("batch", "sample")


class MethodDataset(Dataset):
    """Rows of ``sources`` (optionally a subset) through a method's sample transform.

    Index with a row position or ``(position, epoch)`` (what
    :class:`EpochSampler` yields): the transform runs with RNGs seeded by
    (seed, epoch, source row).

    A DataLoader reads whole batches through :meth:`__getitems__` (the
    stores' batch reads). With ``augment="batch"`` and a method that has a
    batched transform (:func:`avmodels.methods.batch_augment.batched`), the
    random parameters are still drawn per sample in the seeded block, but the
    frame pixels are decoded into one batch buffer and augmented as a batch;
    ``defer_frames=True`` leaves them as JPEG bytes plus the drawn parameters
    for :meth:`finish` to complete on the training device (``train.input=gpu``).
    """

    def __init__(
        self,
        sources: Sources,
        transform: Any,
        rows: Sequence[int] | None = None,
        seed: int = 0,
        features: Sequence[FeatureTable] = (),
        augment: str = "sample",
        defer_frames: bool = False,
    ) -> None:
        self.sources = sources
        self.transform = transform
        self.rows = list(range(len(sources))) if rows is None else list(rows)
        self.seed = int(seed)
        self.features = list(features)
        if augment not in AUGMENT:
            raise ConfigError(f"train.augment {augment!r}; valid: {', '.join(AUGMENT)}")
        self.batched = None
        if augment == "batch":
            from avmodels.methods.batch_augment import batched

            self.batched = batched(transform)
        if defer_frames and (self.batched is None or not sources.can_defer_frames()):
            raise ConfigError(
                "train.input=gpu needs train.augment=batch, a method with a batched "
                "augmentation and JPEG frames in every store; use train.input=cpu"
            )
        self.defer_frames = bool(defer_frames)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def ids(self) -> list[str]:
        return [self.sources.ids[r] for r in self.rows]

    def _key(self, key: int | tuple[int, int]) -> tuple[int, int]:
        pos, epoch = key if isinstance(key, tuple) else (key, 0)
        return self.rows[pos], int(epoch)

    def _transformed(self, sample: dict[str, Any], row: int, epoch: int) -> dict[str, Any]:
        for table in self.features:
            sample[table.name] = table.get(row)
        with seeded_rngs(sample_seed(self.seed, epoch, row)):
            out = self.transform(sample)
        out.setdefault("clip_id", str(sample["clip_id"]))
        return out

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        row, epoch = self._key(key)
        return self._transformed(self.sources[row], row, epoch)

    def __getitems__(self, keys: Sequence[Any]) -> Any:
        """A batch: the transformed samples (the per-sample path), or, batched, the
        collated batch itself (``avmodels.engine.loaders.collate_batch`` passes it on).
        A subclass that builds its samples in its own ``__getitem__`` (the audio probes'
        datasets) is read through it, one key at a time."""
        if type(self).__getitem__ is not MethodDataset.__getitem__:
            return [self[k] for k in keys]
        if self.batched is not None:
            from avmodels.engine.loaders import Collated

            return Collated(self.read_batch(keys))
        pairs = [self._key(k) for k in keys]
        raw = self.sources.samples([r for r, _ in pairs])
        return [self._transformed(s, r, e) for s, (r, e) in zip(raw, pairs, strict=True)]

    def read_batch(self, keys: Sequence[Any], out: Any = None) -> dict[str, Any]:
        """The collated batch of ``keys`` (what :class:`~avprep.store.RingLoader` calls;
        the batched augmentation writes its image tensors straight into ``out``, the
        ring's slot, where they fit; the loader copies in the rest)."""
        if self.batched is None or type(self).__getitem__ is not MethodDataset.__getitem__:
            return default_collate(self.__getitems__(keys))
        pairs = [self._key(k) for k in keys]
        rows = [r for r, _ in pairs]
        raw = self.sources.read_batch(rows, decode=not self.defer_frames)
        frames = raw.pop("frame_jpeg", None) if self.defer_frames else raw.pop("frame")
        if self.defer_frames:
            from avmodels.methods.batch_augment import jpeg_size

            sizes = [jpeg_size(f) for f in frames]
        elif isinstance(frames, torch.Tensor):
            sizes = [tuple(frames.shape[1:3])] * len(rows)
        else:
            sizes = [tuple(f.shape[:2]) for f in frames]
        outs, params = [], []
        # the batched transforms draw from torch's RNG only (the per-sample equality tests
        # would fail otherwise): seed it per sample, restore it once for the whole batch
        state = torch.get_rng_state()
        try:
            for j, (row, epoch) in enumerate(pairs):
                sample = {
                    k: (v[j].numpy() if isinstance(v, torch.Tensor) else v[j])
                    for k, v in raw.items()
                }
                sample["index"] = row
                sample["frame_hw"] = sizes[j]
                for table in self.features:
                    sample[table.name] = table.get(row)
                torch.random.default_generator.manual_seed(sample_seed(self.seed, epoch, row))
                o, p = self.batched.prepare(sample)
                outs.append(o)
                params.append(p)
        finally:
            torch.set_rng_state(state)
        from avmodels.methods.batch_augment import JPEG, with_params

        batch = with_params(default_collate(outs), default_collate(params))
        batch[JPEG if self.defer_frames else "frame"] = frames
        if "flow" in raw:
            batch["flow"] = raw["flow"]
        if not self.defer_frames:
            batch = self.batched.finish(batch, "cpu", out=out)
        return batch

    def finish(self, batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
        """Complete a deferred batch (JPEG bytes + parameters) on ``device``."""
        if not self.defer_frames:
            return batch
        return self.batched.finish(dict(batch), device)


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


# the loaders live in avmodels.engine.loaders; imported here for the existing callers
from avmodels.engine.loaders import LOADERS, make_loader  # noqa: E402, F401
