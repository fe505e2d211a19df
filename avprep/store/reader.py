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

import bisect
import json
import logging
import math
import operator
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from avprep.errors import ConfigError, StoreError
from avprep.store import sspl as sspl_layout
from avprep.store.index import INDEX_NAME, NATIVE_FORMAT, read_index
from avprep.store.layouts import NativeLayout, SsplLayout, layout_of_index
from avprep.store.native import (
    READABLE_VERSIONS,
    check_audio_length,
    decode_flac,
    decode_jpeg,
    decode_jpeg_into,
)
from avprep.store.source import MODALITIES

log = logging.getLogger(__name__)

Transform = Callable[[dict[str, Any]], Any]


class _LazyFiles:
    """h5py handles opened on first use in the current process, dropped on pickling."""

    def __init__(self) -> None:
        self._pid: int | None = None
        self._open: dict[int, Any] = {}

    def get(self, key: int, opener: Callable[[], Any]) -> Any:
        if self._pid != os.getpid():  # a forked child must not reuse the parent's handles
            self._open = {}
            self._pid = os.getpid()
        handle = self._open.get(key)
        if handle is None:
            handle = self._open[key] = opener()
        return handle

    def close(self) -> None:
        if self._pid == os.getpid():
            for h in self._open.values():
                for f in h.get("_files", ()):
                    f.close()
        self._open = {}

    def __getstate__(self) -> dict:
        return {"_pid": None, "_open": {}}


def _to_float32(a: np.ndarray) -> np.ndarray:
    # numpy's float16 -> float32 cast is ~8x slower than torch's (vectorised) one
    return torch.from_numpy(a).to(torch.float32).numpy()


def _decode_attr(v: Any) -> Any:
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    if isinstance(v, np.generic):
        v = v.item()
    return v


