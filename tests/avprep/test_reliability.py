"""Nothing lost, nothing silently wrong: the defects a fault-injection campaign found
(issue 14), each reproduced on tiny real data. The crash-and-rerun campaign itself (kill
-9 at several points per stage) is in ``test_reliability_campaign.py`` (slow)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from avprep.atomic import write_bytes, write_text
from avprep.cli import cli
from avprep.errors import AvprepError, DiskFullError, InputError, StoreError
from avprep.ffmpeg import ffmpeg_binary
from avprep.lock import FolderBusyError, folder_lock
from avprep.manifest import FAILED, OK, ClipRecord, Manifest
from avprep.profiles import get_profile
from avprep.stages import download as dl
from avprep.stages.extract import run_extract
from avprep.store.native import encode_flac
from avprep.store.pack import pack
from avprep.store.reader import ShardDataset, SSPLDataset
from avprep.store.verify import verify_store
from tests.httpserver import MediaServer
from tests.media import make_video
from tests.store_fixtures import make_extract_dir

PROFILE = get_profile("htf", flow="none")


def _message(res) -> str:
    """The one-line message the CLI's ``main`` prints for a failed command (it prints an
    AvprepError's text, no traceback; CliRunner hands the exception back instead)."""
    assert res.exit_code != 0
    assert isinstance(res.exception, AvprepError), res.exception
    text = str(res.exception)
    assert "\n" not in text and "Traceback" not in res.output
    return text


def _rec(cid: str, status: str = OK) -> ClipRecord:
    return ClipRecord(cid, status, outputs={"x": cid}, time=1.0)


