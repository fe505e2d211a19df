"""Foundation: errors, registry, atomic writes, manifest, ids, runner, ffmpeg, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from avprep import atomic, ffmpeg, ids
from avprep.cli import cli
from avprep.errors import HostileIdError, MediaError, UnknownNameError
from avprep.manifest import FAILED, OK, ClipRecord, Manifest
from avprep.registry import Registry
from avprep.runner import map_clips

VENV_BIN = Path(sys.executable).parent


def test_registry_unknown_name_lists_valid():
    reg: Registry[int] = Registry("profile")
    reg.add("sspl", 1)
    reg.add("htf", 2)
    assert reg.get("htf") == 2
    with pytest.raises(UnknownNameError, match=r"unknown profile 'nope'; valid: sspl, htf"):
        reg.get("nope")
    with pytest.raises(ValueError):
        reg.add("sspl", 3)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    final = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(final) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash mid-write")
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []
    atomic.write_json(final, {"a": 1})
    assert json.loads(final.read_text()) == {"a": 1}
    assert atomic.sha256_file(final) == atomic.sha256_file(final)


def test_cleanup_temps(tmp_path):
    (tmp_path / ".tmp-x.123.mp4").write_bytes(b"partial")
    (tmp_path / "done.mp4").write_bytes(b"ok")
    assert atomic.cleanup_temps(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["done.mp4"]


@pytest.mark.parametrize(
    "bad", ["../../etc/passwd", "a/b", "x;rm -rf /", "$(id)", "a b", "..", "", "-" * 200, "a\nb"]
)
def test_hostile_ids_rejected(bad):
    with pytest.raises(HostileIdError):
        ids.check_id(bad)


def test_good_ids_and_vggsound_roundtrip():
    assert ids.check_id("zpWuikVorYg_000032") == "zpWuikVorYg_000032"
    assert ids.check_id("10000130166") == "10000130166"
    assert ids.vggsound_id("zpWuikVorYg", 32) == "zpWuikVorYg_000032"
    assert ids.split_vggsound_id("zpWuikVorYg_000032") == ("zpWuikVorYg", 32)
    with pytest.raises(HostileIdError):
        ids.vggsound_id("../etc", 3)


def test_manifest_last_record_wins_and_survives_torn_line(tmp_path):
    path = tmp_path / "manifest.jsonl"
    m = Manifest(path)
    m.write_header(tool="x")
    m.append(ClipRecord("a", FAILED, error="boom"))
    m.append(ClipRecord("b", OK))
    m.append(ClipRecord("a", OK, outputs={"frame": "frames/a.jpg"}))
    with open(path, "a") as fh:
        fh.write('{"clip_id": "c", "sta')  # kill -9 mid-write
    again = Manifest(path)
    assert again.get("a").ok and again.get("a").outputs == {"frame": "frames/a.jpg"}
    assert sorted(again.ok_ids()) == ["a", "b"]
    assert "c" not in again
    assert again.header == {"tool": "x"}
    assert "ok" in again.summary()
    with pytest.raises(ValueError):
        ClipRecord("z", "weird")


def _square(n: int) -> ClipRecord:
    if n == 3:
        raise ValueError("three is bad")
    return ClipRecord(f"c{n}", OK, meta={"sq": n * n, "pid": os.getpid()})


@pytest.mark.parametrize("backend,jobs", [("serial", 1), ("loky", 2)])
def test_runner_records_every_item_and_failures(tmp_path, backend, jobs):
    m = Manifest(tmp_path / "m.jsonl")
    recs = list(
        map_clips(_square, list(range(6)), jobs=jobs, backend=backend, manifest=m,
                  key=lambda n: f"c{n}", progress=False)
    )  # fmt: skip
    assert len(recs) == 6
    assert {r.clip_id for r in recs} == {f"c{i}" for i in range(6)}
    failed = [r for r in recs if not r.ok]
    assert [r.clip_id for r in failed] == ["c3"] and "three is bad" in failed[0].error
    assert Manifest(tmp_path / "m.jsonl").get("c5").meta["sq"] == 25
    if backend == "loky":
        assert all(r.meta["pid"] != os.getpid() for r in recs if r.ok)


def test_probe_reads_real_media(video_factory, tmp_path):
    info = ffmpeg.probe(video_factory("a.mp4", seconds=2, size=(320, 180), fps=30))
    assert info.has_video and info.has_audio
    assert (info.width, info.height) == (320, 180)
    assert info.fps == pytest.approx(30)
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert info.sample_rate == 44100
    silent = ffmpeg.probe(video_factory("s.mp4", seconds=1, audio=False))
    assert silent.has_video and not silent.has_audio
    rotated = ffmpeg.probe(video_factory("r.mp4", seconds=1, audio=False, rotate=90))
    assert rotated.display_size == (240, 320)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(MediaError, match="cannot be decoded"):
        ffmpeg.probe(bad)
    with pytest.raises(MediaError, match="no such file"):
        ffmpeg.probe(tmp_path / "missing.mp4")


def test_ffmpeg_run_error_carries_reason(tmp_path):
    with pytest.raises(MediaError, match="ffmpeg failed"):
        ffmpeg.run(["-i", str(tmp_path / "nope.mp4"), str(tmp_path / "x.wav")], what="test")
    assert not (tmp_path / "x.wav").exists()


def test_cli_doctor_and_help():
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "ffmpeg" in result.output and "torch" in result.output
    assert "doctor" in CliRunner().invoke(cli, ["--help"]).output


def test_cli_prints_error_without_traceback(tmp_path):
    # A real AvprepError path through the installed console script.
    proc = subprocess.run(
        [str(VENV_BIN / "avprep"), "doctor", "--bogus"], capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "No such option" in proc.stderr


@pytest.mark.slow
def test_doctor_fails_when_ffmpeg_missing(tmp_path):
    env = dict(os.environ, AVPREP_FFMPEG=str(tmp_path / "no-ffmpeg"))
    proc = subprocess.run(
        [str(VENV_BIN / "avprep"), "doctor"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 1
    assert "MISSING" in proc.stdout and "AVPREP_FFMPEG" in proc.stderr