class ShardDataset(Dataset):
    """A map-style dataset over a native store folder (``index.json``) or one shard file.

    ``modalities``: a subset of the stored ones (default: all stored).
    ``decode_jpeg=False`` returns each frame's JPEG bytes (1-D uint8) instead
    of pixels, for decoding elsewhere (e.g. on the GPU). ``jpeg_reduce`` 2, 4
    or 8 decodes JPEG frames at 1/2, 1/4 or 1/8 size with libjpeg's DCT
    scaling, for consumers that downsample anyway (not the pixels of a
    resize). ``transform`` is applied to the sample dict.

    A DataLoader with a ``batch_size`` reads a batch through
    :meth:`__getitems__` (rows grouped by shard, runs of adjacent rows read
    in one slice, conversions done per batch); :meth:`read_batch` returns a
    collated batch directly, and :func:`batch_loader` gives a DataLoader whose
    workers build each batch with it.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        modalities: Sequence[str] | None = None,
        decode_jpeg: bool = True,
        transform: Transform | None = None,
        jpeg_reduce: int = 1,
    ) -> None:
        self.path = Path(path)
        self.decode_jpeg = decode_jpeg
        self.transform = transform
        if jpeg_reduce not in (1, 2, 4, 8):
            raise ConfigError(f"jpeg_reduce must be 1, 2, 4 or 8, not {jpeg_reduce!r}")
        self.jpeg_reduce = jpeg_reduce
        if self.path.is_dir():
            index = read_index(self.path)
            if index.layout != NativeLayout.name:
                raise StoreError(f"{self.path} holds the {index.layout} layout: use SSPLDataset")
            self.files = [self.path / s.file for s in index.shards]
            counts = [s.rows for s in index.shards]
        elif self.path.is_file():
            self.files = [self.path]
            counts = None
        else:
            raise StoreError(f"no store at {self.path}")
        ids: list[str] = []
        rows: list[int] = []
        attrs: dict[str, Any] = {}
        for i, p in enumerate(self.files):
            try:
                with h5py.File(p, "r") as f:
                    if i == 0:
                        attrs = {k: _decode_attr(v) for k, v in f.attrs.items()}
                    if _decode_attr(f.attrs.get("format")) != NATIVE_FORMAT:
                        raise StoreError(f"{p} is not an avprep native shard")
                    version = _decode_attr(f.attrs.get("format_version"))
                    if version is not None and version not in READABLE_VERSIONS:
                        raise StoreError(
                            f"{p} is native format version {version}; this avprep reads "
                            f"{', '.join(map(str, READABLE_VERSIONS))} (upgrade avprep)"
                        )
                    shard_ids = [s.decode("utf-8") for s in f["clip_id"][:]]
            except OSError as exc:
                raise StoreError(f"cannot open shard {p}: {exc} (run `avprep verify`)") from exc
            if counts is not None and len(shard_ids) != counts[i]:
                raise StoreError(f"{p} has {len(shard_ids)} rows, index says {counts[i]}")
            ids.extend(shard_ids)
            rows.append(len(shard_ids))
        for key in ("modalities", "profile_params"):
            if isinstance(attrs.get(key), str):
                attrs[key] = json.loads(attrs[key])
        self.attrs: dict[str, Any] = attrs
        self.ids: list[str] = ids
        self._starts = np.cumsum([0, *rows]).tolist()
        stored = list(attrs.get("modalities") or [])
        if modalities is None:
            modalities = stored
        unknown = [m for m in modalities if m not in stored]
        if unknown:
            raise ConfigError(
                f"modality {unknown[0]!r} is not stored in {self.path}; stored: {', '.join(stored)}"
            )
        self.modalities = tuple(m for m in MODALITIES if m in modalities)
        if jpeg_reduce != 1 and "frame" in self.modalities and attrs.get("frames") == "raw":
            raise ConfigError("jpeg_reduce applies to JPEG frames; this store holds raw frames")
        self.sample_rate = int(attrs.get("sample_rate") or 0)
        self._row_of: dict[str, int] | None = None
        self._files = _LazyFiles()

    def __len__(self) -> int:
        return len(self.ids)

    def row_of(self, clip_id: str) -> int:
        """The dataset index of ``clip_id`` (KeyError if it is not stored)."""
        if self._row_of is None:
            self._row_of = {cid: i for i, cid in enumerate(self.ids)}
        try:
            return self._row_of[clip_id]
        except KeyError:
            raise KeyError(f"clip {clip_id!r} is not in {self.path}") from None

    def _open_shard(self, k: int) -> dict[str, Any]:
        f = h5py.File(self.files[k], "r")
        h: dict[str, Any] = {"_files": [f]}
        for name in ("frame", "frame_jpeg", "audio", "audio_flac", "spectrogram", "flow"):
            if name in f:
                h[name] = f[name]
        # Small per-row tables are read once: one h5py read costs ~40 us, a list index ~0.
        for name in ("frame_offset", "audio_offset", "frame_time"):
            if name in f:
                h[name] = f[name][:].tolist()
        return h

    def _shard(self, k: int) -> dict[str, Any]:
        return self._files.get(k, lambda: self._open_shard(k))

    def _check_index(self, index: int) -> int:
        n = len(self.ids)
        index = operator.index(index)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} rows")
        return index

    def _frame(self, data: np.ndarray, index: int, k: int) -> np.ndarray:
        rgb = decode_jpeg(data, self.jpeg_reduce)
        if rgb is None:
            raise StoreError(
                f"frame of clip {self.ids[index]} in {self.files[k].name} "
                "cannot be decoded (run `avprep verify`)"
            )
        return rgb

    def _pcm(self, data: np.ndarray, index: int, k: int) -> np.ndarray:
        where = (
            f"audio of clip {self.ids[index]} in {self.files[k].name} "
            f"(row {index - self._starts[k]} of that shard)"
        )
        try:
            pcm = decode_flac(data)
        except StoreError as exc:
            raise StoreError(f"{where}: {exc} (run `avprep verify`)") from exc
        check_audio_length(pcm, int(self.attrs.get("audio_length") or 0), where)
        return pcm

    def __getitem__(self, index: int) -> Any:
        index = self._check_index(index)
        k = bisect.bisect_right(self._starts, index) - 1
        r = index - self._starts[k]
        h = self._shard(k)
        ft = h["frame_time"][r] if "frame_time" in h else np.nan
        sample: dict[str, Any] = {
            "clip_id": self.ids[index],
            "index": index,
            "sample_rate": self.sample_rate,
            "frame_time": float(ft),
        }
        if "frame" in self.modalities:
            if "frame_jpeg" in h:
                off = h["frame_offset"]
                data = h["frame_jpeg"][off[r] : off[r + 1]]
                sample["frame"] = self._frame(data, index, k) if self.decode_jpeg else data
            else:
                sample["frame"] = h["frame"][r]
        if "audio" in self.modalities:
            if "audio_flac" in h:
                off = h["audio_offset"]
                pcm = self._pcm(h["audio_flac"][off[r] : off[r + 1]], index, k)
            else:
                pcm = h["audio"][r]
            sample["audio"] = np.multiply(pcm, _PCM_SCALE, dtype=np.float32)
        if "spectrogram" in self.modalities:
            sample["spectrogram"] = _to_float32(h["spectrogram"][r])
        if "flow" in self.modalities:
            sample["flow"] = _to_float32(h["flow"][r])
        return self.transform(sample) if self.transform else sample

    # -- batches ---------------------------------------------------------------
    def _read_rows(
        self, indices: Sequence[int], shared: bool, into: dict[str, torch.Tensor] | None = None
    ) -> dict[str, Any]:
        """Every field of the rows ``indices`` (in that order), read shard by shard.

        Per shard the rows are sorted and cut into runs of adjacent rows; a run
        is one slice read per dataset (a random batch is mostly runs of one).
        h5py's fancy (list) indexing is avoided on purpose: on these one-row
        chunked datasets it took ~150 ms for 32 rows, a loop of slices ~1 ms.
        Fixed-shape fields go straight into (B, ...) tensors (in shared memory
        inside a DataLoader worker, so sending the batch copies nothing);
        frames come back as a list of arrays (pixels, or JPEG bytes). Fields
        named in ``into`` are written into its first rows instead (see
        :meth:`read_batch`).
        """
        idx = [self._check_index(i) for i in indices]
        n = len(idx)
        groups: dict[int, dict[int, list[int]]] = {}  # shard -> row -> batch positions
        for j, i in enumerate(idx):
            k = bisect.bisect_right(self._starts, i) - 1
            groups.setdefault(k, {}).setdefault(i - self._starts[k], []).append(j)
        out: dict[str, Any] = {
            "clip_id": [self.ids[i] for i in idx],
            "index": torch.tensor(idx, dtype=torch.int64),
            "sample_rate": torch.full((n,), self.sample_rate, dtype=torch.int64),
            "frame_time": torch.full((n,), float("nan"), dtype=torch.float64),
        }
        frames: list[Any] = [None] * n
        arrays: dict[str, torch.Tensor] = {}
        frame_dst = None  # decode JPEG frames straight into a given uint8 batch buffer
        if into is not None and "frame" in into and self.decode_jpeg and self.jpeg_reduce == 1:
            t = into["frame"]
            if t.dtype == torch.uint8 and t.dim() == 4 and len(t) >= n and t.is_contiguous():
                frame_dst = t.numpy()
        for k in sorted(groups):
            h = self._shard(k)
            dest = groups[k]
            runs = _runs(sorted(dest))
            if "frame_time" in h:
                ft = out["frame_time"].numpy()
                for r, js in dest.items():
                    ft[js] = h["frame_time"][r]
            for m in ("audio", "spectrogram", "flow"):
                if m not in self.modalities:
                    continue
                if m == "audio" and "audio_flac" in h:
                    # FLAC: one stream per row, decoded into its batch row; the batch
                    # array is sized by the first clip, every clip must match it
                    for r, data in self._byte_rows(h, "audio_flac", "audio_offset", runs):
                        pcm = self._pcm(data, self._starts[k] + r, k)
                        if m not in arrays:
                            arrays[m] = _alloc(into, m, (n, *pcm.shape), torch.float32, shared)
                        dst = arrays[m].numpy()
                        if pcm.shape != dst.shape[1:]:
                            raise StoreError(
                                f"audio of clip {self.ids[self._starts[k] + r]} in "
                                f"{self.files[k].name} has {pcm.shape[0]} samples, the "
                                f"batch's first {dst.shape[1]} (run `avprep verify`)"
                            )
                        for j in dest[r]:
                            np.multiply(pcm, _PCM_SCALE, out=dst[j])
                    continue
                ds = h[m]
                if m not in arrays:
                    arrays[m] = _alloc(into, m, (n, *ds.shape[1:]), torch.float32, shared)
                dst = arrays[m].numpy()
                for a, b in runs:
                    block = ds[a:b]
                    for r in range(a, b):
                        # converted row by row into the batch: the per-sample reader's
                        # operations (a larger torch cast would go multi-threaded, which
                        # costs more than it saves on a busy machine)
                        j0, *more = dest[r]
                        if m == "audio":
                            np.multiply(block[r - a], _PCM_SCALE, out=dst[j0])
                        else:
                            torch.from_numpy(dst[j0]).copy_(torch.from_numpy(block[r - a]))
                        for j in more:
                            dst[j] = dst[j0]
            if "frame" in self.modalities:
                if "frame_jpeg" in h:
                    for r, data in self._byte_rows(h, "frame_jpeg", "frame_offset", runs):
                        j0 = dest[r][0]
                        if frame_dst is not None and decode_jpeg_into(data, frame_dst[j0]):
                            value = frame_dst[j0]  # decoded in place: nothing to copy later
                        elif self.decode_jpeg:
                            value = self._frame(data, self._starts[k] + r, k)
                        else:
                            value = data
                        for j in dest[r]:
                            frames[j] = value
                else:
                    for a, b in runs:
                        block = h["frame"][a:b]
                        for r in range(a, b):
                            for j in dest[r]:
                                frames[j] = block[r - a]
        if "frame" in self.modalities:
            out["frame"] = frames
        out.update(arrays)
        return out

    @staticmethod
    def _byte_rows(h: dict[str, Any], data: str, table: str, runs: list[tuple[int, int]]):
        """(row, bytes) for every row of ``runs``: one slice read per run."""
        off = h[table]
        for a, b in runs:
            base = off[a]
            block = h[data][base : off[b]]
            for r in range(a, b):
                yield r, block[off[r] - base : off[r + 1] - base]

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        """The samples ``[self[i] for i in indices]``, equal to those, read as one batch.

        torch's DataLoader calls this for each batch when a ``batch_size`` is
        set, so a plain ``DataLoader(ds, batch_size=..., num_workers=...)``
        uses it. Arrays of fixed-shape fields are views into one batch array.
        """
        batch = self._read_rows(indices, shared=False)
        samples = []
        for j in range(len(batch["clip_id"])):
            s: dict[str, Any] = {
                "clip_id": batch["clip_id"][j],
                "index": int(batch["index"][j]),
                "sample_rate": self.sample_rate,
                "frame_time": float(batch["frame_time"][j]),
            }
            for m in ("frame", "audio", "spectrogram", "flow"):
                if m in batch:
                    v = batch[m][j]
                    s[m] = v.numpy() if isinstance(v, torch.Tensor) else v
            samples.append(self.transform(s) if self.transform else s)
        return samples

    def read_batch(
        self, indices: Sequence[int], out: dict[str, torch.Tensor] | None = None
    ) -> dict[str, Any]:
        """The rows ``indices`` as one collated batch: what ``collate`` makes of the samples.

        ``clip_id`` a list; ``index``, ``sample_rate``, ``frame_time`` tensors;
        ``frame`` a (B, H, W, 3) uint8 tensor (a list of tensors when sizes
        differ or JPEG bytes are kept); ``audio``, ``spectrogram``, ``flow``
        float32 tensors. Inside a DataLoader worker the tensors are built in
        shared memory. With a ``transform``, the transformed samples collated.

        ``out`` maps field names to preallocated tensors of at least
        ``len(indices)`` rows (a :class:`~avprep.store.RingLoader` slot): those
        fields are decoded straight into them and returned as views of their
        first rows.
        """
        if self.transform is not None:
            return collate(self.__getitems__(indices))
        in_worker = torch.utils.data.get_worker_info() is not None
        batch = self._read_rows(indices, shared=in_worker, into=out)
        if "frame" in batch:
            frames = batch["frame"]
            pixels = self.decode_jpeg or self.attrs.get("frames") == "raw"
            if pixels and len({f.shape for f in frames}) == 1:
                t = _alloc(out, "frame", (len(frames), *frames[0].shape), torch.uint8, in_worker)
                dst = t.numpy()
                for j, f in enumerate(frames):
                    if f.ctypes.data != dst[j].ctypes.data:  # not decoded in place
                        dst[j] = f
                batch["frame"] = t
            else:
                batch["frame"] = [torch.from_numpy(np.ascontiguousarray(f)) for f in frames]
        return {k: batch[k] for k in _KEY_ORDER if k in batch}

    def close(self) -> None:
        """Close this process's open files (they reopen on the next access)."""
        self._files.close()

    def __repr__(self) -> str:
        return (
            f"ShardDataset({str(self.path)!r}, rows={len(self)}, shards={len(self.files)}, "
            f"modalities={list(self.modalities)})"
        )


