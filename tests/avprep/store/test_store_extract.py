"""Integration: real ``avprep extract`` output (real ffmpeg) packed both ways, verified,
and read back; the SSPL rows agree with SSPL's definition of a spectrogram."""

from __future__ import annotations

import numpy as np
import pytest

from avprep.profiles import get_profile
from avprep.spectrogram import compute
from avprep.stages.extract import run_extract
from avprep.store import ShardDataset, SSPLDataset
from avprep.store.pack import pack
from avprep.store.verify import verify_store


@pytest.fixture(scope="module")
def extracted(media_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("extract") / "sspl"
    run_extract(media_dir, out, get_profile("sspl"), jobs=1, progress=False)
    return out


def test_pack_real_extraction_both_layouts(extracted, tmp_path):
    native = pack(extracted, tmp_path / "native", "train", jobs=1, progress=False)
    # clip_a and clip_b extract; the silent and the broken video fail and are listed
    assert native.rows == 2
    assert {c for c, _ in native.skipped} == {"silent", "broken"}
    assert verify_store(tmp_path / "native", progress=False).ok

    ds = ShardDataset(tmp_path / "native")
    assert ds.ids == ["clip_a", "clip_b"]
    s = ds[ds.row_of("clip_b")]
    assert s["frame"].shape == (256, 256, 3) and s["audio"].shape == (48000,)
    assert s["spectrogram"].shape == (3, 96, 64) and s["sample_rate"] == 16000
    assert 0 < s["frame_time"] < 4  # the middle frame of a 4 s video
    assert ds.attrs["profile"] == "sspl" and ds.attrs["spectrogram_name"] == "vggish-sspl"

    pack(extracted, tmp_path / "sspl", "10k", layout="sspl", jobs=1, progress=False)
    assert verify_store(tmp_path / "sspl", progress=False).ok
    sp = SSPLDataset(tmp_path / "sspl", "10k")
    assert sp.ids == ["clip_a", "clip_b"]
    for i in range(len(sp)):
        row = sp[i]
        # SSPL's spectrogram is VGGish of the normalised clip it stores beside it
        again = compute("vggish", row["audio"].astype(np.float64), 16000)
        np.testing.assert_allclose(row["spectrogram"], again, atol=2e-3)
        assert row["audio"].min() == pytest.approx(-1.0, abs=1e-6)
        assert 0.9 < row["audio"].max() < 1.0  # 2 * ptp / (ptp + 1e-3) - 1
        # the same frame through both layouts: SSPL squashes to 256 (already 256 here)
        assert np.abs(row["frame"].astype(int) - ds[i]["frame"].astype(int)).max() == 0
