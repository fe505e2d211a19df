"""Batch assembly shared by the store's readers: runs of adjacent rows, batch buffers
(in shared memory inside a DataLoader worker), :func:`collate` for ragged fields and
:func:`decode_jpeg_batch` for frames kept as JPEG bytes."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from avprep.errors import StoreError

#: A function applied to each sample dict by the store's datasets.
Transform = Callable[[dict[str, Any]], Any]

PCM_SCALE = np.float32(1 / 32768)
BATCH_KEYS = ("clip_id", "index", "sample_rate", "frame_time", "frame", "audio", "spectrogram",
              "flow")  # fmt: skip


def row_runs(rows: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted distinct rows -> half-open runs of adjacent rows: [3, 4, 5, 9] -> [(3, 6), (9, 10)]."""
    runs: list[tuple[int, int]] = []
    for r in rows:
        if runs and runs[-1][1] == r:
            runs[-1] = (runs[-1][0], r + 1)
        else:
            runs.append((r, r + 1))
    return runs


def alloc_rows(
    out: dict[str, torch.Tensor] | None,
    name: str,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    shared: bool,
) -> torch.Tensor:
    """The first ``shape[0]`` rows of ``out[name]`` when given (checked), else a new tensor."""
    if out is None or name not in out:
        return empty_tensor(shape, dtype, shared)
    t = out[name]
    if t.dtype != dtype or tuple(t.shape[1:]) != tuple(shape[1:]) or len(t) < shape[0]:
        raise StoreError(
            f"{name}: a batch of shape {tuple(shape)} {dtype} does not fit the given buffer "
            f"{tuple(t.shape)} {t.dtype} (do the rows' shapes differ?)"
        )
    return t[: shape[0]]


def empty_tensor(shape: tuple[int, ...], dtype: torch.dtype, shared: bool) -> torch.Tensor:
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


class RowsById:
    """``row_of(clip_id)`` for a dataset with ``ids`` (the index is built on first use);
    ``_where`` names the store in the error."""

    ids: Sequence[str]
    _row_of: dict[str, int] | None = None

    def _where(self) -> Any:
        raise NotImplementedError

    def row_of(self, clip_id: str) -> int:
        """The dataset index of ``clip_id`` (KeyError if it is not stored)."""
        if self._row_of is None:
            self._row_of = {cid: i for i, cid in enumerate(self.ids)}
        try:
            return self._row_of[clip_id]
        except KeyError:
            raise KeyError(f"clip {clip_id!r} is not in {self._where()}") from None
