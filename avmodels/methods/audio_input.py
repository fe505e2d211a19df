"""The spectrogram input of SSL-TIE and Hear-The-Flow: from the store or from the audio.

``data.spectrogram: store`` reads the spectrogram the extraction profile wrote
into the shards (``ssltie``: mel 257 bins + dB; ``htf``: scipy STFT, log).
``data.spectrogram: audio`` computes it on the fly from the stored waveform with
the extraction engineer's front ends (``avprep.spectrogram.compute``), after
tiling the audio to ``data.audio_seconds`` as the originals do (SSL-TIE tiles
its 3 s clips to 10 s; HTF to 3 s). ``data.spec_divisor`` divides the result
(HTF/LVS divide the log-spectrogram by 12). No front end is duplicated here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from avprep.errors import ConfigError, InputError

SOURCES = ("store", "audio")


def tile_audio(wave: np.ndarray, sample_rate: int, seconds: float) -> np.ndarray:
    """Repeat a short clip and cut it to ``seconds`` (SSL-TIE/LVS/HTF's rule)."""
    want = int(sample_rate * seconds)
    if want <= 0:
        raise ConfigError(f"audio_seconds must be > 0, got {seconds}")
    if wave.shape[0] == 0:
        raise InputError("empty audio clip")
    if wave.shape[0] < want:
        wave = np.tile(wave, int(want / wave.shape[0]) + 1)
    return wave[:want]


class SpectrogramInput:
    """A picklable callable: store sample -> (1, F, T) float32 tensor."""

    def __init__(
        self,
        source: str,
        name: str,
        audio_seconds: float | None = None,
        divisor: float = 1.0,
    ) -> None:
        if source not in SOURCES:
            raise ConfigError(f"data.spectrogram {source!r}; valid: {', '.join(SOURCES)}")
        if not divisor:
            raise ConfigError("data.spec_divisor must be non-zero")
        self.source, self.name = source, name
        self.audio_seconds, self.divisor = audio_seconds, float(divisor)

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> SpectrogramInput:
        """The input a method's ``data`` section names (``spectrogram``, ``spectrogram_name``,
        ``audio_seconds``, ``spec_divisor``)."""
        return cls(
            data["spectrogram"],
            data["spectrogram_name"],
            audio_seconds=data.get("audio_seconds"),
            divisor=float(data.get("spec_divisor", 1.0)),
        )

    def __call__(self, sample: dict[str, Any]) -> torch.Tensor:
        if self.source == "store":
            if sample.get("spectrogram") is None:
                raise InputError(
                    f"clip {sample.get('clip_id')!r} has no stored spectrogram; extract with the "
                    "method's profile or set data.spectrogram=audio"
                )
            spec = np.asarray(sample["spectrogram"], dtype=np.float32)
        else:
            spec = self._compute(sample)
        if spec.ndim == 2:
            spec = spec[None]
        if spec.ndim != 3:
            raise InputError(f"expected a (F, T) or (1, F, T) spectrogram, got {spec.shape}")
        t = torch.from_numpy(np.ascontiguousarray(spec, dtype=np.float32))
        return t / self.divisor if self.divisor != 1.0 else t

    def _compute(self, sample: dict[str, Any]) -> np.ndarray:
        try:
            from avprep.spectrogram import compute
        except ImportError as exc:  # the extraction package is part of this project
            raise ConfigError(
                "data.spectrogram=audio needs avprep.spectrogram, which is not available"
            ) from exc
        wave = np.asarray(sample["audio"], dtype=np.float32)
        sr = int(sample["sample_rate"])
        if self.audio_seconds:
            wave = tile_audio(wave, sr, self.audio_seconds)
        return np.asarray(compute(self.name, wave, sr), dtype=np.float32)


class FrameSpectrogramSample:
    """Store sample -> {clip_id, frame (3, S, S), spectrogram (1, F, T)}.

    The per-sample transform of the two-stream methods: ``frame`` transforms the
    stored frame, the spectrogram comes from :meth:`SpectrogramInput.from_config`,
    and ``spec_aug`` (a callable on the (1, F, T) tensor, or None) runs on it
    before the frame is transformed (the order of the random draws).
    """

    def __init__(
        self,
        data: Mapping[str, Any],
        frame: Callable[[np.ndarray], torch.Tensor],
        spec_aug: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.frame = frame
        self.spec = SpectrogramInput.from_config(data)
        self.spec_aug = spec_aug

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        spec = self.spec(sample)
        if self.spec_aug is not None:
            spec = self.spec_aug(spec)
        return {
            "clip_id": str(sample["clip_id"]),
            "frame": self.frame(sample["frame"]),
            "spectrogram": spec,
        }
