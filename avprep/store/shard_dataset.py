"""The PyTorch dataset over avprep's native shards: :class:`ShardDataset` (one sample
per row, or a batch through :meth:`~ShardDataset.read_batch`; whole-batch loaders over
it are in :mod:`avprep.store.batch_dataset`).

They give the sample dict of :mod:`avprep.store.reader`; files are opened
lazily, once per process (:class:`~avprep.store.lazy_files.LazyFiles`).
"""

from __future__ import annotations

import bisect
import json
import operator
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from avprep.errors import ConfigError, StoreError
from avprep.store.batches import (
    BATCH_KEYS,
    PCM_SCALE,
    RowsById,
    Transform,
    alloc_rows,
    collate,
    row_runs,
)
from avprep.store.index import NATIVE_FORMAT, read_index
from avprep.store.layouts import NativeLayout
from avprep.store.lazy_files import LazyFiles
from avprep.store.native import (
    READABLE_VERSIONS,
    check_audio_length,
    decode_flac,
    decode_jpeg,
    decode_jpeg_into,
)
from avprep.store.source import MODALITIES


def _to_float32(a: np.ndarray) -> np.ndarray:
    # numpy's float16 -> float32 cast is ~8x slower than torch's (vectorised) one
    return torch.from_numpy(a).to(torch.float32).numpy()


def _decode_attr(v: Any) -> Any:
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    if isinstance(v, np.generic):
        v = v.item()
    return v


class ShardDataset(RowsById, Dataset):
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
        self._files = LazyFiles()

    def __len__(self) -> int:
        return len(self.ids)

    def _where(self) -> Any:
        return self.path

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
            sample["audio"] = np.multiply(pcm, PCM_SCALE, dtype=np.float32)
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
        out: dict[str, Any] = {
            "clip_id": [self.ids[i] for i in idx],
            "index": torch.tensor(idx, dtype=torch.int64),
            "sample_rate": torch.full((n,), self.sample_rate, dtype=torch.int64),
            "frame_time": torch.full((n,), float("nan"), dtype=torch.float64),
        }
        frames: list[Any] = [None] * n
        arrays: dict[str, torch.Tensor] = {}
        frame_dst = self._frame_buffer(into, n)

        def batch_array(m: str, row_shape: tuple[int, ...]) -> np.ndarray:
            """The (n, *row_shape) float32 batch array of field ``m``, made on first use."""
            if m not in arrays:
                arrays[m] = alloc_rows(into, m, (n, *row_shape), torch.float32, shared)
            return arrays[m].numpy()

        groups = self._group_by_shard(idx)
        for k in sorted(groups):
            h = self._shard(k)
            dest = groups[k]
            runs = row_runs(sorted(dest))
            if "frame_time" in h:
                ft = out["frame_time"].numpy()
                for r, js in dest.items():
                    ft[js] = h["frame_time"][r]
            for m in ("audio", "spectrogram", "flow"):
                if m not in self.modalities:
                    continue
                if m == "audio" and "audio_flac" in h:
                    self._read_flac_rows(h, k, dest, runs, batch_array)
                else:
                    self._read_array_rows(h[m], m, dest, runs, batch_array)
            if "frame" in self.modalities:
                self._read_frame_rows(h, k, dest, runs, frames, frame_dst)
        if "frame" in self.modalities:
            out["frame"] = frames
        out.update(arrays)
        return out

    def _group_by_shard(self, idx: list[int]) -> dict[int, dict[int, list[int]]]:
        """shard -> row in that shard -> the batch positions that ask for it."""
        groups: dict[int, dict[int, list[int]]] = {}
        for j, i in enumerate(idx):
            k = bisect.bisect_right(self._starts, i) - 1
            groups.setdefault(k, {}).setdefault(i - self._starts[k], []).append(j)
        return groups

    def _frame_buffer(self, into: dict[str, torch.Tensor] | None, n: int) -> np.ndarray | None:
        """The uint8 batch buffer of ``into`` that JPEG frames can be decoded straight into."""
        if into is not None and "frame" in into and self.decode_jpeg and self.jpeg_reduce == 1:
            t = into["frame"]
            if t.dtype == torch.uint8 and t.dim() == 4 and len(t) >= n and t.is_contiguous():
                return t.numpy()
        return None

    def _read_flac_rows(
        self,
        h: dict[str, Any],
        k: int,
        dest: dict[int, list[int]],
        runs: list[tuple[int, int]],
        batch_array: Callable[[str, tuple[int, ...]], np.ndarray],
    ) -> None:
        """FLAC audio: one stream per row, decoded into its batch rows; the batch array
        is sized by the first clip, every clip must match it."""
        for r, data in self._byte_rows(h, "audio_flac", "audio_offset", runs):
            pcm = self._pcm(data, self._starts[k] + r, k)
            dst = batch_array("audio", pcm.shape)
            if pcm.shape != dst.shape[1:]:
                raise StoreError(
                    f"audio of clip {self.ids[self._starts[k] + r]} in "
                    f"{self.files[k].name} has {pcm.shape[0]} samples, the "
                    f"batch's first {dst.shape[1]} (run `avprep verify`)"
                )
            for j in dest[r]:
                np.multiply(pcm, PCM_SCALE, out=dst[j])

    @staticmethod
    def _read_array_rows(
        ds: Any,
        m: str,
        dest: dict[int, list[int]],
        runs: list[tuple[int, int]],
        batch_array: Callable[[str, tuple[int, ...]], np.ndarray],
    ) -> None:
        """A fixed-shape field (raw audio, spectrogram, flow): one slice read per run."""
        dst = batch_array(m, ds.shape[1:])
        for a, b in runs:
            block = ds[a:b]
            for r in range(a, b):
                # converted row by row into the batch: the per-sample reader's
                # operations (a larger torch cast would go multi-threaded, which
                # costs more than it saves on a busy machine)
                j0, *more = dest[r]
                if m == "audio":
                    np.multiply(block[r - a], PCM_SCALE, out=dst[j0])
                else:
                    torch.from_numpy(dst[j0]).copy_(torch.from_numpy(block[r - a]))
                for j in more:
                    dst[j] = dst[j0]

    def _read_frame_rows(
        self,
        h: dict[str, Any],
        k: int,
        dest: dict[int, list[int]],
        runs: list[tuple[int, int]],
        frames: list[Any],
        frame_dst: np.ndarray | None,
    ) -> None:
        """Frames into ``frames``: JPEG decoded (in place into ``frame_dst`` when it can
        be), kept as bytes (``decode_jpeg=False``), or raw pixel rows."""
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
                t = alloc_rows(
                    out, "frame", (len(frames), *frames[0].shape), torch.uint8, in_worker
                )
                dst = t.numpy()
                for j, f in enumerate(frames):
                    if f.ctypes.data != dst[j].ctypes.data:  # not decoded in place
                        dst[j] = f
                batch["frame"] = t
            else:
                batch["frame"] = [torch.from_numpy(np.ascontiguousarray(f)) for f in frames]
        return {k: batch[k] for k in BATCH_KEYS if k in batch}

    def close(self) -> None:
        """Close this process's open files (they reopen on the next access)."""
        self._files.close()

    def __repr__(self) -> str:
        return (
            f"ShardDataset({str(self.path)!r}, rows={len(self)}, shards={len(self.files)}, "
            f"modalities={list(self.modalities)})"
        )
