"""``pack-h5`` on a released test folder (Flickr's ``5k_labeled/Data/{frames,audio}``):
frames kept byte for byte, audio cut SSPL's way, packed without an extraction run."""

from __future__ import annotations

import wave

import cv2
import numpy as np
from click.testing import CliRunner

from avprep.cli import cli
from avprep.store import open_dataset
from tests.coded_media import click_track

RATE_IN = 44100


def _released(tmp_path):
    data = tmp_path / "5k_labeled" / "Data"
    (data / "frames").mkdir(parents=True)
    (data / "audio").mkdir()
    rng = np.random.default_rng(0)
    for cid in ("1000", "2000", "3000"):
        img = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
        cv2.imwrite(str(data / "frames" / f"{cid}.jpg"), img)
    for cid, seconds in (("1000", 6.0), ("2000", 2.0)):  # 3000 has no audio
        with wave.open(str(data / "audio" / f"{cid}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE_IN)
            w.writeframes(click_track(seconds, RATE_IN, [seconds / 2]).tobytes())
    return data


def test_pack_h5_packs_a_released_folder_directly(tmp_path):
    data = _released(tmp_path)
    out = tmp_path / "h5"
    ids = tmp_path / "ids.txt"
    ids.write_text("2000\n1000\n3000\n")
    res = CliRunner().invoke(cli, ["pack-h5", "--in", str(data), "--out", str(out), "--split",
                                   "test", "--ids", str(ids)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "released folder: 2 clip(s) prepared, 1 failed" in res.output
    ds = open_dataset(out)
    assert ds.ids == ["2000", "1000"]  # the list's order; 3000 (no audio) skipped
    row = ds[ds.row_of("1000")]
    # the released JPEG itself: native size, the pixels cv2 decodes from the file
    want = cv2.cvtColor(cv2.imread(str(data / "frames" / "1000.jpg")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(row["frame"], want)
    # SSPL's audio: 16 kHz, the centre 3 s (the click at 3.0 s of 6 s sits at 1.5 s)
    audio = np.asarray(row["audio"], dtype=np.float64).ravel()
    assert audio.shape == (48000,)
    assert abs(int(np.argmax(np.abs(audio))) - 24000) <= 40
    assert np.asarray(row["spectrogram"]).shape == (3, 96, 64)
    # a 2 s track is tiled (SSPL: tile, then the centre)
    short = np.asarray(ds[ds.row_of("2000")]["audio"]).ravel()
    assert short.shape == (48000,) and np.abs(short).max() > 0
