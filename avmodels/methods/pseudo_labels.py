"""Per-clip category pseudo labels for Multi-Source (``mssl``), and their fallback.

Multi-Source's first stage trains 7-way classifiers (the AudioSet top-level
categories) on *pseudo labels*: soft 7-vectors in [0, 1] that the original
computed offline with a pretrained audio tagger (a mobile CRNN over AudioSet's
527 classes) and an ImageNet ResNet-18 (1000 classes), each mapped to the 7
categories by a 0/1 matrix (``utils/cluster_a.npy``, ``cluster_v3.npy``). Those
labels are not distributed, so they reach avmodels one of two ways:

- a **labels file** (``labels.file``) mapping clip ids to an audio and a visual
  label, written by :func:`write_labels` (``.npz``) or by hand (``.json``);
- **fields of the store sample** (``labels_a``/``labels_v``, or ``labels`` for
  both).

Clips without a label fall back (``labels.fallback``) to ``none`` (no
classification loss for them) or ``kmeans``: :class:`OnlineKMeans` clusters the
model's own pooled audio+visual embedding of each pair into K clusters and the
one-hot cluster of a pair is the label of both its streams (one clustering for
the pair, so category c means the same thing for audio and vision, which the
second stage relies on).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avprep.atomic import atomic_path
from avprep.errors import InputError

FALLBACKS = ("kmeans", "none")


def write_labels(
    path: str | os.PathLike,
    clip_ids: list[str] | np.ndarray,
    audio: np.ndarray,
    visual: np.ndarray | None = None,
) -> Path:
    """Write a labels file (``.npz``: ``clip_id``, ``audio`` (N, K), ``visual`` (N, K)).

    ``visual`` defaults to ``audio``. The original's ``labels_a.npy`` and
    ``labels_v.npy`` are row-aligned with its HDF5 files: pass the clip ids in
    that order.
    """
    ids = np.asarray([str(c) for c in clip_ids])
    audio = np.asarray(audio, dtype=np.float32)
    visual = audio if visual is None else np.asarray(visual, dtype=np.float32)
    if audio.ndim != 2 or audio.shape != visual.shape or audio.shape[0] != ids.shape[0]:
        raise InputError(
            f"labels: expected {ids.shape[0]} rows of equal (N, K) audio/visual labels, got "
            f"audio {audio.shape}, visual {visual.shape}"
        )
    _check_range(audio, "audio")
    _check_range(visual, "visual")
    if len(set(ids.tolist())) != ids.shape[0]:
        raise InputError("labels: clip ids are not unique")
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"labels file must end in .npz, got {path.name}")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, clip_id=ids, audio=audio, visual=visual)
    return path


def _check_range(x: np.ndarray, what: str) -> None:
    if not np.isfinite(x).all() or x.min(initial=0.0) < 0 or x.max(initial=0.0) > 1:
        raise InputError(f"labels: {what} labels must be finite and in [0, 1]")


def read_labels(path: str | os.PathLike, num_classes: int) -> dict[str, np.ndarray]:
    """clip id -> (2, K) float32 (audio row, visual row) from a ``.npz``, ``.h5`` or ``.json`` file.

    ``.h5``: written by ``avmodels pseudo-labels`` (:mod:`avmodels.methods.mssl_labels`).

        JSON: ``{"<clip_id>": {"audio": [...], "visual": [...]}}`` or
        ``{"<clip_id>": [...]}`` (the same label for both streams).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"labels file not found: {path}")
    out: dict[str, np.ndarray] = {}
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                ids, audio = z["clip_id"], z["audio"].astype(np.float32)
                visual = z["visual"].astype(np.float32) if "visual" in z.files else audio
        except (KeyError, ValueError, OSError) as exc:
            raise InputError(
                f"{path}: not a labels file (clip_id, audio[, visual]): {exc}"
            ) from exc
        if audio.shape != visual.shape or audio.ndim != 2 or audio.shape[0] != ids.shape[0]:
            raise InputError(f"{path}: audio {audio.shape} / visual {visual.shape} / ids mismatch")
        for i, cid in enumerate(ids.tolist()):
            out[str(cid)] = np.stack([audio[i], visual[i]])
    elif path.suffix in (".h5", ".hdf5"):
        out = _read_h5_labels(path)
    elif path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: invalid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InputError(f"{path}: expected an object mapping clip ids to labels")
        for cid, value in data.items():
            if isinstance(value, dict):
                if "audio" not in value:
                    raise InputError(f"{path}: clip {cid!r} has no 'audio' label")
                a = value["audio"]
                v = value.get("visual", a)
            else:
                a = v = value
            try:
                out[str(cid)] = np.asarray([a, v], dtype=np.float32)
            except (TypeError, ValueError) as exc:
                raise InputError(f"{path}: clip {cid!r}: labels are not numbers") from exc
    else:
        raise InputError(f"labels file must be .npz, .h5 or .json, got {path.name}")
    for cid, lab in out.items():
        if lab.shape != (2, num_classes):
            raise InputError(
                f"{path}: clip {cid!r} has labels of shape {lab.shape[1:]}, expected ({num_classes},)"
            )
        _check_range(lab, f"clip {cid!r}")
    return out


