"""Audio clips: the window each original takes, tiling of short tracks, int16 WAV.

ffmpeg decodes, downmixes (``-ac 1``: the mean of the channels) and resamples
(libswresample); :mod:`avprep.stages.audio_window` decides the window; this
module brings what ffmpeg returned to exactly ``audio_seconds × rate`` samples the
way the profile's original does for short tracks, and writes a mono 16-bit
PCM WAV.

Short tracks: SSPL tiles ``int(N / len) + 1`` times and takes the centre
(``tile-centre``); EZ-VSL, HTF and SSL-TIE tile the same way and take the
start (``tile-start``); ``pad`` appends zeros.
"""

from __future__ import annotations

import os
import wave

import numpy as np

from avprep.atomic import atomic_path
from avprep.errors import MediaError


def fit_length(samples: np.ndarray, n: int, short: str) -> np.ndarray:
    """Exactly ``n`` samples: cut, or tile/pad a short clip as the profile says."""
    length = samples.shape[0]
    if length == 0:
        raise MediaError("the audio stream decoded to no samples")
    if length >= n:
        return samples[:n]
    if short == "pad":
        return np.concatenate([samples, np.zeros(n - length, dtype=samples.dtype)])
    tiled = np.tile(samples, int(n / length) + 1)
    if short == "tile-centre":
        start = int(tiled.shape[0] / 2) - int(n / 2)
        return tiled[start : start + n]
    return tiled[:n]


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono int16 PCM atomically."""
    data = np.ascontiguousarray(samples, dtype="<i2")
    with atomic_path(path) as tmp:
        with wave.open(os.fspath(tmp), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(int(sample_rate))
            w.writeframes(data.tobytes())


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """(int16 samples, rate) of a mono 16-bit WAV written by :func:`write_wav`."""
    with wave.open(os.fspath(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise MediaError(f"{path}: expected 16-bit PCM")
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        if w.getnchannels() > 1:
            data = data.reshape(-1, w.getnchannels()).mean(axis=1).astype(np.int16)
    return data.astype(np.int16), rate
