"""`avprep extract` at scale: resume, interruption, loky and Dask give identical files,
and the command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from avprep.atomic import TMP_PREFIX
from avprep.errors import ConfigError
from avprep.manifest import Manifest
from avprep.profiles import get_profile
from avprep.stages.extract import run_extract
from tests.media import make_video


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scale_videos")
    for i in range(5):
        make_video(root / f"v{i}.mp4", seconds=2, size=(96, 64), tone_hz=300 + 100 * i, fps=25)
    make_video(root / "mute.mp4", seconds=1, size=(96, 64), audio=False)
    return root


def _files(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in ("manifest.jsonl", ".extract.lock")
    }


PROFILE = get_profile("htf", resize="squash", image_size=64, flow="dis")


def test_rerun_skips_done_clips_and_redoes_missing_outputs(video_dir, tmp_path):
    out = tmp_path / "out"
    first = run_extract(video_dir, out, PROFILE, progress=False)
    assert (first.ok, first.failed, first.already_done) == (5, 1, 0)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.jpg")}
    second = run_extract(video_dir, out, PROFILE, progress=False)
    assert (second.already_done, second.ok, second.failed) == (5, 0, 1)  # the failure is retried
    assert stamps == {p: p.stat().st_mtime_ns for p in out.rglob("*.jpg")}
    (out / "audio/v3.wav").unlink()
    (out / "frames" / f"{TMP_PREFIX}v1.abc.jpg").write_bytes(b"partial")  # a killed writer
    third = run_extract(video_dir, out, PROFILE, progress=False)
    assert (third.already_done, third.ok) == (4, 1)
    assert (out / "audio/v3.wav").is_file()
    assert not list(out.rglob(f"{TMP_PREFIX}*"))
    man = Manifest(out / "manifest.jsonl")
    assert sorted(man.ok_ids()) == [f"v{i}" for i in range(5)]


def test_other_parameters_into_the_same_folder_are_refused(video_dir, tmp_path):
    run_extract(video_dir, tmp_path, PROFILE, limit=1, progress=False)
    with pytest.raises(ConfigError, match="image_size"):
        run_extract(video_dir, tmp_path, PROFILE.with_overrides(image_size=32), progress=False)


def test_limit_takes_the_first_clips(video_dir, tmp_path):
    s = run_extract(video_dir, tmp_path, PROFILE, limit=2, progress=False)
    # sorted by name: mute.mp4 (no audio: failed), v0.mp4
    assert (s.total, s.ok, s.failed) == (2, 1, 1)
    assert Manifest(tmp_path / "manifest.jsonl").ok_ids() == ["v0"]


def test_killed_run_loses_nothing(video_dir, tmp_path):
    """kill -9 in the middle of a run; the rerun keeps every finished clip and completes."""
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-c", "from avprep.cli import main; main()", "extract",
        "--in", str(video_dir), "--out", str(out), "--profile", "lvs", "--no-progress",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / "manifest.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if manifest.is_file() and len(manifest.read_text().splitlines()) >= 3:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    before = Manifest(manifest)
    done = {
        r.clip_id: (out / r.outputs["frame"]).stat().st_mtime_ns for r in before.records() if r.ok
    }
    assert done, "the first run finished no clip before the kill"
    summary = run_extract(video_dir, out, get_profile("lvs"), progress=False)
    assert summary.already_done == len(done)
    after = Manifest(manifest)
    assert sorted(after.ok_ids()) == [f"v{i}" for i in range(5)]
    for cid, stamp in done.items():
        assert (out / "frames" / f"{cid}.jpg").stat().st_mtime_ns == stamp
    assert not list(out.rglob(f"{TMP_PREFIX}*"))


def test_loky_and_dask_cluster_produce_identical_files(video_dir, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    serial = tmp_path / "serial"
    run_extract(video_dir, serial, PROFILE, backend="serial", progress=False)
    loky = tmp_path / "loky"
    run_extract(video_dir, loky, PROFILE, jobs=2, backend="loky", progress=False)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        dask_out = tmp_path / "dask"
        s = run_extract(
            video_dir,
            dask_out,
            PROFILE,
            backend="dask",
            scheduler=cluster.scheduler_address,
            progress=False,
        )
    assert (s.ok, s.failed) == (5, 1)
    ref = _files(serial)
    assert len(ref) == 5 * 4  # frame, wav, spectrogram, flow per ok clip
    assert _files(loky) == ref
    assert _files(dask_out) == ref
    recs = {r.clip_id: r for r in Manifest(dask_out / "manifest.jsonl").records()}
    for r in Manifest(serial / "manifest.jsonl").records():
        assert recs[r.clip_id].status == r.status and recs[r.clip_id].outputs == r.outputs


def test_cli_runs_and_prints_a_summary(video_dir, tmp_path):
    from avprep.cli import cli

    out = tmp_path / "cli"
    result = CliRunner().invoke(
        cli,
        ["extract", "--in", str(video_dir), "--out", str(out), "--profile", "sspl",
         "--image-size", "128", "--audio-seconds", "2", "--frame-at", "0.5",
         "--flow", "farneback", "--flow-legacy-htf", "--jobs", "2", "--limit", "3",
         "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "extracted now" in result.output and "failed" in result.output
    man = Manifest(out / "manifest.jsonl")
    assert man.header["profile_params"]["image_size"] == 128
    assert man.header["profile_params"]["flow_legacy_htf"] is True
    rec = next(r for r in man.records() if r.ok)
    assert rec.meta["audio_seconds"] == 2.0 and rec.meta["width"] == 128
    assert (out / "flow/flow_x" / f"{rec.clip_id}.jpg").is_file()


def test_cli_bad_option_is_a_readable_error(video_dir, tmp_path):
    cmd = [
        sys.executable, "-c", "from avprep.cli import main; main()", "extract",
        "--in", str(video_dir), "--out", str(tmp_path), "--profile", "sspl",
        "--flow-legacy-htf",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "needs a flow method" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(cmd[:-1] + ["--profile", "nope"], capture_output=True, text=True)
    assert proc.returncode != 0 and "nope" in proc.stderr
