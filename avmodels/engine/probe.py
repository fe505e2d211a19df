"""Rerun a model with replaced audio: ``avmodels eval --audio-probe silence|noise|swap``.

The probe keeps every frame and replaces each clip's sound:

``silence``  zeros of the clip's own length;
``noise``    Gaussian noise, seeded by ``(seed, clip id)`` so a rerun gives the
             same maps (vssl_eval's noise is unseeded), with the RMS of the
             clip's own audio (``noise_std`` sets a fixed level instead:
             vssl_eval uses 1.0 on [-1, 1] waveforms);
``swap``     the audio of another clip of the set (a fixed derangement: the
             clip ``k`` places further in a seeded permutation).

A method that reads a stored spectrogram gets the spectrogram of the probe
waveform, computed by the same front end (``data.spectrogram_name``), so the
store must hold the audio; ``swap`` also swaps stored spectrograms as they are.
The maps and the model's confidences (``method.confidence(batch)`` when the
method has one, else the mean of the largest quarter of its map) go to
:func:`avmodels.metrics.sensitivity.sensitivity`.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from avmodels.data import MethodDataset, make_loader, sample_seed, seeded_rngs
from avmodels.metrics.sensitivity import PROBES
from avprep.errors import ConfigError

log = logging.getLogger(__name__)


def _check(kind: str) -> str:
    if kind not in PROBES:
        raise ConfigError(f"unknown audio probe {kind!r}; valid: {', '.join(PROBES)}")
    return kind


def derangement(n: int, seed: int = 0) -> list[int]:
    """A seeded permutation with no fixed point (``n >= 2``): position -> source position."""
    if n < 2:
        raise ConfigError("the swap probe needs at least two clips")
    order = np.random.default_rng(seed).permutation(n)
    src = np.empty(n, dtype=np.int64)
    src[order] = np.roll(order, -1)  # each clip takes the next one's audio in the cycle
    return src.tolist()


def probe_wave(kind: str, wave: np.ndarray, clip_id: str, seed: int, noise_std: float | None):
    """The silence or noise replacing ``wave`` (same length and dtype float32)."""
    w = np.asarray(wave, dtype=np.float32)
    if kind == "silence":
        return np.zeros_like(w)
    rng = np.random.default_rng([seed, zlib.crc32(clip_id.encode("utf-8"))])
    std = noise_std
    if std is None:
        rms = float(np.sqrt(np.mean(np.square(w, dtype=np.float64)))) if w.size else 0.0
        std = rms if rms > 0 else 0.1
    return (rng.standard_normal(w.shape) * std).astype(np.float32)


class ProbeDataset(MethodDataset):
    """A :class:`MethodDataset` whose samples carry probe audio."""

    def __init__(
        self,
        base: MethodDataset,
        kind: str,
        *,
        seed: int = 0,
        noise_std: float | None = None,
        spectrogram_name: str | None = None,
    ) -> None:
        super().__init__(base.sources, base.transform, base.rows, base.seed, base.features)
        self.kind = _check(kind)
        self.probe_seed = int(seed)
        self.noise_std = noise_std
        self.spectrogram_name = spectrogram_name
        self.source = derangement(len(self.rows), seed) if kind == "swap" else None

    def _replace(self, sample: dict[str, Any], pos: int) -> dict[str, Any]:
        if self.kind == "swap":
            other = self.sources[self.rows[self.source[pos]]]
            for key in ("audio", "sample_rate", "spectrogram"):
                if key in other:
                    sample[key] = other[key]
            return sample
        if sample.get("audio") is None:
            raise ConfigError(
                f"the {self.kind} probe needs the clips' audio in the store "
                f"(clip {sample.get('clip_id')!r} has none)"
            )
        wave = probe_wave(self.kind, sample["audio"], str(sample["clip_id"]),
                          self.probe_seed, self.noise_std)  # fmt: skip
        sample["audio"] = wave
        if sample.get("spectrogram") is not None:
            if not self.spectrogram_name:
                raise ConfigError("a stored spectrogram needs data.spectrogram_name to be probed")
            from avprep.spectrogram import compute

            spec = compute(self.spectrogram_name, wave, int(sample["sample_rate"]))
            old = np.asarray(sample["spectrogram"])
            sample["spectrogram"] = spec.reshape(old.shape) if spec.size == old.size else spec
        return sample

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        pos, epoch = key if isinstance(key, tuple) else (key, 0)
        row = self.rows[pos]
        sample = self._replace(self.sources[row], pos)
        for table in self.features:
            sample[table.name] = table.get(row)
        with seeded_rngs(sample_seed(self.seed, epoch, row)):
            out = self.transform(sample)
        out.setdefault("clip_id", str(sample["clip_id"]))
        return out


def maps_and_confidences(
    method: Any,
    dataset: Any,
    *,
    device: torch.device,
    batch_size: int = 32,
    num_workers: int = 0,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Maps and per-clip confidences of ``method`` over ``dataset`` (one process)."""
    from avmodels.metrics.sensitivity import top_quarter_mean

    was = method.training
    method.eval()
    maps: dict[str, np.ndarray] = {}
    conf: dict[str, float] = {}
    own = getattr(method, "confidence", None)
    try:
        with torch.no_grad():
            for batch in make_loader(dataset, batch_size=batch_size, num_workers=num_workers):
                ids = list(batch["clip_id"])
                batch = method.batch_to_device(batch, device, False)
                out, _ = method.evaluation_step(batch, False)
                arr = out.detach().float().cpu().numpy()
                c = own(batch).detach().float().cpu().numpy() if callable(own) else None
                for i, cid in enumerate(ids):
                    maps[cid] = arr[i]
                    conf[cid] = float(c[i]) if c is not None else top_quarter_mean(arr[i])
    finally:
        method.train(was)
    return maps, conf


