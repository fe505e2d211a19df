"""Spectrograms against the originals' front ends (oracles run here, not copied)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import torch

from avprep.errors import ConfigError, UnknownNameError
from avprep.spectrogram import SPECTROGRAMS, compute, sspl_normalize


def _wave(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """A tone sweep plus noise, as int16 (what extract stores)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    x = 0.3 * np.sin(2 * np.pi * (300 + 400 * t) * t) + 0.05 * rng.standard_normal(t.size)
    return np.round(x * 32767).astype(np.int16)


def test_registry_names():
    assert set(SPECTROGRAMS.names()) == {"vggish", "vggish-sspl", "lvs", "htf", "ssltie", "mssl"}


def test_vggish_matches_torchvggish():
    from torchvggish import vggish_input

    w = _wave(3.0, 16000)
    ours = compute("vggish", w, 16000)
    ref = vggish_input.waveform_to_examples(w / 32768.0, 16000, return_tensor=False)
    assert ours.shape == (3, 96, 64) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)


def test_vggish_float_input_and_longer_clip():
    from torchvggish import vggish_input

    x = _wave(5.0, 16000, seed=3) / 32768.0
    ours = compute("vggish", x, 16000)
    ref = vggish_input.waveform_to_examples(x, 16000, return_tensor=False)
    assert ours.shape == ref.shape == (5, 96, 64)
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)


def test_vggish_sspl_is_vggish_of_sspl_normalised_audio():
    from torchvggish import vggish_input

    w = _wave(3.0, 16000, seed=1)
    # SSPL: librosa float32 (int16 / 32768), normalize_audio, then waveform_to_examples
    x = (w / 32768.0).astype(np.float32)
    x -= x.min()
    x /= x.max() + 1e-3
    x -= 0.5
    x *= 2
    ref = vggish_input.waveform_to_examples(x, 16000, return_tensor=False)
    ours = compute("vggish-sspl", w, 16000)
    assert ours.shape == (3, 96, 64)
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)
    # and the normalisation differs from plain vggish (the test would catch a swap)
    assert np.abs(ours - compute("vggish", w, 16000)).max() > 0.1


def test_sspl_normalize_range():
    y = sspl_normalize(np.array([-3.0, 0.0, 5.0]))
    assert y[0] == pytest.approx(-1.0) and y[-1] < 1.0 and y[-1] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    ("name", "rate", "shape"), [("lvs", 16000, (257, 200)), ("htf", 22050, (257, 276))]
)
def test_scipy_spectrogram_matches_scipy(name, rate, shape):
    w = _wave(3.0, rate, seed=2) // 2 + 3000  # a DC offset: scipy removes each segment's mean
    x = np.clip(w / 32767.0, -1, 1)  # EZ-VSL / HTF read int16 / 32767
    _, _, s = scipy.signal.spectrogram(x, rate, nperseg=512, noverlap=274)
    ref = np.log(s + 1e-7) / 12.0
    ours = compute(name, w, rate)
    assert ours.shape == shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=1e-6)


def _ssltie_oracle(w: np.ndarray, rate: int) -> np.ndarray:
    """torchaudio MelSpectrogram(n_fft=512, hop=239, n_mels=257, normalized=True) + dB, in
    torch ops following torchaudio's definition (torchaudio itself is not installed)."""
    x = torch.tensor(w / 32768.0, dtype=torch.float64)  # torchaudio.load scales by 1/32768
    want = rate * 10
    if x.shape[0] < want:
        x = x.repeat(int(want / x.shape[0]) + 1)
    x = x[:want]
    win = torch.hann_window(512, dtype=torch.float64)
    st = torch.stft(x, 512, 239, 512, win, center=True, pad_mode="reflect", return_complex=True)
    power = (st / win.pow(2).sum().sqrt()).abs().pow(2)
    m_max = 2595.0 * math.log10(1.0 + (rate // 2) / 700.0)
    m_pts = torch.linspace(0.0, m_max, 259, dtype=torch.float64)
    f_pts = 700.0 * (10 ** (m_pts / 2595.0) - 1.0)
    all_freqs = torch.linspace(0, rate // 2, 257, dtype=torch.float64)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)
    fb = torch.clamp(torch.min(-slopes[:, :-2] / f_diff[:-1], slopes[:, 2:] / f_diff[1:]), min=0)
    mel = (power.transpose(-1, -2) @ fb).transpose(-1, -2)
    return (10.0 * torch.log10(torch.clamp(mel, min=1e-10)))[None].numpy()


def test_ssltie_matches_torchaudio_definition():
    w = _wave(3.0, 16000, seed=4)
    ours = compute("ssltie", w, 16000)
    assert ours.shape == (1, 257, 670)
    np.testing.assert_allclose(ours, _ssltie_oracle(w, 16000), atol=1e-3, rtol=1e-5)
    # the 3 s clip is tiled to 10 s: the spectrogram repeats with the clip's period
    assert np.allclose(ours[0, :, 5:150], compute("ssltie", np.tile(w, 4), 16000)[0, :, 5:150])


@pytest.mark.slow
def test_mssl_matches_librosa():
    librosa = pytest.importorskip("librosa")
    w = _wave(5.0, 22050, seed=5)
    y = (w / 32768.0).astype(np.float32)
    ref = librosa.feature.melspectrogram(
        y=y, sr=22050, n_fft=882, hop_length=441, n_mels=64, pad_mode="reflect"
    )
    ref = np.log(ref + np.spacing(1)).T
    ours = compute("mssl", w, 22050)
    assert ours.shape == (251, 64)
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)


def test_compute_errors():
    with pytest.raises(ConfigError, match="16000 Hz"):
        compute("vggish", _wave(3.0, 22050), 22050)
    with pytest.raises(UnknownNameError, match="valid: vggish"):
        compute("nope", _wave(1.0, 16000), 16000)
    with pytest.raises(ConfigError, match="mono"):
        compute("lvs", np.zeros((2, 100), np.int16), 16000)
    with pytest.raises(ConfigError, match="too short"):
        compute("vggish", np.zeros(100, np.int16), 16000)
