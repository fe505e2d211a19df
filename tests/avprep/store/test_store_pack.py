"""avprep pack-h5: both layouts (names, keys, dtypes, shapes, row -> shard mapping),
FLAC audio bit-exact to the WAV, --ids order (files in any list format, registry names)
and missing ids, resume after interruption, determinism, bounded memory."""

from __future__ import annotations

import io
import json
import os
import shutil
import tracemalloc

import cv2
import h5py
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from avprep.atomic import sha256_file
from avprep.cli import cli
from avprep.errors import ConfigError, InputError, StoreError
from avprep.store import native, sspl
from avprep.store.pack import pack
from tests.store_fixtures import make_extract_dir


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """25 clips (small frames, with flow), one of which failed extraction."""
    root = tmp_path_factory.mktemp("ex")
    return make_extract_dir(root / "ex", 25, frame_size=(48, 64), flow=True, failed=["clip00003"])


@pytest.fixture(scope="module")
def extracted30(tmp_path_factory):
    """30 good clips at SSPL's sizes: 144k/10 shards simulated as 30 rows / 10 shards."""
    root = tmp_path_factory.mktemp("ex30")
    return make_extract_dir(root / "ex", 30, frame_size=(120, 160))


def _files(folder):
    return sorted(p.name for p in folder.iterdir() if p.name != ".pack-h5.lock")


def test_native_layout_names_dtypes_and_row_mapping(extracted, tmp_path):
    ex, ok_ids = extracted
    out = tmp_path / "native"
    res = pack(ex, out, "train", rows_per_shard=3, jobs=1, progress=False)
    assert res.rows == 24 and len(res.shards) == 8  # 25 clips - 1 failed, 3 rows each
    assert res.skipped == [("clip00003", "extraction failed: MediaError: no audio stream")]
    assert _files(out) == ["index.json"] + [f"train-{k:05d}-of-00008.h5" for k in range(8)]

    index = json.loads((out / "index.json").read_text())
    assert index["layout"] == "native" and index["rows"] == 24 and index["rows_per_shard"] == 3
    assert index["skipped"] == [
        {"clip_id": "clip00003", "reason": "extraction failed: MediaError: no audio stream"}
    ]
    manifest_sha = sha256_file(ex / "manifest.jsonl")
    ids = sorted(ok_ids)
    for k, entry in enumerate(index["shards"]):
        path = out / entry["file"]
        assert entry["sha256"] == sha256_file(path) and entry["bytes"] == path.stat().st_size
        assert entry["row_start"] == 3 * k and entry["rows"] == 3
        with h5py.File(path, "r") as f:
            a = dict(f.attrs)
            assert a["format"] == "avprep-native" and a["format_version"] == 2
            assert a["avprep_version"] and a["source_manifest_sha256"] == manifest_sha
            assert json.loads(a["profile_params"])["sample_rate"] == 16000
            assert a["profile"] == "sspl" and a["frames"] == "jpeg" and a["sample_rate"] == 16000
            assert a["audio_encoding"] == "flac" and a["audio_length"] == 48000
            assert a["shard"] == k and a["row_start"] == 3 * k and a["rows"] == 3
            assert f["clip_id"].dtype.kind == "O"
            assert "audio" not in f  # FLAC by default, not int16 PCM
            assert f["audio_flac"].dtype == np.uint8 and f["audio_flac"].compression is None
            assert f["audio_offset"].shape == (4,) and f["audio_offset"][0] == 0
            assert f["audio_offset"][3] == f["audio_flac"].shape[0]
            aoff = f["audio_offset"][:]
            assert f["spectrogram"].dtype == np.float16 and f["spectrogram"].chunks == (
                1,
                3,
                96,
                64,
            )
            assert f["spectrogram"].attrs["name"] == "vggish"
            assert f["flow"].dtype == np.float16 and f["flow"].shape == (3, 2, 48, 64)
            assert f["frame_jpeg"].dtype == np.uint8 and f["frame_offset"].shape == (4,)
            off = f["frame_offset"][:]
            # row r of the split is row r % 3 of shard r // 3
            for local in range(3):
                r = 3 * k + local
                cid = ids[r]
                assert f["clip_id"][local].decode() == cid
                jpeg = f["frame_jpeg"][off[local] : off[local + 1]].tobytes()
                assert jpeg == (ex / "frames" / f"{cid}.jpg").read_bytes()
                # FLAC decodes bit-exactly to the WAV's int16 samples, with either decoder
                pcm, _ = sf.read(ex / "audio" / f"{cid}.wav", dtype="int16")
                flac = f["audio_flac"][aoff[local] : aoff[local + 1]].tobytes()
                assert flac[:4] == b"fLaC" and len(flac) < pcm.nbytes
                for reference in (False, True):
                    got = native.decode_flac(flac, reference=reference)
                    assert got.dtype == np.int16 and np.array_equal(got, pcm)
                info = sf.info(io.BytesIO(flac))
                assert (info.format, info.subtype, info.channels) == ("FLAC", "PCM_16", 1)
                assert info.samplerate == 16000 and info.frames == 48000
                spec = np.load(ex / "spectrograms" / "vggish" / f"{cid}.npy")
                assert np.array_equal(f["spectrogram"][local], spec.astype(np.float16))
                flow = np.load(ex / "flow" / f"{cid}.npy")
                assert np.array_equal(f["flow"][local], flow)
                meta = json.loads(f["meta"][local])
                assert f["frame_time"][local] == meta["frame_time"] == 1.5 + 0.01 * int(cid[4:])
                assert f["audio_start"][local] == meta["audio_start"]