_PCM_SCALE = np.float32(1 / 32768)
_KEY_ORDER = ("clip_id", "index", "sample_rate", "frame_time", "frame", "audio", "spectrogram",
              "flow")  # fmt: skip


def _runs(rows: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted distinct rows -> half-open runs of adjacent rows: [3, 4, 5, 9] -> [(3, 6), (9, 10)]."""
    runs: list[tuple[int, int]] = []
    for r in rows:
        if runs and runs[-1][1] == r:
            runs[-1] = (runs[-1][0], r + 1)
        else:
            runs.append((r, r + 1))
    return runs


def _alloc(
    out: dict[str, torch.Tensor] | None,
    name: str,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    shared: bool,
) -> torch.Tensor:
    """The first ``shape[0]`` rows of ``out[name]`` when given (checked), else a new tensor."""
    if out is None or name not in out:
        return _empty(shape, dtype, shared)
    t = out[name]
    if t.dtype != dtype or tuple(t.shape[1:]) != tuple(shape[1:]) or len(t) < shape[0]:
        raise StoreError(
            f"{name}: a batch of shape {tuple(shape)} {dtype} does not fit the given buffer "
            f"{tuple(t.shape)} {t.dtype} (do the rows' shapes differ?)"
        )
    return t[: shape[0]]


def _empty(shape: tuple[int, ...], dtype: torch.dtype, shared: bool) -> torch.Tensor:
    """An uninitialised tensor; in shared memory when ``shared`` (as torch's collate does in
    a worker, so that handing the batch to the main process copies nothing)."""
    if shared:
        try:
            numel = math.prod(shape)
            proto = torch.empty(0, dtype=dtype)
            storage = proto._typed_storage()._new_shared(numel, device=proto.device)
            return proto.new(storage).resize_(*shape)
        except (AttributeError, RuntimeError):  # a torch without the private helper
            pass
    return torch.empty(shape, dtype=dtype)


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


class SSPLDataset(Dataset):
    """A map-style dataset over SSPL's layout (``h5py_{train,test}_*.h5`` in ``root``).

    ``split``: the split name in the file names (``10k``, ``144k``; any name
    for the test variant). ``test``: force the variant (default: a split
    named ``test*``). Ids come from ``ids_csv`` (a path), else the store's
    ``index.json``, else SSPL's ``*_videos_<split>.csv`` beside the files;
    without any, ids are the row numbers as strings.

    Frames come back as uint8 (SSPL stores integer values as float32);
    audio as stored, i.e. already normalised SSPL's way (not /32768);
    ``frame_time`` is NaN (SSPL keeps no times).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        *,
        test: bool | None = None,
        ids_csv: str | os.PathLike | None = None,
        modalities: Sequence[str] | None = None,
        transform: Transform | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.variant = sspl_layout.variant_of(split, test)
        self.transform = transform
        self.shards = self._find_shards()
        rows = []
        for names in self.shards:
            with h5py.File(self.root / names["frames"], "r") as f:
                rows.append(int(f[sspl_layout.dataset_key(self.variant, "frames")].shape[0]))
        self._starts = np.cumsum([0, *rows]).tolist()
        self.rows_per_shard = rows[0]
        why = sspl_layout.incomplete(
            self.root, split, [s["frames"] for s in self.shards], sum(rows)
        )
        if why:
            raise StoreError(why)
        self.ids = self._find_ids(ids_csv, sum(rows))
        wanted = ("frame", "audio", "spectrogram") if modalities is None else tuple(modalities)
        bad = [m for m in wanted if m not in ("frame", "audio", "spectrogram")]
        if bad:
            raise ConfigError(f"modality {bad[0]!r} is not in SSPL's layout")
        self.modalities = wanted
        self.attrs = {"layout": SsplLayout.name, "split": split, "variant": self.variant,
                      "sample_rate": sspl_layout.SAMPLE_RATE}  # fmt: skip
        self._row_of: dict[str, int] | None = None
        self._files = _LazyFiles()

    def _find_shards(self) -> list[dict[str, str]]:
        one = sspl_layout.file_names(self.split, self.variant, 0, 1)
        if (self.root / one["frames"]).is_file():
            return [one]
        shards = []
        k = 0
        while True:
            names = sspl_layout.file_names(self.split, self.variant, k, k + 2)
            if not (self.root / names["frames"]).is_file():
                break
            shards.append(names)
            k += 1
        if not shards:
            raise StoreError(
                f"no SSPL files for split {self.split!r} in {self.root} (expected {one['frames']})"
            )
        for names in shards:
            for name in names.values():
                if not (self.root / name).is_file():
                    raise StoreError(f"SSPL store {self.root} lacks {name}")
        return shards

    def _find_ids(self, ids_csv: Any, n: int) -> list[str]:
        path = Path(ids_csv) if ids_csv else None
        if path is None and (self.root / INDEX_NAME).is_file():
            try:
                idx = read_index(self.root)
                if idx.id_list and idx.split == self.split:
                    path = self.root / idx.id_list
            except StoreError:
                pass
        if path is None and self.variant == "train":
            found = sorted(self.root.glob(f"*_train_videos_{self.split}.csv"))
            path = found[0] if found else None
        if path is None:
            log.warning("no id list for %s split %r: ids are row numbers", self.root, self.split)
            return [str(i) for i in range(n)]
        ids = sspl_layout.read_id_csv(path)
        if len(ids) != n:
            raise StoreError(f"{path} lists {len(ids)} ids but the SSPL files hold {n} rows")
        return ids

    def __len__(self) -> int:
        return self._starts[-1]

    def row_of(self, clip_id: str) -> int:
        if self._row_of is None:
            self._row_of = {cid: i for i, cid in enumerate(self.ids)}
        try:
            return self._row_of[clip_id]
        except KeyError:
            raise KeyError(f"clip {clip_id!r} is not in {self.root}") from None

    def _open_shard(self, k: int) -> dict[str, Any]:
        h: dict[str, Any] = {"_files": []}
        for kind, name in self.shards[k].items():
            f = h5py.File(self.root / name, "r")
            h["_files"].append(f)
            h[kind] = f[sspl_layout.dataset_key(self.variant, kind)]
        return h

    def __getitem__(self, index: int) -> Any:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} rows")
        k = bisect.bisect_right(self._starts, index) - 1
        r = index - self._starts[k]
        h = self._files.get(k, lambda: self._open_shard(k))
        sample: dict[str, Any] = {
            "clip_id": self.ids[index],
            "index": index,
            "sample_rate": sspl_layout.SAMPLE_RATE,
            "frame_time": float("nan"),
        }
        if "frame" in self.modalities:
            sample["frame"] = h["frames"][r].astype(np.uint8)
        if "audio" in self.modalities:
            sample["audio"] = h["audios"][r]
        if "spectrogram" in self.modalities:
            sample["spectrogram"] = h["spects"][r]
        return self.transform(sample) if self.transform else sample

    def close(self) -> None:
        self._files.close()

    def __repr__(self) -> str:
        return f"SSPLDataset({str(self.root)!r}, split={self.split!r}, rows={len(self)})"