# -- 1. a torn manifest tail ------------------------------------------------------------
def test_torn_manifest_tail_is_cut_before_the_next_append(tmp_path):
    path = tmp_path / "manifest.jsonl"
    m = Manifest(path)
    m.write_header(stage="t")
    for cid in ("a", "b", "c"):
        m.append(_rec(cid))
    data = path.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: last + (len(data) - last) // 2])  # "c" cut in half
    again = Manifest(path)
    assert sorted(again.ok_ids()) == ["a", "b"]  # the torn line is ignored
    again.append(_rec("d"))
    assert sorted(Manifest(path).ok_ids()) == ["a", "b", "d"]  # d is not glued onto it
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_whole_record_without_its_newline_is_kept(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_text(_rec("a").to_json() + "\n" + _rec("b").to_json())  # newline never written
    m = Manifest(path)
    m.append(_rec("c"))
    assert sorted(Manifest(path).ok_ids()) == ["a", "b", "c"]


@pytest.fixture(scope="module")
def two_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    make_video(root / "v1.mp4", seconds=2, size=(160, 120))
    make_video(root / "v2.mp4", seconds=2, size=(160, 120), tone_hz=880)
    return root


def test_torn_line_then_extract_rerun_keeps_every_clip(two_videos, tmp_path):
    out = tmp_path / "ex"
    run_extract(two_videos, out, PROFILE, jobs=1, progress=False)
    path = out / "manifest.jsonl"
    data = path.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    torn = json.loads(data[last:])["clip_id"]
    path.write_bytes(data[: last + 40])  # a crash mid-append of the last record
    summary = run_extract(two_videos, out, PROFILE, jobs=1, progress=False)
    assert summary.ok == 1 and summary.already_done == 1  # the torn clip was redone
    assert sorted(Manifest(path).ok_ids()) == ["v1", "v2"], torn
    # a third run finds everything done (the redone record was not lost)
    assert run_extract(two_videos, out, PROFILE, jobs=1, progress=False).already_done == 2


# -- 8. malformed manifest lines: one-line errors with file:line -------------------------
@pytest.mark.parametrize("bad", ["null", "[1, 2, 3]", '{"clip_id": 5, "status": "ok"}'])
def test_bad_manifest_line_is_an_error_naming_file_and_line(tmp_path, bad):
    path = tmp_path / "manifest.jsonl"
    path.write_text(_rec("a").to_json() + "\n" + bad + "\n")
    with pytest.raises(InputError, match=r"manifest\.jsonl:2: not a manifest record"):
        Manifest(path)
    # through the CLI: extract (a download folder), pack-h5 (an extraction), download
    ex, _ = make_extract_dir(tmp_path / "ex", 2, frame_size=(32, 32))
    with open(ex / "manifest.jsonl", "a") as fh:
        fh.write(bad + "\n")
    runner = CliRunner()
    for args in (
        ["extract", "--in", str(tmp_path), "--out", str(tmp_path / "o"), "--profile", "htf"],
        ["pack-h5", "--in", str(ex), "--out", str(tmp_path / "p"), "--split", "train"],
    ):
        msg = _message(runner.invoke(cli, args))
        assert "manifest.jsonl:" in msg and "not a manifest record" in msg
    ids = tmp_path / "ids.txt"
    ids.write_text("http://127.0.0.1:9/a.mp4\n")
    res = runner.invoke(cli, ["download", "--ids", str(ids), "--out", str(tmp_path)])
    assert "manifest.jsonl:2: not a manifest record" in _message(res)


def test_error_reasons_group_across_clips(tmp_path):
    m = Manifest(tmp_path / "manifest.jsonl")
    for cid in ("clip_one", "clip_two", "clip_three"):
        m.append(ClipRecord(cid, FAILED, error=f"[generic] {cid}: HTTP Error 503"))
    assert "     3  [generic] <id>: HTTP Error 503" in m.summary()


# -- 3. one writer per folder ------------------------------------------------------------
def test_extract_takes_the_folder_lock_before_reading_the_header(two_videos, tmp_path):
    out = tmp_path / "ex"
    with folder_lock(out, "extract"):  # another extract is running here
        with pytest.raises(FolderBusyError, match="another avprep extract is writing into"):
            run_extract(two_videos, out, get_profile("sspl"), jobs=1, progress=False)
    assert not (out / "manifest.jsonl").exists()  # it wrote no header beside the other's


def test_pack_and_synth_take_their_folder_locks(tmp_path):
    from avprep.synth.generate import generate
    from avprep.synth.spec import SynthConfig

    ex, _ = make_extract_dir(tmp_path / "ex", 3, frame_size=(32, 32))
    out = tmp_path / "store"
    with folder_lock(out, "pack-h5"):
        with pytest.raises(FolderBusyError, match="another avprep pack-h5"):
            pack(ex, out, "train", jobs=1, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [".pack-h5.lock"]
    syn = tmp_path / "syn"
    with folder_lock(syn, "synth"):
        with pytest.raises(FolderBusyError, match="another avprep synth"):
            generate(SynthConfig(clips=1), syn, progress=False)
    assert not (syn / "manifest.jsonl").exists()


# -- 4. verify and SSPLDataset on incomplete SSPL stores ---------------------------------
@pytest.fixture(scope="module")
def sspl_source(tmp_path_factory):
    root = tmp_path_factory.mktemp("sspl")
    ex, _ = make_extract_dir(root / "ex", 9, frame_size=(40, 48))
    pack(ex, root / "store", "10k", layout="sspl", rows_per_shard=3, jobs=1, progress=False)
    return root / "store"


@pytest.fixture()
def sspl_copy(sspl_source, tmp_path):
    dst = tmp_path / "sspl"
    shutil.copytree(sspl_source, dst)
    return dst


def _strip_avprep_attrs(folder: Path) -> None:
    """Make the files look written by SSPL's own script (which sets no attributes)."""
    for p in folder.glob("h5py_*.h5"):
        with h5py.File(p, "r+") as f:
            for k in [k for k in f.attrs if k.startswith("avprep_")]:
                del f.attrs[k]


def test_unfinished_sspl_pack_fails_verify_and_the_dataset(sspl_copy):
    # a pack killed before its last step: shards (some or all) but no index.json
    (sspl_copy / "index.json").unlink()
    for kind in ("frames", "audios", "spects"):
        (sspl_copy / f"h5py_train_{kind}_10k_3.h5").unlink()
    rep = verify_store(sspl_copy, progress=False)
    assert not rep.ok and any("the pack did not finish, of 3 shard(s)" in p for p in rep.problems)
    with pytest.raises(StoreError, match="the pack did not finish"):
        SSPLDataset(sspl_copy, "10k")


def test_sspl_store_missing_shards_fails_with_or_without_index(sspl_copy):
    for kind in ("frames", "audios", "spects"):
        (sspl_copy / f"h5py_train_{kind}_10k_3.h5").unlink()
    with pytest.raises(StoreError, match="its index.json lists 3 shard"):
        SSPLDataset(sspl_copy, "10k")
    # SSPL's own files (no attributes, no index): the id csv says how many rows there are
    (sspl_copy / "index.json").unlink()
    _strip_avprep_attrs(sspl_copy)
    rep = verify_store(sspl_copy, progress=False)
    assert any("has 9 ids for 6 rows" in p for p in rep.problems), rep.problems
    (sspl_copy / "flickr_train_videos_10k.csv").unlink()
    rep = verify_store(sspl_copy, progress=False)
    assert any("cannot tell whether every shard and row is present" in p for p in rep.problems)


def test_verify_sspl_without_index_and_a_truncated_file_reports_it(sspl_copy):
    (sspl_copy / "index.json").unlink()
    _strip_avprep_attrs(sspl_copy)
    frames = sspl_copy / "h5py_train_frames_10k_2.h5"
    frames.write_bytes(frames.read_bytes()[:3000])
    res = CliRunner().invoke(cli, ["verify", str(sspl_copy)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "h5py_train_frames_10k_2.h5: cannot be read by HDF5" in res.output


# -- 6. decoded audio length against the stored shape ------------------------------------
def test_native_reader_refuses_a_flac_row_that_decodes_short(tmp_path):
    from tests.engine_data import write_tiny_store

    path, _ = write_tiny_store(tmp_path, 3, size=32)
    with h5py.File(path, "r+") as f:
        off = f["audio_offset"][:]
        rows = [f["audio_flac"][off[i] : off[i + 1]].tobytes() for i in range(3)]
        pcm = np.zeros(12_288, np.int16)  # a valid FLAC stream, too short: no decoder error
        rows[1] = encode_flac(pcm, 16000)
        new_off = np.cumsum([0, *map(len, rows)])
        del f["audio_flac"], f["audio_offset"]
        f.create_dataset("audio_flac", data=np.frombuffer(b"".join(rows), np.uint8))
        f.create_dataset("audio_offset", data=new_off)
    ds = ShardDataset(path, modalities=["audio"])
    assert ds[0]["audio"].shape == (48_000,)
    msg = r"clip0001 in tiny.h5 \(row 1 of that shard\): decoded to 12288 samples, the store says 48000"
    with pytest.raises(StoreError, match=msg):
        ds[1]
    with pytest.raises(StoreError, match=msg):
        ds.read_batch([2, 1])


# -- 5. a truncated mp4 with an intact header --------------------------------------------
def _cut_at_a_chunk(src: Path, dst: Path, fraction: float) -> Path:
    """A faststart copy cut exactly at a chunk start (no partial packet for ffmpeg to
    stumble on: the end-of-file decode check passes on such a file)."""
    fast = dst.with_suffix(".fast.mp4")
    subprocess.run([ffmpeg_binary(), "-v", "error", "-y", "-i", str(src), "-c", "copy",
                    "-movflags", "+faststart", str(fast)], check=True)  # fmt: skip
    data = fast.read_bytes()
    offsets, i = [], 0
    while (i := data.find(b"stco", i + 1)) > 0:
        (n,) = struct.unpack_from(">I", data, i + 8)
        offsets += struct.unpack_from(f">{n}I", data, i + 12)
    cut = min(offsets, key=lambda o: abs(o - fraction * len(data)))
    dst.write_bytes(data[:cut])
    fast.unlink()
    return dst


def test_truncated_mp4_fails_download_and_extract(two_videos, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    make_video(tmp_path / "long.mp4", seconds=4, size=(160, 120))
    _cut_at_a_chunk(tmp_path / "long.mp4", served / "cut.mp4", 0.3)
    with MediaServer(served) as srv:
        out = tmp_path / "dl"
        rows = [{"clip_id": "cut", "url": srv.url("cut.mp4")}]
        cfg = dl.DownloadConfig(out=out, retries=0, backoff=0, timeout=10)
        report = dl.download_clips(rows, cfg, jobs=1, progress=False)
    rec = report.records[0]
    assert rec.status == FAILED and "truncated download" in rec.error, rec.error
    assert not (out / "cut.mp4").exists()
    # extract given the same file directly
    vids = tmp_path / "vids"
    vids.mkdir()
    shutil.copy(served / "cut.mp4", vids / "cut.mp4")
    shutil.copy(two_videos / "v1.mp4", vids / "v1.mp4")
    summary = run_extract(vids, tmp_path / "ex", PROFILE, jobs=1, progress=False)
    assert summary.ok == 1 and summary.failed == 1
    err = Manifest(tmp_path / "ex" / "manifest.jsonl").get("cut").error
    assert "file cut short" in err and "re-download it" in err
    assert not (tmp_path / "ex" / "frames" / "cut.jpg").exists()


# -- 2 and 7. a full disk ------------------------------------------------------------------
@contextlib.contextmanager
def small_disk(path: Path, size: str):
    """A tmpfs of ``size`` at ``path`` (needs root); skips the test where none can be made."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full-disk test needs a small tmpfs: mount needs root here")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                         capture_output=True, text=True)  # fmt: skip
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the full-disk test: {res.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(folder: Path, leave: int) -> Path:
    """Fill ``folder``'s disk up to ``leave`` bytes free."""
    filler = folder / "filler.bin"
    free = shutil.disk_usage(folder).free
    with open(filler, "wb") as fh:
        fh.truncate(0)
        fh.write(b"\0" * max(0, free - leave))
    return filler


def test_extract_on_a_full_disk_stops_and_the_next_run_redoes_the_clip(two_videos, tmp_path):
    with small_disk(tmp_path / "disk", "4m") as disk:
        out = disk / "ex"
        out.mkdir()
        Manifest(out / "manifest.jsonl").write_header(probe=True)  # room for the header
        filler = _fill(disk, 24 * 1024)
        res = CliRunner().invoke(cli, ["extract", "--in", str(two_videos), "--out", str(out),
                                       "--profile", "htf", "--flow", "none", "--no-progress"])  # fmt: skip
        assert _message(res).startswith(f"disk full at {out}")
        filler.unlink()
        m = Manifest(out / "manifest.jsonl")
        recs = list(m.records())
        assert all(r.ok or r.meta.get("retryable") for r in recs), [r.error for r in recs]
        summary = run_extract(two_videos, out, PROFILE, jobs=1, progress=False)
        assert sorted(Manifest(out / "manifest.jsonl").ok_ids()) == ["v1", "v2"]
        assert summary.failed == 0
        # full before the manifest's header can be written: the same readable stop
        _fill(disk, 0)
        res = CliRunner().invoke(cli, ["extract", "--in", str(two_videos), "--out",
                                       str(disk / "ex2"), "--profile", "htf"])  # fmt: skip
        assert _message(res).startswith("disk full at ")


@pytest.mark.slow
def test_native_pack_on_a_full_disk_fails_with_a_message(tmp_path):
    ex, _ = make_extract_dir(tmp_path / "ex", 4, frame_size=(64, 64))
    with small_disk(tmp_path / "disk", "2m") as disk:
        _fill(disk, 200 * 1024)
        code = "from avprep.cli import main; main()"
        proc = subprocess.run(
            [os.sys.executable, "-c", code, "pack-h5", "--in", str(ex), "--out",
             str(disk / "store"), "--split", "train", "--shards", "2"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode not in (0, -11, 139), proc.stderr
        assert "disk full at" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert not list((disk / "store").glob("*.h5"))
    with pytest.raises(DiskFullError):
        from avprep.diskfull import check_free

        check_free(tmp_path, 1 << 62, "a test")


# -- 8. deeply nested JSON ---------------------------------------------------------------
def test_deeply_nested_json_is_a_one_line_error(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    res = CliRunner().invoke(cli, ["convert", "vggss-xml", "--json", str(deep), "--out",
                                   str(tmp_path / "x")])  # fmt: skip
    assert "deep.json:1: JSON nested too deeply" in _message(res)

    from avmodels.cli import cli as avmodels_cli

    maps = tmp_path / "maps.npz"
    np.savez(maps, clip=np.zeros((4, 4), np.float32))
    res = CliRunner().invoke(avmodels_cli, ["evaluate-maps", "--maps", str(maps),
                                            "--annotations", str(deep), "--benchmark",
                                            "vggss"])  # fmt: skip
    assert "deep.json:1: JSON nested too deeply" in _message(res)


# -- 10. temporaries stay inside the output folder ---------------------------------------
def test_extract_and_synth_write_no_temporaries_outside_out(two_videos, tmp_path):
    from avprep.synth.generate import generate
    from avprep.synth.spec import SynthConfig

    old = tempfile.tempdir
    tempfile.tempdir = str(tmp_path / "no-such-folder")  # any use of it would fail
    try:
        summary = run_extract(two_videos, tmp_path / "ex", PROFILE, jobs=1, progress=False)
        res = generate(
            SynthConfig(clips=1, size=(64, 48), seconds=1.0), tmp_path / "syn", progress=False
        )
    finally:
        tempfile.tempdir = old
    assert summary.ok == 2 and res.generated == 1
    assert not list((tmp_path / "ex").glob(".tmp-*"))
    assert not list((tmp_path / "syn" / "videos").glob(".tmp-*"))


def test_a_killed_runs_work_folder_is_swept_by_the_next_run(two_videos, tmp_path):
    out = tmp_path / "ex"
    left = out / ".tmp-v1-abc123"
    left.mkdir(parents=True)
    (left / "audio.s16").write_bytes(b"\0" * 10)
    run_extract(two_videos, out, PROFILE, jobs=1, progress=False)
    assert not left.exists()


# -- 11. the umask ---------------------------------------------------------------------
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        a = write_bytes(tmp_path / "a.bin", b"x")
        b = write_text(tmp_path / "sub" / "b.txt", "y")
    finally:
        os.umask(old)
    assert a.stat().st_mode & 0o777 == mode and b.stat().st_mode & 0o777 == mode


# -- small -------------------------------------------------------------------------------
def test_url_with_dot_dot_segments_is_a_hostile_id(tmp_path):
    from avprep.recipes import load_clips

    ids = tmp_path / "urls.txt"
    ids.write_text("http://127.0.0.1:8000/../../etc/passwd\nhttp://127.0.0.1:8000/a/ok.mp4\n")
    with pytest.raises(InputError, match=r"hostile URL path with '\.' or '\.\.' segments"):
        load_clips(str(ids))


# -- 9. training run folders ---------------------------------------------------------------
TINY = ["model.pretrained=false", "model.image_size=32", "train.batch_size=2",
        "train.num_workers=0", "train.log_every=1", "eval.every=0"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    from tests.engine_data import write_tiny_store

    path, _ = write_tiny_store(tmp_path_factory.mktemp("train"), 4, size=32)
    return path


@pytest.mark.slow
def test_run_folder_made_last_locked_and_resumable_before_a_checkpoint(
    tiny_store, tmp_path, caplog
):
    from avmodels.engine.train import TrainRequest, train

    run = tmp_path / "run"
    # a run that fails before training (batch larger than the data) leaves no folder...
    with pytest.raises(AvprepError, match="fewer than one global batch"):
        train(TrainRequest("sspl", [str(tiny_store)], str(run),
                           sets=[*TINY, "train.batch_size=64"], progress=False))  # fmt: skip
    assert not run.exists()
    # ...so the retry needs no --overwrite
    res = train(TrainRequest("sspl", [str(tiny_store)], str(run),
                             sets=[*TINY, "train.max_steps=1"], progress=False))  # fmt: skip
    assert res.steps == 1
    # a second run on a live one is refused at once
    with folder_lock(run, "train"):  # the first run is still going
        with pytest.raises(FolderBusyError, match="another avprep train is writing into"):
            train(TrainRequest(None, [], str(run), resume=True, progress=False))
    # what a kill -9 before the first checkpoint leaves: run.json and config.yaml only;
    # --resume (as the message advises) starts it from scratch instead of failing
    for p in list(run.iterdir()):
        if p.name not in ("run.json", "config.yaml", ".train.lock"):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    with caplog.at_level("WARNING"):
        res = train(TrainRequest(None, [], str(run), resume=True, progress=False))
    assert res.steps == 1 and (run / "final.pt").is_file()
    assert (run / "checkpoints" / "last.pt").is_file()
    assert "has no checkpoint yet" in caplog.text and "starting it from scratch" in caplog.text


# -- small: checkpoint refusal, localize messages -----------------------------------------
def test_checkpoint_refusal_says_why_not_how_to_bypass(tmp_path):
    import argparse

    import torch

    from avmodels.engine.checkpoint import load_model_file

    path = tmp_path / "evil.pt"
    torch.save({"format": "avmodels-model/1", "x": argparse.Namespace(a=1)}, path)
    with pytest.raises(InputError) as err:
        load_model_file(path)
    msg = str(err.value)
    assert "refused" in msg and "could run code" in msg and "argparse.Namespace" in msg
    assert "weights_only=False" not in msg and "likely succeed" not in msg


@pytest.mark.slow
def test_localize_names_the_video_not_an_internal_clip_id(tmp_path):
    from avmodels.engine.checkpoint import save_model
    from avmodels.engine.config import resolve_config
    from avmodels.engine.localize import localize_video
    from avmodels.methods import build_method

    video = make_video(tmp_path / "mute.mp4", seconds=2, size=(64, 48), audio=False)
    cfg = resolve_config("sspl", sets=["model.pretrained=false", "model.image_size=32"])
    model = save_model(tmp_path / "m.pt", build_method("sspl", cfg), cfg)
    with pytest.raises(AvprepError) as err:
        localize_video(model, video, [1.0], device="cpu", progress=False)
    assert str(err.value).startswith(f"{video}: no audio stream")
    assert "frame00000" not in str(err.value)