def test_sspl_layout_144k_via_cli_holds_14400_rows_a_shard(extracted30, tmp_path):
    """--shards 10 with SSPL's layout: 14,400 rows a shard (its loader's rule), so 30 rows
    make one shard numbered 1, and the summary says which --num_train to set."""
    ex, ids = extracted30
    out = tmp_path / "144k_unlabeled"
    args = ["pack-h5", "--in", str(ex), "--out", str(out), "--split", "144k", "--shards", "10",
            "--layout", "sspl", "--jobs", "1"]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "packed 30 rows" in res.output and "set --num_train 30" in res.output
    names = {f"h5py_train_{kind}_144k_{k}.h5" for kind in sspl.KINDS for k in range(1, 2)}
    assert set(_files(out)) == names | {"index.json", "flickr_train_videos_144k.csv"}
    assert (out / "flickr_train_videos_144k.csv").read_text() == "".join(f"{i}\n" for i in ids)
    for k in range(1, 2):
        with (
            h5py.File(out / f"h5py_train_frames_144k_{k}.h5", "r") as ff,
            h5py.File(out / f"h5py_train_audios_144k_{k}.h5", "r") as fa,
            h5py.File(out / f"h5py_train_spects_144k_{k}.h5", "r") as fs,
        ):
            assert list(ff) == ["train_frames"] and list(fa) == ["train_audios"]
            assert list(fs) == ["train_spects"]
            fr, au, sp = ff["train_frames"], fa["train_audios"], fs["train_spects"]
            assert fr.shape == (30, 256, 256, 3) and fr.dtype == np.float32
            assert au.shape == (30, 48000) and au.dtype == np.float32
            assert sp.shape == (30, 3, 96, 64) and sp.dtype == np.float32
            # contiguous and unfiltered, as SSPL's script writes them
            assert fr.chunks is None and au.chunks is None and fr.compression is None
            # SSPL's loader: row index -> file index // 14400 + 1, row index % 14400
            for local in range(30):
                cid = ids[(k - 1) * 14400 + local]
                bgr = cv2.imread(str(ex / "frames" / f"{cid}.jpg"))
                bgr = cv2.resize(bgr, (256, 256), interpolation=cv2.INTER_CUBIC)
                want = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32)
                assert np.array_equal(fr[local], want)
                pcm, _ = sf.read(ex / "audio" / f"{cid}.wav", dtype="float32")
                x = pcm.astype(np.float64)
                ref = (x - x.min()) / (x.max() - x.min() + 1e-3) * 2 - 1
                np.testing.assert_allclose(au[local], ref, atol=2e-6)
                spec = np.load(ex / "spectrograms" / "vggish" / f"{cid}.npy")
                assert np.array_equal(sp[local], spec)


def test_sspl_unsharded_10k_names(extracted30, tmp_path):
    ex, _ = extracted30
    res = pack(ex, tmp_path / "10k", "10k", layout="sspl", jobs=1, progress=False)
    assert res.rows == 30
    assert set(_files(tmp_path / "10k")) == {
        "h5py_train_frames_10k.h5", "h5py_train_audios_10k.h5", "h5py_train_spects_10k.h5",
        "flickr_train_videos_10k.csv", "index.json",
    }  # fmt: skip