def run_probe(
    model_file: Any,
    data: Sequence[Any],
    kind: str,
    *,
    ids: Sequence[str] | None = None,
    seed: int = 0,
    noise_std: float | None = None,
    device: str = "auto",
    batch_size: int = 32,
    num_workers: int = 0,
) -> Any:
    """True-audio and probe maps of the model in ``model_file``: a SensitivityResult."""
    from avmodels.data import open_sources
    from avmodels.engine.checkpoint import build_model
    from avmodels.engine.distributed import pick_device
    from avmodels.metrics.sensitivity import sensitivity

    _check(kind)
    dev = pick_device(device)
    method, _ = build_model(model_file, dev)
    need = tuple(method.required_inputs())
    mods = need if kind == "swap" or "audio" in need else (*need, "audio")
    sources = open_sources(data, mods)
    rows = [sources.row_of(c) for c in ids] if ids is not None else None
    base = MethodDataset(sources, method.sample_transform(train=False), rows)
    name = method.cfg.get("data", {}).get("spectrogram_name")
    probe = ProbeDataset(base, kind, seed=seed, noise_std=noise_std, spectrogram_name=name)
    kw = {"device": dev, "batch_size": batch_size, "num_workers": num_workers}
    pos_maps, pos_conf = maps_and_confidences(method, base, **kw)
    neg_maps, neg_conf = maps_and_confidences(method, probe, **kw)
    return sensitivity(pos_maps, neg_maps, probe=kind, pos_conf=pos_conf, neg_conf=neg_conf)


class PairedDataset(MethodDataset):
    """Samples made of one row's frame and another row's sound: ``(video row, audio row, key)``.

    The extended sets' non-sounding samples (a test frame with another clip's
    audio) are read this way; the sample's ``clip_id`` is ``key``.
    """

    def __init__(self, base: MethodDataset, pairs: Sequence[tuple[int, int, str]]) -> None:
        super().__init__(base.sources, base.transform, [v for v, _, _ in pairs], base.seed)
        self.pairs = list(pairs)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        pos, epoch = key if isinstance(key, tuple) else (key, 0)
        vrow, arow, name = self.pairs[pos]
        sample = self.sources[vrow]
        other = self.sources[arow]
        for k in ("audio", "sample_rate", "spectrogram"):
            if k in other:
                sample[k] = other[k]
        sample["clip_id"] = name
        with seeded_rngs(sample_seed(self.seed, epoch, vrow)):
            out = self.transform(sample)
        out["clip_id"] = name
        return out
