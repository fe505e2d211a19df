"""1 fps (frame, own audio) pairs for AVE / AudioSet-instrument: real ffmpeg extraction ->
avprep pairs -> pack-h5 -> the reader, each pair's audio the right second of the clip."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from avprep.cli import cli
from avprep.frame_pairs import split_pairs, window_start
from avprep.manifest import Manifest
from avprep.stages.audio import read_wav
from avprep.store import open_dataset
from tests.media import make_video


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    make_video(root / "videos" / "clipA.mp4", seconds=4.0, size=(96, 64), sample_rate=22050)
    args = ["extract", "--in", str(root / "videos"), "--out", str(root / "x"),
            "--profile", "mssl", "--frame-at", "fps:1", "--audio-window", "start",
            "--audio-seconds", "4", "--image-size", "64"]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    return root


def test_pairs_carry_each_frame_with_its_own_second(extracted, tmp_path):
    src = extracted / "x"
    rec = Manifest(src / "manifest.jsonl").get("clipA")
    times = rec.meta["frame_times"]
    assert len(times) >= 3
    stored, rate = read_wav(src / rec.outputs["audio"])
    a0 = rec.meta["audio_start"]
    out = tmp_path / "pairs"
    res = CliRunner().invoke(cli, ["pairs", "--in", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    man = Manifest(out / "manifest.jsonl")
    ok = [r for r in man.records() if r.status == "ok"]
    failed = [r for r in man.records() if r.status == "failed"]
    assert len(ok) + len(failed) == len(times) and len(ok) >= 3
    for r in ok:
        i = r.meta["pair_index"]
        assert r.clip_id == f"clipA.t{i:02d}" and r.meta["parent"] == "clipA"
        start = int(np.floor(times[i] + 1e-6))
        assert r.meta["audio_start"] == start
        piece, _ = read_wav(out / r.outputs["audio"])
        s0 = int(round((start - a0) * rate))
        np.testing.assert_array_equal(piece, stored[s0 : s0 + rate])  # its own 1 s, exactly
        spec = np.load(out / r.outputs["spectrogram"])
        assert spec.shape == (51, 64)  # 1 s of the mssl log-mel at 22,050 Hz
    for r in failed:  # never padded: the reason is recorded
        assert "outside the stored audio" in r.error
    # packed and read like any extraction
    h5 = tmp_path / "h5"
    res = CliRunner().invoke(
        cli, ["pack-h5", "--in", str(out), "--out", str(h5), "--split", "test"]
    )
    assert res.exit_code == 0, res.output
    ds = open_dataset(h5)
    assert sorted(ds.ids) == sorted(r.clip_id for r in ok)
    sample = ds[ds.ids.index("clipA.t01")]
    assert sample["audio"].shape[0] == rate and sample["frame"].shape[:2] == (64, 64)
    params = json.loads(json.dumps(man.header["profile_params"]))
    assert params["audio_seconds"] == 1.0 and params["frame_at"] == "pairs"
    # a rerun keeps what is there
    again = split_pairs(src, out, progress=False)
    assert again["kept"] == len(ok) and again["pairs"] == 0


def test_windows_and_refusals(extracted, tmp_path):
    assert window_start(3.04, 1.0, "aligned") == 3.0
    assert window_start(2.9999999, 1.0, "aligned") == 3.0  # float noise at the second
    assert window_start(3.5, 1.0, "centred") == 3.0
    res = CliRunner().invoke(cli, ["pairs", "--in", str(extracted / "x"), "--out", str(tmp_path / "p"),
                                   "--seconds", "5"])  # fmt: skip
    assert res.exit_code != 0  # every 5 s window leaves the 4 s clip: nothing written
    failed = [r for r in Manifest(tmp_path / "p" / "manifest.jsonl").records()]
    assert failed and all(r.status == "failed" for r in failed)


def test_pairs_of_the_listed_clips_only(extracted, tmp_path):
    """One pairs folder per AVE split: --ids takes the split list (its & format detected)."""
    listed = tmp_path / "testSet.txt"
    listed.write_text("Church bell&clipA&good&0&4\nDog barking&notextracted&good&1&3\n")
    out = tmp_path / "p"
    res = CliRunner().invoke(cli, ["pairs", "--in", str(extracted / "x"), "--out", str(out),
                                   "--ids", str(listed), "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert res.output.startswith("1 clips ->")
    assert "1 listed clips are not in the extraction" in res.output
    parents = {r.meta.get("parent") for r in Manifest(out / "manifest.jsonl").records()}
    assert parents == {"clipA"}
    other = tmp_path / "other.txt"
    other.write_text("Dog barking&notextracted&good&1&3\n")
    res = CliRunner().invoke(cli, ["pairs", "--in", str(extracted / "x"), "--out",
                                   str(tmp_path / "q"), "--ids", str(other)])  # fmt: skip
    assert res.exit_code != 0 and "no pair was written" in res.output