def test_sspl_test_variant_follows_id_list_order(extracted30, tmp_path):
    ex, _ = extracted30
    id_file = tmp_path / "vggss_test_4692.csv"
    id_file.write_bytes(b"clip00007\r\nclip00002\r\nnot_extracted\r\nclip00011\r\n")
    out = tmp_path / "Data"
    args = ["pack-h5", "--in", str(ex), "--out", str(out), "--split", "test", "--layout",
            "sspl", "--ids", str(id_file), "--jobs", "1"]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "1 listed id(s) not in the extraction: not_extracted" in res.output
    assert set(_files(out)) == {
        "h5py_test_frames.h5", "h5py_test_audios.h5", "h5py_test_spects.h5",
        "vggss_test_4692.csv", "index.json",
    }  # fmt: skip
    assert (out / "vggss_test_4692.csv").read_text().split() == [
        "clip00007",
        "clip00002",
        "clip00011",
    ]
    index = json.loads((out / "index.json").read_text())
    assert index["missing"] == ["not_extracted"]
    with h5py.File(out / "h5py_test_audios.h5", "r") as f:
        assert list(f) == ["test_audios"] and f["test_audios"].shape == (3, 48000)
        pcm, _ = sf.read(ex / "audio" / "clip00002.wav", dtype="float32")
        assert np.array_equal(f["test_audios"][1], sspl.normalize_audio(pcm))
    with h5py.File(out / "h5py_test_frames.h5", "r") as f:
        assert list(f) == ["test_frames"]
    # --strict turns a missing id into a failure (the files are still written)
    res = CliRunner().invoke(cli, [*args, "--strict"])
    assert res.exit_code != 0
    assert "1 listed id(s) missing" in str(res.exception) + res.output


def test_native_ids_order_duplicates_and_failed(extracted, tmp_path):
    ex, _ = extracted
    wanted = ["clip00020", "clip00001", "clip00003", "clip00001", "ghost", "clip00010"]
    res = pack(ex, tmp_path / "o", "val", ids=wanted, jobs=1, progress=False)
    assert res.rows == 3 and res.missing == ["ghost"] and res.duplicates == ["clip00001"]
    assert [c for c, _ in res.skipped] == ["clip00003"]
    with h5py.File(tmp_path / "o" / "val-00000-of-00001.h5", "r") as f:
        assert [s.decode() for s in f["clip_id"][:]] == ["clip00020", "clip00001", "clip00010"]


def test_sspl_audio_normalisation_and_short_track_tiling():
    x = np.array([0.5, -0.25, 0.0, 0.25], dtype=np.float32)
    y = sspl.normalize_audio(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, (x - x.min()) / (x.max() - x.min() + 1e-3) * 2 - 1, rtol=1e-6)
    assert x[0] == 0.5  # the input is not modified
    short = np.arange(10000, dtype=np.float32)
    clip = sspl.center_clip(short)
    # SSPL: tile int(48000/10000)+1 = 5 times (50000), start 25000 - 24000 = 1000
    assert clip.shape == (48000,) and clip[0] == 1000 and clip[-1] == (1000 + 47999) % 10000
    long = np.arange(60000, dtype=np.float32)
    assert sspl.center_clip(long)[0] == 30000 - 24000


