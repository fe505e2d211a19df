"""SSL-TIE's and Hear-The-Flow's audio per split, as their loaders cut it.

Restated from the originals' data loaders (not their code):

- SSL-TIE, Flickr: training takes the first 4 s of the track, testing the
  whole track; both are then tiled (``int(10 sr / len) + 1`` times) and cut
  to 10 s. VGG-SS test: the first 10 s of the test wav, tiled if shorter.
- Hear-The-Flow, test: ``x[int((floor(L/sr)/2 - 1.5) sr) : int((floor(L/sr)/2 + 1.5) sr)]``
  of the whole 22,050 Hz track (Python slicing: a negative start counts from
  the end), then tiled to 3 s.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from avprep.cli import cli
from avprep.ffmpeg import ffmpeg_binary
from avprep.manifest import Manifest
from avprep.profiles import get_profile
from avprep.stages.audio import fit_length, read_wav
from avprep.stages.audio_window import SignalFacts, plan_window
from avprep.stages.extract import extract_clip
from tests.media import make_video


def _decode_all(path, rate: int) -> np.ndarray:
    out = subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1",
         "-ar", str(rate), "-f", "s16le", "pipe:1"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(out, "<i2")


def _tile_to(x: np.ndarray, n: int) -> np.ndarray:
    if x.shape[0] < n:
        x = np.tile(x, int(n / x.shape[0]) + 1)
    return x[:n]


@pytest.fixture(scope="module")
def clip6(tmp_path_factory):
    root = tmp_path_factory.mktemp("split")
    return make_video(root / "c.mp4", seconds=6.0, size=(64, 48), sample_rate=22050, tone_hz=330)


def test_test_split_takes_the_profiles_test_variant():
    assert get_profile("ssltie", split="test").name == "ssltie-vggss-test"
    assert get_profile("ssltie-flickr", split="test").name == "ssltie-flickr-test"
    assert get_profile("htf", split="test").name == "htf-test"
    assert get_profile("sspl", split="test").name == "sspl"  # SSPL cuts both alike
    assert get_profile("htf", split="train").audio_window == "centre"
    # overrides still apply to the variant
    assert get_profile("htf", split="test", flow="none").flow is None


def test_ssltie_flickr_train_and_test_windows(clip6, tmp_path):
    rate = 16000
    full = _decode_all(clip6, rate)
    assert full.size == 6 * rate
    extract_clip(clip6, tmp_path, get_profile("ssltie-flickr"), clip_id="tr")
    train_wav, _ = read_wav(tmp_path / "audio/tr.wav")
    np.testing.assert_array_equal(train_wav, full[: 4 * rate])  # the first 4 s
    extract_clip(clip6, tmp_path, get_profile("ssltie-flickr", split="test"), clip_id="te")
    test_wav, _ = read_wav(tmp_path / "audio/te.wav")
    np.testing.assert_array_equal(test_wav, _tile_to(full, 10 * rate))  # whole, tiled to 10 s
    spec = np.load(tmp_path / "spectrograms/ssltie/tr.npy")
    assert spec.shape == (1, 257, 670)  # the 4 s tiled to 10 s by the front end


def test_htf_test_window_on_the_decoded_track(clip6, tmp_path):
    rate = 22050
    full = _decode_all(clip6, rate)
    rec = extract_clip(clip6, tmp_path, get_profile("htf", split="test", flow="none"),
                       clip_id="h")  # fmt: skip
    wav, _ = read_wav(tmp_path / "audio/h.wav")
    lo, hi = (
        int((float(full.size // rate) / 2 - 1.5) * rate),
        int((float(full.size // rate) / 2 + 1.5) * rate),
    )
    np.testing.assert_array_equal(wav, _tile_to(full[lo:hi], 3 * rate))
    assert rec.meta["audio_start_sample"] == lo == int(1.5 * rate)


@pytest.mark.parametrize("seconds", [0.4, 1.0, 1.5, 2.5, 2.999, 3.0, 3.7, 4.2, 6.0, 9.99])
def test_htf_centre_floor_matches_python_slicing(seconds):
    rate = 22050
    x = np.arange(int(seconds * rate))
    lo = int((float(x.size // rate) / 2 - 1.5) * rate)
    hi = int((float(x.size // rate) / 2 + 1.5) * rate)
    want = _tile_to(x[lo:hi], 3 * rate)  # the original: slice, then tile to 3 s
    w = plan_window("centre-floor", 3.0, SignalFacts(x.size, rate, "decoded"))
    cut = x[w.start :] if w.take is None else x[w.start : w.start + w.take]
    np.testing.assert_array_equal(fit_length(cut, 3 * rate, "tile-start"), want)


def test_extract_cli_split_test_records_the_variant(clip6, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "c.mp4").symlink_to(clip6)
    out = tmp_path / "out"
    args = ["extract", "--in", str(src), "--out", str(out), "--profile", "htf", "--split",
            "test", "--flow", "none", "--no-progress"]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    header = Manifest(out / "manifest.jsonl").header
    assert header["profile"] == "htf-test"
    assert header["profile_params"]["audio_window"] == "centre-floor"
