"""avprep verify: a clean store passes; truncated, corrupted, renamed, NaN-holding,
duplicate-id, undecodable-frame and undecodable-audio stores fail with a clear message
and exit 1."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from avprep.cli import cli
from avprep.store.pack import pack
from avprep.store.verify import verify_store
from tests.store_fixtures import make_extract_dir


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    ex, _ = make_extract_dir(root / "ex", 9, frame_size=(40, 48), flow=True)
    pack(ex, root / "native", "train", rows_per_shard=3, jobs=1, progress=False)
    pack(ex, root / "sspl", "10k", layout="sspl", rows_per_shard=5, jobs=1, progress=False)
    return root


@pytest.fixture()
def native(stores, tmp_path):
    dst = tmp_path / "native"
    shutil.copytree(stores / "native", dst)
    return dst


@pytest.fixture()
def sspl_store(stores, tmp_path):
    dst = tmp_path / "sspl"
    shutil.copytree(stores / "sspl", dst)
    return dst


def _verify_cli(folder, *extra):
    return CliRunner().invoke(cli, ["verify", str(folder), *extra])


def _problems(folder, **kw):
    return "\n".join(verify_store(folder, progress=False, **kw).problems)


def test_clean_stores_pass(native, sspl_store):
    for folder in (native, sspl_store):
        res = _verify_cli(folder)
        assert res.exit_code == 0, res.output
        assert "OK: no problems found" in res.output
    rep = verify_store(native, progress=False)
    assert rep.layout == "native" and rep.rows == 9 and rep.shards == 3 and rep.ok


def test_truncated_shard(native):
    shard = native / "train-00001-of-00003.h5"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    res = _verify_cli(native)
    assert res.exit_code == 1
    assert "train-00001-of-00003.h5" in res.output and "truncated" in res.output
    assert "sha256 differs" in res.output
    assert "problem(s) found" in str(res.exception) + res.output


def test_corrupted_bytes_fail_the_checksum(native):
    shard = native / "train-00002-of-00003.h5"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    problems = _problems(native)
    assert "train-00002-of-00003.h5: sha256 differs from index.json" in problems


def test_renamed_shard(native):
    (native / "train-00000-of-00003.h5").rename(native / "train-00000.h5")
    res = _verify_cli(native)
    assert res.exit_code == 1
    assert "train-00000-of-00003.h5 is missing" in res.output
    assert "train-00000.h5 is not listed in index.json" in res.output


def test_undecodable_frame_nan_and_duplicate_ids(native):
    shard = native / "train-00001-of-00003.h5"
    with h5py.File(shard, "r+") as f:
        off = f["frame_offset"][:]
        # keep the JPEG start marker, destroy the rest of frame 1
        f["frame_jpeg"][off[1] + 2 : off[2]] = 0
        spec = f["spectrogram"][2]
        spec[0, 0, 0] = np.nan
        f["spectrogram"][2] = spec
        f["clip_id"][0] = "clip00000"  # also in shard 0
    problems = _problems(native, hashes=False)
    assert "1 frame(s) not decodable, e.g. clip00004" in problems
    assert "spectrogram: 1 row(s) with NaN/inf (first rows [2])" in problems
    assert "1 clip id(s) appear more than once" in problems and "clip00000" in problems


def test_undecodable_or_short_flac_audio(native):
    shard = native / "train-00002-of-00003.h5"
    with h5py.File(shard, "r+") as f:
        off = f["audio_offset"][:]
        f["audio_flac"][off[0] + 4 : off[1]] = 0  # "fLaC" kept, the stream destroyed
        f.attrs["audio_length"] = 47999  # and every other clip is now one sample too long
    problems = _problems(native, hashes=False)
    assert "train-00002-of-00003.h5: 3 audio clip(s) not decodable, e.g. clip00006" in problems
    with h5py.File(shard, "r+") as f:
        f["audio_offset"][1] = f["audio_offset"][2] + 1
    assert "audio_offset table is inconsistent with audio_flac" in _problems(native, hashes=False)


def test_missing_index_and_not_a_store(native, tmp_path):
    (native / "index.json").unlink()
    res = _verify_cli(native)
    assert res.exit_code == 1 and "index.json not found" in res.output
    res = _verify_cli(tmp_path / "nowhere")
    assert res.exit_code != 0


def test_leftover_temp_is_a_warning_only(native):
    (native / ".tmp-train-00001-of-00003.xyz.h5").write_bytes(b"partial")
    res = _verify_cli(native)
    assert res.exit_code == 0
    assert "warning: 1 temporary file(s) from an interrupted pack" in res.output


def test_sspl_truncated_file_and_missing_id_list(sspl_store):
    audios = sspl_store / "h5py_train_audios_10k_2.h5"
    audios.write_bytes(audios.read_bytes()[:4096])
    (sspl_store / "flickr_train_videos_10k.csv").unlink()
    res = _verify_cli(sspl_store)
    assert res.exit_code == 1
    assert "h5py_train_audios_10k_2.h5" in res.output and "truncated" in res.output
    assert "id list flickr_train_videos_10k.csv is missing" in res.output


def test_sspl_nan_and_out_of_range_frames(sspl_store):
    with h5py.File(sspl_store / "h5py_train_frames_10k_1.h5", "r+") as f:
        f["train_frames"][3, 0, 0, 0] = 300.0
    with h5py.File(sspl_store / "h5py_train_spects_10k_2.h5", "r+") as f:
        f["train_spects"][1, 0, 0, 0] = np.inf
    problems = _problems(sspl_store, hashes=False)
    assert (
        "train_frames: 1 row(s) with NaN/inf or values outside 0-255 (first rows [3])" in problems
    )
    assert "train_spects: 1 row(s) with NaN/inf (first rows [1])" in problems


def test_sspl_files_without_index_are_checked_structurally(sspl_store):
    # as SSPL's own script writes them: no index.json, no avprep_* attributes (files
    # avprep wrote without their index are an unfinished pack: test_reliability.py)
    (sspl_store / "index.json").unlink()
    for p in sspl_store.glob("h5py_*.h5"):
        with h5py.File(p, "r+") as f:
            for k in [k for k in f.attrs if k.startswith("avprep_")]:
                del f.attrs[k]
    rep = verify_store(sspl_store, progress=False)
    assert rep.ok, rep.problems
    assert rep.rows == 9 and rep.shards == 2
    assert any("sha256 cannot be checked" in w for w in rep.warnings)
    with h5py.File(sspl_store / "h5py_train_spects_10k_1.h5", "a") as f:
        del f["train_spects"]
        f.create_dataset("train_spects", data=np.zeros((5, 3, 96, 32), np.float32))
    assert "SSPL expects (N, 3, 96, 64) float32" in _problems(sspl_store)


def test_verify_json_report(native):
    res = _verify_cli(native, "--json", "--no-hash", "--no-content")
    assert res.exit_code == 0
    assert '"ok": true' in res.output and '"layout": "native"' in res.output