def test_resume_skips_complete_shards_and_redoes_the_rest(extracted, tmp_path):
    ex, _ = extracted
    out = tmp_path / "o"
    first = pack(ex, out, "train", rows_per_shard=3, jobs=1, progress=False)
    hashes = {e.file: e.sha256 for e in first.index.shards}
    # an interrupted rerun: no index yet, shard 2 never renamed (its temp is left),
    # shard 5 cut short under its final name, the others complete
    (out / "index.json").unlink()
    (out / "train-00002-of-00008.h5").unlink()
    (out / ".tmp-train-00002-of-00008.abc123.h5").write_bytes(b"half a shard")
    data = (out / "train-00005-of-00008.h5").read_bytes()
    (out / "train-00005-of-00008.h5").write_bytes(data[: len(data) // 2])
    before = {n: os.stat(out / n).st_mtime_ns for n in hashes if (out / n).exists()}
    again = pack(ex, out, "train", rows_per_shard=3, jobs=1, progress=False)
    assert sorted(again.written) == ["train-00002-of-00008.h5", "train-00005-of-00008.h5"]
    assert len(again.reused) == 6
    for name in again.reused:
        assert os.stat(out / name).st_mtime_ns == before[name]  # not rewritten
    assert {e.file: e.sha256 for e in again.index.shards} == hashes  # same bytes as before
    assert not list(out.glob(".tmp-*"))
    # other options make other shards: the stale ones are replaced, not mixed in
    third = pack(ex, out, "train", rows_per_shard=5, jobs=1, progress=False)
    assert _files(out) == ["index.json"] + [f"train-{k:05d}-of-00005.h5" for k in range(5)]
    assert third.reused == []


def test_deterministic_bytes_across_runs_and_workers(extracted, tmp_path):
    ex, _ = extracted
    a = pack(ex, tmp_path / "a", "train", rows_per_shard=7, jobs=1, progress=False)
    b = pack(ex, tmp_path / "b", "train", rows_per_shard=7, jobs=2, backend="loky", progress=False)
    assert [e.sha256 for e in a.index.shards] == [e.sha256 for e in b.index.shards]
    assert (tmp_path / "a" / "index.json").read_bytes() == (
        tmp_path / "b" / "index.json"
    ).read_bytes()
    s1 = pack(ex, tmp_path / "s1", "9k", layout="sspl", shards=2, jobs=1, progress=False)
    s2 = pack(ex, tmp_path / "s2", "9k", layout="sspl", shards=2, jobs=1, progress=False)
    assert [e.files for e in s1.index.shards] == [e.files for e in s2.index.shards]


@pytest.mark.slow
def test_dask_backend_writes_the_same_shards(extracted, tmp_path):
    ex, _ = extracted
    a = pack(ex, tmp_path / "a", "train", shards=2, jobs=1, progress=False)
    b = pack(ex, tmp_path / "b", "train", shards=2, jobs=2, backend="dask", progress=False)
    assert [e.sha256 for e in a.index.shards] == [e.sha256 for e in b.index.shards]


def test_raw_frames_and_virtual_dataset(extracted, tmp_path):
    ex, ok_ids = extracted
    out = tmp_path / "raw"
    res = pack(ex, out, "train", rows_per_shard=10, frames="raw", virtual=True, jobs=1,
               audio="pcm", compression="gzip", progress=False)  # fmt: skip
    assert res.index.virtual == "train.vds.h5"
    ids = sorted(ok_ids)
    with h5py.File(out / "train-00001-of-00003.h5", "r") as f:
        assert f["frame"].shape == (10, 48, 64, 3) and f["frame"].chunks == (1, 48, 64, 3)
        assert f.attrs["audio_encoding"] == "pcm" and "audio_flac" not in f
        assert f["audio"].dtype == np.int16 and f["audio"].chunks == (1, 48000)
        assert f["audio"].compression == "gzip"
        want = cv2.cvtColor(cv2.imread(str(ex / "frames" / f"{ids[12]}.jpg")), cv2.COLOR_BGR2RGB)
        assert np.array_equal(f["frame"][2], want)
    with h5py.File(out / "train.vds.h5", "r") as v:
        assert v["audio"].is_virtual and v["audio"].shape == (24, 48000)
        assert [s.decode() for s in v["clip_id"][:]] == ids
        pcm, _ = sf.read(ex / "audio" / f"{ids[21]}.wav", dtype="int16")
        assert np.array_equal(v["audio"][21], pcm)
        assert np.array_equal(v["frame"][12], want)


def test_virtual_dataset_stitches_jpeg_and_flac_bytes(extracted, tmp_path):
    ex, ok_ids = extracted
    out = tmp_path / "v"
    pack(ex, out, "train", rows_per_shard=4, virtual=True, jobs=1, progress=False)
    ids = sorted(ok_ids)
    with h5py.File(out / "train.vds.h5", "r") as v:
        assert v.attrs["audio_encoding"] == "flac"
        off, aoff = v["frame_offset"][:], v["audio_offset"][:]
        for r in (0, 5, 23):
            data = v["frame_jpeg"][off[r] : off[r + 1]].tobytes()
            assert data == (ex / "frames" / f"{ids[r]}.jpg").read_bytes()
            pcm, _ = sf.read(ex / "audio" / f"{ids[r]}.wav", dtype="int16")
            got = native.decode_flac(v["audio_flac"][aoff[r] : aoff[r + 1]])
            assert np.array_equal(got, pcm)


def test_clip_with_odd_shape_is_skipped_with_reason(tmp_path):
    ex, _ = make_extract_dir(tmp_path / "ex", 5, frame_size=(32, 32), odd_audio={"clip00002": 1000})
    res = pack(ex, tmp_path / "o", "train", jobs=1, progress=False)
    assert res.rows == 4
    ((cid, why),) = res.skipped
    assert cid == "clip00002" and "1000 samples" in why and "48000 samples" in why


def test_failed_shard_keeps_the_others_and_resumes(tmp_path):
    ex, _ = make_extract_dir(tmp_path / "ex", 6, frame_size=(32, 32))
    bad = ex / "spectrograms" / "vggish" / "clip00004.npy"
    good = np.load(bad)
    spoiled = good.copy()
    spoiled[0, 0, 0] = np.nan
    np.save(bad, spoiled)
    out = tmp_path / "o"
    with pytest.raises(StoreError, match=r"1 of 3 shard\(s\) failed.*clip00004.*NaN"):
        pack(ex, out, "train", rows_per_shard=2, jobs=1, progress=False)
    assert _files(out) == ["train-00000-of-00003.h5", "train-00001-of-00003.h5"]
    np.save(bad, good)
    res = pack(ex, out, "train", rows_per_shard=2, jobs=1, progress=False)
    assert res.written == ["train-00002-of-00003.h5"] and len(res.reused) == 2


def test_bad_options_and_inputs(extracted, tmp_path):
    ex, _ = extracted
    with pytest.raises(ConfigError, match="not both"):
        pack(ex, tmp_path / "o", "t", shards=2, rows_per_shard=3, progress=False)
    with pytest.raises(ConfigError, match="unknown layout"):
        pack(ex, tmp_path / "o", "t", layout="tfrecord", progress=False)
    with pytest.raises(ConfigError, match="split name"):
        pack(ex, tmp_path / "o", "../evil", progress=False)
    with pytest.raises(InputError, match="manifest.jsonl not found"):
        pack(tmp_path, tmp_path / "o", "t", progress=False)
    with pytest.raises(InputError, match=r"line 2: unsafe clip id '\$\(rm -rf x\)'"):
        bad = tmp_path / "ids.txt"
        bad.write_text("ok_id\n$(rm -rf x)\n")
        pack(ex, tmp_path / "o", "t", ids=bad, progress=False)
    with pytest.raises(InputError, match="no such file, and not a registry name"):
        pack(ex, tmp_path / "o", "t", ids=tmp_path / "no-such-list.csv", progress=False)
    with pytest.raises(ConfigError, match="unknown audio encoding"):
        pack(ex, tmp_path / "o", "t", audio="mp3", progress=False)
    with pytest.raises(ConfigError, match="native layout only"):
        pack(ex, tmp_path / "o", "t", layout="sspl", audio="pcm", progress=False)
    # a folder holds one split
    pack(ex, tmp_path / "one", "a", rows_per_shard=30, jobs=1, progress=False)
    with pytest.raises(ConfigError, match="already holds split 'a'"):
        pack(ex, tmp_path / "one", "b", jobs=1, progress=False)
    # SSPL needs 16 kHz audio: every clip is skipped, nothing to pack
    ex22, _ = make_extract_dir(tmp_path / "ex22", 2, frame_size=(32, 32), sample_rate=22050)
    with pytest.raises(StoreError, match="nothing to pack.*22050 Hz"):
        pack(ex22, tmp_path / "o22", "10k", layout="sspl", jobs=1, progress=False)


def test_writer_streams_rows_with_bounded_memory(tmp_path):
    """40 clips of ~330 kB each (13 MB in all) packed into one shard: the Python-side
    peak stays at a few rows, because each row is written into the file as it is read."""
    ex, _ = make_extract_dir(tmp_path / "ex", 40, frame_size=(256, 256))
    pack(ex, tmp_path / "warm", "w", ids=["clip00000"], frames="raw", jobs=1, progress=False)
    tracemalloc.start()
    try:
        res = pack(ex, tmp_path / "o", "train", frames="raw", jobs=1, backend="serial",
                   progress=False)  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.rows == 40 and res.bytes > 12e6
    assert peak < 4e6, f"peak traced memory {peak / 1e6:.1f} MB: the writer is not streaming"


def test_pcm_audio_option_and_flac_saves_bytes(extracted, tmp_path):
    ex, ok_ids = extracted
    flac = pack(ex, tmp_path / "f", "t", ids=ok_ids[:6], jobs=1, progress=False)
    args = ["pack-h5", "--in", str(ex), "--out", str(tmp_path / "p"), "--split", "t",
            "--audio", "pcm", "--ids", str(_id_file(tmp_path, ok_ids[:6])), "--jobs", "1"]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    with h5py.File(tmp_path / "p" / "t-00000-of-00001.h5", "r") as f:
        assert f.attrs["audio_encoding"] == "pcm" and f["audio"].dtype == np.int16
        pcm = f["audio"][:]
    with h5py.File(tmp_path / "f" / "t-00000-of-00001.h5", "r") as f:
        off = f["audio_offset"][:]
        for i in range(6):
            assert np.array_equal(native.decode_flac(f["audio_flac"][off[i] : off[i + 1]]), pcm[i])
    assert flac.bytes < (tmp_path / "p" / "t-00000-of-00001.h5").stat().st_size


def test_flac_encoding_is_deterministic_and_lossless_at_the_extremes():
    for pcm in (
        np.zeros(1600, np.int16),
        np.full(1600, -32768, np.int16),
        np.random.default_rng(0).integers(-32768, 32768, 16000).astype(np.int16),  # no gain
    ):
        a, b = native.encode_flac(pcm, 16000), native.encode_flac(pcm.copy(), 16000)
        assert a == b
        assert np.array_equal(native.decode_flac(a), pcm)
        assert np.array_equal(native.decode_flac(a, reference=True), pcm)


def _id_file(folder, ids, name="ids.txt"):
    path = folder / name
    path.write_text("".join(f"{i}\n" for i in ids))
    return path


def test_ids_registry_name_keeps_the_list_order(shared_metadata, tmp_path, monkeypatch):
    """``--ids sspl/vggss-test-4692`` (what pipelines/vggss-test.yaml passes): the cached
    registry copy is read in its order; the SSPL test id csv takes the published name."""
    from avprep import catalog

    monkeypatch.setenv("AVPREP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AVPREP_METADATA_MIRROR", raising=False)
    cached = catalog.cache_path("sspl/vggss-test-4692")
    cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shared_metadata / "sspl" / "vggss_test_4692.csv", cached)
    listed = cached.read_text().split()
    # extract 5 clips of the list, made in another order than the list's
    chosen = [listed[40], listed[3], listed[4000], listed[17], listed[1234]]
    ex, _ = make_extract_dir(tmp_path / "ex", sorted(chosen), frame_size=(32, 32))
    want = [cid for cid in listed if cid in set(chosen)]  # the list's order
    out = tmp_path / "Data"
    args = ["pack-h5", "--in", str(ex), "--out", str(out), "--split", "test", "--layout", "sspl",
            "--ids", "sspl/vggss-test-4692", "--jobs", "1"]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "4687 listed id(s) not in the extraction" in res.output
    assert (out / "vggss_test_4692.csv").read_text().split() == want
    index = json.loads((out / "index.json").read_text())
    assert index["id_list"] == "vggss_test_4692.csv" and len(index["missing"]) == 4687
    # the native layout takes the same name, in the same order
    res = pack(ex, tmp_path / "nat", "test", ids="sspl/vggss-test-4692", jobs=1, progress=False)
    with h5py.File(tmp_path / "nat" / "test-00000-of-00001.h5", "r") as f:
        assert [s.decode() for s in f["clip_id"][:]] == want


def test_ids_flickr_csv_form_keeps_its_order(tmp_path):
    """SSPL's Flickr test list form (``id,int`` lines, CRLF): duplicates dropped, first kept."""
    ex, _ = make_extract_dir(tmp_path / "ex", ["1001", "2002", "3003", "4004"], frame_size=(32, 32))
    csv = tmp_path / "flickr_test.csv"
    csv.write_bytes(b"3003,1\r\n1001,0\r\n3003,1\r\n9999,1\r\n2002,1\r\n")
    res = pack(ex, tmp_path / "o", "val", ids=csv, jobs=1, progress=False)
    assert res.rows == 3 and res.missing == ["9999"]
    with h5py.File(tmp_path / "o" / "val-00000-of-00001.h5", "r") as f:
        assert [s.decode() for s in f["clip_id"][:]] == ["3003", "1001", "2002"]