def collate(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A DataLoader ``collate_fn`` that also takes ragged fields (JPEG bytes, odd shapes).

    Fields whose arrays all have one shape are stacked into a tensor as
    torch's default collate does; ragged ones (``decode_jpeg=False`` frames)
    stay a list of tensors.
    """
    from torch.utils.data import default_collate

    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [b[key] for b in batch]
        if isinstance(values[0], np.ndarray) and len({v.shape for v in values}) > 1:
            out[key] = [torch.from_numpy(np.ascontiguousarray(v)) for v in values]
        else:
            out[key] = default_collate(values)
    return out


def decode_jpeg_batch(frames: Sequence[Any], device: str = "cpu") -> Any:
    """Decode a batch of JPEG byte tensors (``decode_jpeg=False`` + :func:`collate`).

    Returns (B, H, W, 3) uint8 RGB on ``device`` (a list when sizes differ).
    With ``device="cuda"`` torchvision decodes on the GPU (nvJPEG), which
    takes the decode off the loader workers, but its pixels differ from
    libjpeg-turbo's (mean 1.9 levels, up to 117 at colour edges, measured on
    an H100): not for exact reproduction. On the CPU it is libjpeg-turbo,
    pixel-identical to the in-worker decode.
    """
    import warnings

    from torchvision.io import ImageReadMode, decode_jpeg

    data = [torch.as_tensor(f) for f in frames]
    with warnings.catch_warnings():
        # torchvision >= 0.29 flags its image codecs as moving to TorchCodec; they still work
        warnings.simplefilter("ignore", DeprecationWarning)
        imgs = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    imgs = [im.permute(1, 2, 0) for im in imgs]
    if len({tuple(im.shape) for im in imgs}) == 1:
        return torch.stack(imgs)
    return imgs


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
