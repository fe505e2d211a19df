"""The fault-injection campaign, bounded: kill -9 at a few points in each stage on tiny
data, rerun, and require the outputs byte-identical to an uninterrupted run; concurrent
runs on one folder; Ctrl-C of a parallel download. (Full disks: test_reliability.py.)

Kill points are chosen by watching the output folder (after the first record, after
the first shard file appears, ...), not by sleeping, so the test means the same thing on
a fast or a loaded machine; where a run finishes before a kill point is reached, that
point degenerates into "rerun a finished run", which must also change nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avprep.atomic import sha256_file
from avprep.manifest import Manifest
from avprep.store.verify import verify_store
from tests.httpserver import MediaServer
from tests.media import make_video
from tests.store_fixtures import make_extract_dir

pytestmark = pytest.mark.slow

MAIN = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); " \
       "from avprep.cli import main; main()"  # fmt: skip
SKIP_NAMES = {"manifest.jsonl", ".extract.lock", ".pack-h5.lock", ".download.lock"}


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", MAIN, *args],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _kill_when(proc: subprocess.Popen, ready, sig=signal.SIGKILL, limit: float = 120) -> int:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        if ready():
            os.killpg(proc.pid, sig)
            break
        time.sleep(0.01)
    return proc.wait(timeout=120)


def _run(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-c", MAIN, *args], capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in SKIP_NAMES
    }


def _records(folder: Path) -> int:
    path = folder / "manifest.jsonl"
    return len(Manifest(path)) if path.is_file() else 0


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("campaign_videos")
    for i in range(3):
        make_video(root / f"c{i}.mp4", seconds=2, size=(128, 96), tone_hz=300 + 200 * i)
    return root


def test_extract_killed_at_several_points_reruns_byte_identical(videos, tmp_path):
    args = ["--in", str(videos), "--profile", "htf", "--flow", "dis", "--no-progress"]
    ref = tmp_path / "ref"
    _run("extract", *args, "--out", str(ref))
    want = _digest(ref)
    assert len(want) == 3 * 4  # frame, wav, spectrogram, flow per clip
    points = {
        "at start": lambda out: out.is_dir(),
        "after one clip": lambda out: _records(out) >= 1,
        "after two clips": lambda out: _records(out) >= 2,
    }
    killed = 0
    for name, ready in points.items():
        out = tmp_path / name.replace(" ", "_")
        proc = _start("extract", *args, "--out", str(out), "--jobs", "2")
        killed += _kill_when(proc, lambda out=out, ready=ready: ready(out)) == -signal.SIGKILL
        # loky's memory-mapping folder lives in OUT's temp area, not in /dev/shm
        assert not list(Path("/dev/shm").glob(f"joblib_memmapping_folder_{proc.pid}_*"))
        _run("extract", *args, "--out", str(out))
        assert _digest(out) == want, name
        assert sorted(Manifest(out / "manifest.jsonl").ok_ids()) == ["c0", "c1", "c2"]
        assert not list(out.rglob(".tmp-*")), name
    assert killed >= 1  # at least one kill landed before the run ended


@pytest.mark.parametrize("layout", ["native", "sspl"])
def test_pack_killed_mid_pack_fails_verify_then_reruns_byte_identical(tmp_path, layout):
    ex, _ = make_extract_dir(tmp_path / "ex", 12, frame_size=(96, 128))
    split = "10k" if layout == "sspl" else "train"
    args = ["--in", str(ex), "--split", split, "--layout", layout, "--rows-per-shard", "3",
            "--jobs", "1"]  # fmt: skip
    ref = tmp_path / "ref"
    _run("pack-h5", *args, "--out", str(ref))
    want = _digest(ref)
    points = {
        "first temporary": lambda out: any(out.glob(".tmp-*")),
        "first shard": lambda out: any(out.glob("*.h5")),
        "second shard": lambda out: len(list(out.glob("*.h5"))) >= (2 if layout == "native" else 6),
    }
    killed = 0
    for name, ready in points.items():
        out = tmp_path / name.replace(" ", "_")
        proc = _start("pack-h5", *args, "--out", str(out))
        killed += _kill_when(proc, lambda out=out, ready=ready: ready(out)) == -signal.SIGKILL
        if not (out / "index.json").is_file() and any(out.glob("*.h5")):
            # killed before the index: verify must not call the store OK
            assert not verify_store(out, progress=False).ok, name
        _run("pack-h5", *args, "--out", str(out))
        assert _digest(out) == want, name
        assert verify_store(out, progress=False).ok
    assert killed >= 1


def test_two_extracts_with_different_options_started_together(videos, tmp_path):
    out = tmp_path / "out"
    a = _start("extract", "--in", str(videos), "--out", str(out), "--profile", "htf",
               "--flow", "none", "--image-size", "128", "--no-progress")  # fmt: skip
    b = _start("extract", "--in", str(videos), "--out", str(out), "--profile", "htf",
               "--flow", "none", "--image-size", "256", "--no-progress")  # fmt: skip
    codes = [a.wait(timeout=300), b.wait(timeout=300)]
    errors = a.stderr.read() + b.stderr.read()
    assert sorted(codes)[0] == 0 and codes.count(0) == 1, errors
    assert "another avprep extract is writing into" in errors or "other parameters" in errors
    headers = [line for line in (out / "manifest.jsonl").read_text().splitlines()
               if line.startswith('{"_header"')]  # fmt: skip
    assert len(headers) == 1
    import cv2

    sizes = {cv2.imread(str(p)).shape[:2] for p in (out / "frames").glob("*.jpg")}
    assert len(sizes) == 1  # one preprocessing, not a mix


def test_two_packs_started_together_leave_one_store(tmp_path):
    ex, _ = make_extract_dir(tmp_path / "ex", 9, frame_size=(64, 64))
    out = tmp_path / "store"
    args = ["pack-h5", "--in", str(ex), "--out", str(out), "--split", "train"]
    a = _start(*args, "--rows-per-shard", "3")
    b = _start(*args, "--rows-per-shard", "2")
    codes = [a.wait(timeout=300), b.wait(timeout=300)]
    errors = a.stderr.read() + b.stderr.read()
    assert 0 in codes, errors
    assert "FileNotFoundError" not in errors and "Traceback" not in errors
    rep = verify_store(out, progress=False)
    assert rep.ok, rep.problems  # no stray shards of the other run


def test_ctrl_c_of_a_parallel_download_leaves_no_temporary_folders(tmp_path):
    root = tmp_path / "served"
    make_video(root / "a.mp4", seconds=2, size=(128, 96))
    make_video(root / "b.mp4", seconds=2, size=(128, 96), tone_hz=880)
    out = tmp_path / "out"
    with MediaServer(root) as srv:
        ids = tmp_path / "ids.txt"
        ids.write_text(f"{srv.url('gate/a.mp4')}\n{srv.url('gate/b.mp4')}\n")
        proc = _start("download", "--ids", str(ids), "--out", str(out), "--jobs", "2",
                      "--no-progress", "--retries", "0")  # fmt: skip
        code = _kill_when(proc, lambda: len(list(out.glob(".tmp-*"))) >= 2, signal.SIGINT)
        srv.gate.set()
    assert code == 130, proc.stderr.read()[-2000:]
    time.sleep(0.5)  # worker processes finish dying
    assert not list(out.glob(".tmp-*"))