H5_FORMAT = "avmodels-pseudo-labels"


def _read_h5_labels(path: Path) -> dict[str, np.ndarray]:
    """A finished ``avmodels pseudo-labels`` file: ``clip_id``, ``audio``, ``visual``, ``done``."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != H5_FORMAT:
                raise InputError(f"{path}: not an `avmodels pseudo-labels` file")
            ids = [c.decode("utf-8") if isinstance(c, bytes) else str(c) for c in f["clip_id"][:]]
            audio = f["audio"][:].astype(np.float32)
            visual = f["visual"][:].astype(np.float32)
            done = f["done"][:]
    except (OSError, KeyError) as exc:
        raise InputError(f"{path}: unreadable labels file ({exc})") from None
    if not done.all():
        raise InputError(
            f"{path}: {int((~done).sum())} of {len(done)} clips unlabelled (an interrupted run: "
            "rerun `avmodels pseudo-labels` to finish it)"
        )
    return {cid: np.stack([audio[i], visual[i]]) for i, cid in enumerate(ids)}


class LabelLookup:
    """Picklable: store sample -> ((2, K) float32 labels, 1.0) or (zeros, 0.0) when unknown.

    Sample fields win over the file. The file is read once per process, on
    first use (DataLoader workers each read their own copy). With
    ``strict`` a clip without a label is an error (the training transform
    when the fallback is ``none`` would silently lose the classification loss).
    """

    def __init__(self, path: str | None, num_classes: int, strict: bool = False) -> None:
        self.path = str(path) if path else None
        self.num_classes = int(num_classes)
        self.strict = strict
        self._table: dict[str, np.ndarray] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_table"] = None  # workers read the file themselves
        return state

    def __call__(self, sample: dict[str, Any]) -> tuple[np.ndarray, float]:
        k = self.num_classes
        lab = self._from_sample(sample)
        if lab is None and self.path is not None:
            if self._table is None:
                self._table = read_labels(self.path, k)
            lab = self._table.get(str(sample["clip_id"]))
        if lab is None:
            if self.strict:
                where = f"in {self.path}" if self.path else "(no labels.file given)"
                raise InputError(f"clip {sample['clip_id']!r} has no pseudo label {where}")
            return np.zeros((2, k), np.float32), 0.0
        return lab, 1.0

    def _from_sample(self, sample: dict[str, Any]) -> np.ndarray | None:
        k = self.num_classes
        if sample.get("labels_a") is not None:
            a = np.asarray(sample["labels_a"], np.float32).reshape(-1)
            v = sample.get("labels_v")
            v = a if v is None else np.asarray(v, np.float32).reshape(-1)
            lab = np.stack([a, v]) if a.shape == v.shape else None
        elif sample.get("labels") is not None:
            lab = np.asarray(sample["labels"], np.float32)
            lab = np.stack([lab, lab]) if lab.ndim == 1 else lab
        else:
            return None
        if lab is None or lab.shape != (2, k):
            raise InputError(f"clip {sample.get('clip_id')!r}: labels must have {k} classes")
        _check_range(lab, f"clip {sample.get('clip_id')!r}")
        return lab


class OnlineKMeans(nn.Module):
    """Mini-batch spherical k-means with EMA centroids: the pseudo-label fallback.

    Features are L2-normalised; a pair joins the centroid of highest cosine.
    :meth:`update` (training only) moves each centroid that got members toward
    their mean by ``1 - momentum``, tracks an EMA of each cluster's share of the
    batch and re-seeds a cluster whose share falls below a tenth of uniform with
    a random feature of the batch (k-means otherwise loses clusters for good).
    Under torch.distributed the sums are all-reduced and re-seeds broadcast from
    rank 0, so every process holds the same centroids. The state is buffers:
    checkpoints and ``--resume`` keep it.
    """

    def __init__(self, num_clusters: int, dim: int, momentum: float = 0.9) -> None:
        super().__init__()
        self.k, self.momentum = int(num_clusters), float(momentum)
        self.register_buffer("centroids", torch.zeros(self.k, dim))
        self.register_buffer("usage", torch.full((self.k,), 1.0 / self.k))
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def assign(self, feats: torch.Tensor) -> torch.Tensor:
        """(B,) cluster index of each (unnormalised) feature; -1 before the first update."""
        if not bool(self.ready):
            return torch.full((feats.shape[0],), -1, dtype=torch.long, device=feats.device)
        sim = F.normalize(feats.float(), dim=1) @ self.centroids.t()
        return sim.argmax(dim=1)

    @torch.no_grad()
    def update(self, feats: torch.Tensor) -> torch.Tensor:
        """Initialise if needed, assign, move the centroids; returns the assignment used."""
        x = F.normalize(feats.float(), dim=1)
        if not bool(self.ready):
            self.centroids.copy_(self._draw(x, self.k))
            self._sync_from_rank0()
            self.ready.fill_(True)
        assign = (x @ self.centroids.t()).argmax(dim=1)
        one = F.one_hot(assign, self.k).to(x.dtype)
        counts, sums = one.sum(0), one.t() @ x
        stats = torch.cat([counts[:, None], sums], dim=1)
        total = torch.tensor(float(x.shape[0]), device=x.device)
        if _distributed():
            torch.distributed.all_reduce(stats)
            torch.distributed.all_reduce(total)
        counts, sums = stats[:, 0], stats[:, 1:]
        has = counts > 0
        means = sums / counts.clamp(min=1)[:, None]
        moved = self.momentum * self.centroids + (1 - self.momentum) * means
        self.centroids.copy_(torch.where(has[:, None], F.normalize(moved, dim=1), self.centroids))
        self.usage.mul_(self.momentum).add_((1 - self.momentum) * counts / total)
        dead = self.usage < 0.1 / self.k
        if bool(dead.any()):
            self.centroids[dead] = self._draw(x, int(dead.sum()))
            self.usage[dead] = 1.0 / self.k
            self._sync_from_rank0()
        return assign

    @staticmethod
    def _draw(x: torch.Tensor, n: int) -> torch.Tensor:
        idx = torch.randint(0, x.shape[0], (n,)) if n > x.shape[0] else torch.randperm(x.shape[0])
        picked = x[idx[:n].to(x.device)]
        # a little noise keeps duplicates (n > batch) from being identical centroids
        noise = 1e-3 * torch.randn(picked.shape).to(picked)
        return F.normalize(picked + noise, dim=1)

    def _sync_from_rank0(self) -> None:
        if _distributed():
            torch.distributed.broadcast(self.centroids, 0)
            torch.distributed.broadcast(self.usage, 0)


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()
