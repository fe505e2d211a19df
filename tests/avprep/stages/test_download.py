"""`avprep download`: real yt-dlp fetching real media from a loopback server.

Every download goes through yt-dlp's generic extractor to 127.0.0.1 (see
tests/httpserver.py for the routes: 404, truncated, stalling, redirect,
flaky, gated); files are checked with the real ffmpeg.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from avprep.atomic import sha256_file
from avprep.cli import cli
from avprep.errors import ConfigError, InputError
from avprep.ffmpeg import ffmpeg_binary, probe
from avprep.manifest import Manifest
from avprep.stages import download as dl
from tests.httpserver import MediaServer

FAST = dict(retries=0, backoff=0.01, timeout=5)


@pytest.fixture(scope="module")
def dl_root(media_dir, tmp_path_factory) -> Path:
    """media_dir's files plus a moov-first MP4 and a cut-off copy of it."""
    root = tmp_path_factory.mktemp("dlmedia")
    for p in media_dir.iterdir():
        shutil.copy(p, root / p.name)
    subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-y", "-i", str(root / "clip_b.mp4"), "-c", "copy",
         "-movflags", "+faststart", str(root / "fast.mp4")],
        check=True,
    )  # fmt: skip
    data = (root / "fast.mp4").read_bytes()
    (root / "cut.mp4").write_bytes(data[: len(data) * 6 // 10])
    # what SoundNet's Flickr URLs point at (reached through the server as a proxy)
    flickr = root / "videos" / "27606531@N02" / "2898394758" / "play" / "orig"
    flickr.mkdir(parents=True)
    shutil.copy(root / "clip_a.mp4", flickr / "a1b2c3d4e5")
    return root


@pytest.fixture()
def srv(dl_root):
    with MediaServer(dl_root) as server:
        yield server


def cfg(out: Path, **kw) -> dl.DownloadConfig:
    return dl.DownloadConfig(out=out, **{**FAST, **kw})


def run(rows, out, *, jobs=1, **kw):
    opts = {k: kw.pop(k) for k in list(kw) if k in ("retry_failed", "skip_bad", "limit")}
    return dl.download_clips(rows, cfg(out, **kw), jobs=jobs, progress=False, **opts)


def records(out: Path) -> dict[str, dict]:
    """Last record per clip, read straight from the JSONL file."""
    recs = {}
    for line in (out / "manifest.jsonl").read_text().splitlines():
        d = json.loads(line)
        if "_header" not in d:
            recs[d["clip_id"]] = d
    return recs


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".tmp-"))


# ----------------------------------------------------------------------------- happy paths


def test_files_redirect_no_audio_in_parallel(srv, dl_root, tmp_path):
    out = tmp_path / "out"
    rows = [
        {"clip_id": "a", "url": srv.url("clip_a.mp4")},
        {"clip_id": "b", "url": srv.url("redirect/clip_b.mp4")},
        {"clip_id": "quiet", "url": srv.url("silent.mp4")},
    ]
    report = run(rows, out, jobs=2)
    assert report.counts() == {"ok": 3}
    recs = records(out)
    # byte-identical copies of what the server holds, under <clip_id>.<ext>
    for clip_id, name in [("a", "clip_a.mp4"), ("b", "clip_b.mp4"), ("quiet", "silent.mp4")]:
        rec = recs[clip_id]
        assert rec["status"] == "ok" and rec["error"] is None and rec["attempts"] == 1
        assert rec["outputs"]["path"] == f"{clip_id}.mp4"
        assert sha256_file(out / f"{clip_id}.mp4") == sha256_file(dl_root / name)
        assert rec["meta"]["bytes"] == (dl_root / name).stat().st_size
    assert recs["b"]["meta"]["duration"] == pytest.approx(4.0, abs=0.2)
    assert srv.hits["/redirect/clip_b.mp4"] >= 1 and srv.hits["/clip_b.mp4"] >= 1
    # a file without audio is kept (ok) and flagged; extraction rejects it later
    assert recs["quiet"]["meta"]["has_audio"] is False and recs["a"]["meta"]["has_audio"] is True
    assert report.without_audio == 1
    header = Manifest(out / "manifest.jsonl").header
    assert header["yt_dlp"] and header["ffmpeg"] and header["stage"] == "download"
    assert header["options"]["proxy"] is False
    assert leftovers(out) == []
    assert dl.downloaded(out) == {c: out / f"{c}.mp4" for c in ("a", "b", "quiet")}


@pytest.mark.slow  # ~2-4 s: kept out of make test-fast
def test_a_dask_cluster_downloads_through_the_cli(srv, dl_root, tmp_path):
    """`--backend dask --scheduler ADDR` runs on that cluster: same files, same records."""
    distributed = pytest.importorskip("dask.distributed")
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{srv.base}/clip_a.mp4\n{srv.base}/clip_b.mp4\n{srv.base}/missing/x.mp4\n")
    out = tmp_path / "out"
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        args = ["download", "--ids", str(ids), "--dataset", "urls", "--out", str(out),
                "--backend", "dask", "--scheduler", cluster.scheduler_address, "--retries", "0",
                "--no-progress"]  # fmt: skip
        with distributed.Client(cluster.scheduler_address) as client, \
                distributed.get_task_stream(client) as stream:  # fmt: skip
            result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    # the three clips ran as tasks on this cluster (not on a cluster of its own)
    assert len(stream.data) == 3
    assert len({t["worker"] for t in stream.data}) >= 1
    recs = records(out)
    assert {c: r["status"] for c, r in recs.items()} == {
        "clip_a": "ok", "clip_b": "ok", "x": "unavailable"}  # fmt: skip
    for cid in ("clip_a", "clip_b"):
        assert sha256_file(out / f"{cid}.mp4") == sha256_file(dl_root / f"{cid}.mp4")
    assert srv.hits["/missing/x.mp4"] == 1 and leftovers(out) == []


def test_section_of_a_clip_with_start_time(srv, tmp_path):
    out = tmp_path / "out"
    rows = [{"clip_id": "sec", "url": srv.url("fast.mp4"), "start": 1.0, "end": 9.0}]
    run(rows, out, section=1.5)  # --section overrides the row's end
    rec = records(out)["sec"]
    assert rec["status"] == "ok" and rec["meta"]["section"] == [1.0, 2.5]
    assert probe(out / "sec.mp4").duration == pytest.approx(1.5, abs=0.3)


# ----------------------------------------------------------------------------- failures


def test_404_and_410_are_unavailable_and_not_retried(srv, tmp_path):
    out = tmp_path / "out"
    rows = [
        {"clip_id": "gone", "url": srv.url("missing/x.mp4")},
        {"clip_id": "removed", "url": srv.url("status/410/y.mp4")},
    ]
    report = run(rows, out, retries=3)
    assert report.counts() == {"unavailable": 2}
    recs = records(out)
    assert "404" in recs["gone"]["error"] and recs["gone"]["attempts"] == 1
    assert recs["removed"]["attempts"] == 1
    assert srv.hits["/missing/x.mp4"] == 1 and srv.hits["/status/410/y.mp4"] == 1
    assert sorted(p.name for p in out.iterdir()) == [".download.lock", "manifest.jsonl"]


def test_5xx_and_429_are_retried_with_backoff(srv, tmp_path):
    out = tmp_path / "out"
    rows = [
        {"clip_id": "busy", "url": srv.url("status/503/a.mp4")},
        {"clip_id": "throttled", "url": srv.url("status/429/a.mp4")},
        {"clip_id": "flaky", "url": srv.url("flaky/2/clip_a.mp4")},
    ]
    run(rows, out, retries=2)
    recs = records(out)
    assert recs["busy"]["status"] == "failed" and "503" in recs["busy"]["error"]
    assert recs["busy"]["attempts"] == 3 and srv.hits["/status/503/a.mp4"] == 3
    assert recs["throttled"]["status"] == "failed" and srv.hits["/status/429/a.mp4"] == 3
    # two 503s, then the file: the third attempt succeeds
    assert recs["flaky"]["status"] == "ok" and recs["flaky"]["attempts"] == 3
    assert (out / "flaky.mp4").is_file() and not (out / "busy.mp4").exists()


def test_truncated_and_undecodable_files_fail_without_a_final_file(srv, tmp_path):
    out = tmp_path / "out"
    rows = [
        # the server announces the full length and sends half
        {"clip_id": "trunc", "url": srv.url("truncated/clip_a.mp4")},
        # a cut file served "correctly": header intact (moov first), tail missing
        {"clip_id": "cut", "url": srv.url("cut.mp4")},
        {"clip_id": "broken", "url": srv.url("broken.mp4")},
        # a section read through ffmpeg from a stream that ends early
        {"clip_id": "trunc_sec", "url": srv.url("truncated/fast.mp4"), "start": 0.5},
    ]
    report = run(rows, out, retries=1)
    assert report.counts() == {"failed": 4}
    recs = records(out)
    assert "truncated" in recs["trunc"]["error"]
    assert "truncated download" in recs["cut"]["error"] and "decodable" in recs["broken"]["error"]
    assert "section download failed" in recs["trunc_sec"]["error"]
    assert all(r["attempts"] == 2 for r in recs.values())  # retryable: tried twice
    assert srv.hits["/truncated/clip_a.mp4"] >= 2
    assert sorted(p.name for p in out.iterdir()) == [".download.lock", "manifest.jsonl"]


@pytest.mark.slow  # ~2-4 s: kept out of make test-fast
def test_stalling_server_times_out(srv, tmp_path):
    out = tmp_path / "out"
    rows = [
        {"clip_id": "stall", "url": srv.url("stall/clip_a.mp4")},
        {"clip_id": "stall_sec", "url": srv.url("stall/clip_b.mp4"), "start": 0.0, "end": 2.0},
    ]
    report = run(rows, out, timeout=1)
    assert report.counts() == {"failed": 2}
    recs = records(out)
    assert recs["stall"]["error"].startswith("timeout")
    assert "section download failed" in recs["stall_sec"]["error"]
    assert not list(out.glob("stall*"))


# ----------------------------------------------------------------------------- resume


def test_rerun_skips_done_refetches_missing_and_retry_failed(srv, tmp_path):
    out = tmp_path / "out"
    rows = [
        {"clip_id": "a", "url": srv.url("clip_a.mp4")},
        {"clip_id": "b", "url": srv.url("clip_b.mp4")},
        {"clip_id": "gone", "url": srv.url("missing/g.mp4")},
    ]
    run(rows, out)
    first = dict(srv.hits)
    # what a killed run leaves: a temp folder with a partial file, a temp file,
    # and a manifest line cut short mid-write
    (out / ".tmp-c-x1").mkdir()
    (out / ".tmp-c-x1" / "media.mp4.part").write_bytes(b"partial")
    (out / ".tmp-d.abc.mp4").write_bytes(b"partial")
    with open(out / "manifest.jsonl", "a") as fh:
        fh.write('{"clip_id": "c", "status": "o')
    (out / "b.mp4").unlink()  # an ok clip whose file went missing
    rows += [{"clip_id": "c", "url": srv.url("silent.mp4")}]
    report = run(rows, out)
    assert srv.hits["/clip_a.mp4"] == first["/clip_a.mp4"]  # done: not fetched again
    assert srv.hits["/missing/g.mp4"] == 1  # unavailable: not retried by default
    assert srv.hits["/clip_b.mp4"] > first["/clip_b.mp4"] and srv.hits["/silent.mp4"] > 0
    assert report.already_done == 1 and report.not_retried == 1 and report.swept == 2
    assert {r.clip_id for r in report.records} == {"b", "c"}
    assert leftovers(out) == [] and (out / "b.mp4").is_file() and (out / "c.mp4").is_file()
    # --retry-failed asks again for the unavailable one, and only for it
    report = run(rows, out, retry_failed=True)
    assert [r.clip_id for r in report.records] == ["gone"] and srv.hits["/missing/g.mp4"] == 2


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_interrupted_mid_download_then_resume(srv, dl_root, tmp_path, sig):
    out = tmp_path / "out"
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{srv.url('clip_a.mp4')}\n{srv.url('gate/clip_b.mp4')}\n")
    # SIGINT handled as in a terminal even when this test runs where it is ignored (a
    # background job of a non-interactive shell passes SIGINT ignored to its children)
    main = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from avprep.cli import main; main()")  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-c", main, "download",
         "--ids", str(ids), "--out", str(out), "--jobs", "1", "--no-progress", "--retries", "0"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            parts = list(out.glob(".tmp-clip_b-*/*.part"))
            if (
                parts
                and parts[0].stat().st_size > 0
                and "clip_a" in Manifest(out / "manifest.jsonl")
            ):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the download never reached the gated file")
    finally:
        os.killpg(proc.pid, sig)
        code = proc.wait(timeout=60)
    # the finished clip is kept; the half-fetched one never has its final name:
    # Ctrl-C removes it, kill -9 leaves it under a .tmp- name for the next run
    assert sha256_file(out / "clip_a.mp4") == sha256_file(dl_root / "clip_a.mp4")
    assert not list(out.glob("clip_b*"))
    if sig == signal.SIGINT:
        assert code == 130 and leftovers(out) == []
    else:
        assert leftovers(out)
    hits_a = srv.hits["/clip_a.mp4"]
    srv.gate.set()
    result = CliRunner().invoke(
        cli, ["download", "--ids", str(ids), "--out", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert srv.hits["/clip_a.mp4"] == hits_a
    assert records(out)["clip_b"]["status"] == "ok" and leftovers(out) == []
    assert sha256_file(out / "clip_b.mp4") == sha256_file(dl_root / "clip_b.mp4")


# ----------------------------------------------------------------------------- id sources


def test_soundnet_flickr_urls_for_bare_ids(srv, dl_root, tmp_path):
    ids = _write(tmp_path / "ids.txt", "2898394758\n1111111111")
    urls = _write(
        tmp_path / "urls_public.txt",
        "http://www.flickr.com/videos/27606531@N02/2898394758/play/orig/a1b2c3d4e5",
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["download", "--ids", ids, "--dataset", "flickr", "--urls-from", urls, "--out",
         str(out), "--proxy", srv.base, "--jobs", "1", "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    recs = records(out)
    assert recs["2898394758"]["status"] == "ok" and (out / "2898394758.mp4").is_file()
    assert recs["2898394758"]["meta"]["url"].startswith("http://www.flickr.com/videos/")
    assert srv.proxied["/videos/27606531@N02/2898394758/play/orig/a1b2c3d4e5"] >= 1
    # an id SoundNet's list does not hold: recorded, with what to do
    assert (
        recs["1111111111"]["status"] == "skipped" and "--urls-from" in recs["1111111111"]["error"]
    )


def test_registry_name_resolves_to_youtube_sections(shared_metadata, tmp_path, monkeypatch):
    from avprep import catalog

    entry = catalog.get_entry("vggsound/train-144k")
    mirror = tmp_path / "mirror"
    (mirror / entry.relpath).parent.mkdir(parents=True)
    shutil.copy(shared_metadata / "ezvsl" / "vggss_144k.txt", mirror / entry.relpath)
    monkeypatch.setenv("AVPREP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AVPREP_METADATA_MIRROR", str(mirror))
    first = (shared_metadata / "ezvsl" / "vggss_144k.txt").read_text().split()[:2]
    out = tmp_path / "out"
    # no network here: a dead proxy makes each attempt fail at once, which is
    # enough to see what would have been fetched
    result = CliRunner().invoke(
        cli,
        ["download", "--ids", "vggsound/train-144k", "--limit", "2", "--out", str(out),
         "--proxy", "http://127.0.0.1:1", "--retries", "0", "--jobs", "1", "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    recs = records(out)
    assert list(recs) == first
    for clip_id, rec in recs.items():
        ytid, start = clip_id.rsplit("_", 1)
        assert rec["meta"]["url"] == f"https://www.youtube.com/watch?v={ytid}"
        assert rec["meta"]["section"] == [int(start), int(start) + 10]
        assert rec["status"] == "failed" and "proxy" in rec["error"]


# ----------------------------------------------------------------------------- hostile input


def test_hostile_rows_are_rejected_and_duplicates_dropped(tmp_path):
    rows = [
        {"clip_id": "ok1", "url": "http://127.0.0.1:9/a.mp4"},
        {"clip_id": "ok1", "url": "http://127.0.0.1:9/a.mp4"},
        {"clip_id": "../../etc/passwd", "url": "http://127.0.0.1:9/a.mp4"},
        {"clip_id": "x;rm -rf ~", "url": "http://127.0.0.1:9/a.mp4"},
        {"clip_id": "$(touch pwned)", "url": "http://127.0.0.1:9/a.mp4"},
        {"clip_id": "f", "url": "file:///etc/passwd"},
        {"clip_id": "j", "url": "javascript:alert(1)"},
        {"clip_id": "sp", "url": "http://127.0.0.1:9/a b.mp4"},
        {"clip_id": "port", "url": "http://127.0.0.1:99999999/a.mp4"},
        {"clip_id": "t", "url": "http://127.0.0.1:9/a.mp4", "start": 5, "end": 2},
    ]
    with pytest.raises(InputError, match="8 bad clip row"):
        dl.prepare_clips(rows)
    prepared = dl.prepare_clips(rows, skip_bad=True)
    assert [c.clip_id for c in prepared.clips] == ["ok1"]
    assert prepared.duplicates == 1 and len(prepared.rejected) == 8
    # a bare VGGSound id becomes a YouTube section; a clip without any URL is skipped
    vgg = dl.prepare_clips([{"clip_id": "zpWuikVorYg_000032"}]).clips[0]
    assert vgg.url == "https://www.youtube.com/watch?v=zpWuikVorYg" and vgg.start == 32


def test_hostile_id_list_through_the_cli(srv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "work" / "out"
    base = srv.base
    ids = tmp_path / "ids.txt"
    ids.write_text(
        "# a comment\n\n"
        f"{base}/clip_a.mp4\n"
        f"{base}/clip_a.mp4\n"  # duplicate
        f"{base}/x/..%2F..%2Fevil.mp4\n"  # traversal hidden in an encoded name
        f"{base}/$(touch%20pwned).mp4\n"  # shell metacharacters
        f"{base}/a;rm -rf ~.mp4\n"
        "file:///etc/passwd\n"
        "javascript:alert(1)\n"
        "http://[::1/broken.mp4\n"
    )
    runner = CliRunner()
    args = ["download", "--ids", str(ids), "--dataset", "urls", "--out", str(out), "--no-progress"]
    result = runner.invoke(cli, args)
    assert isinstance(result.exception, InputError)
    assert "line 5" in str(result.exception) and "--skip-bad" in str(result.exception)
    assert not srv.hits and not out.exists()  # nothing fetched, nothing written
    result = runner.invoke(cli, [*args, "--skip-bad"])
    assert result.exit_code == 0, result.output
    assert "1 duplicate(s) dropped" in result.output and "6 bad row(s) skipped" in result.output
    assert records(out).keys() == {"clip_a"}
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert written == ["ids.txt", "work", "work/out", "work/out/.download.lock",
                       "work/out/clip_a.mp4", "work/out/manifest.jsonl"]  # fmt: skip
    assert set(srv.hits) == {"/clip_a.mp4"}


# ----------------------------------------------------------------------------- secrets


def test_proxy_and_cookies_are_used_but_never_shown(srv, tmp_path, caplog):
    caplog.set_level("DEBUG", logger="avprep")
    out = tmp_path / "out"
    cookies = tmp_path / "cookies.txt"
    cookies.write_text(
        "# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsid\tC00KIEVALUE\n"
    )
    before = cookies.read_bytes()
    proxy = srv.base.replace("http://", "http://agent:S3CRETPW@")
    dead = "http://agent:S3CRETPW@127.0.0.1:1"
    runner = CliRunner()
    res_ok = runner.invoke(
        cli,
        ["download", "--ids", _write(tmp_path / "a.txt", srv.url("clip_a.mp4")), "--out",
         str(out), "--proxy", proxy, "--cookies", str(cookies), "--no-progress"],
    )  # fmt: skip
    res_dead = runner.invoke(
        cli,
        ["download", "--ids", _write(tmp_path / "b.txt", srv.url("clip_b.mp4")), "--out",
         str(out), "--proxy", dead, "--cookies", str(cookies), "--retries", "0",
         "--no-progress"],
    )  # fmt: skip
    assert res_ok.exit_code == 0 and res_dead.exit_code == 0, res_ok.output + res_dead.output
    recs = records(out)
    assert recs["clip_a"]["status"] == "ok"
    assert recs["clip_b"]["status"] == "failed" and "proxy" in recs["clip_b"]["error"]
    # they were really used: the request came through the proxy, with the cookie
    assert srv.proxied["/clip_a.mp4"] >= 1
    sent = [h for p, h in srv.requests if p == "/clip_a.mp4"]
    assert any(h.get("Cookie") == "sid=C00KIEVALUE" for h in sent)
    assert any("Proxy-Authorization" in h for h in sent)
    shown = (out / "manifest.jsonl").read_text() + res_ok.output + res_dead.output + caplog.text
    for secret in ("S3CRETPW", "agent:", "C00KIEVALUE", str(cookies), "cookies.txt"):
        assert secret not in shown
    assert cookies.read_bytes() == before  # yt-dlp did not write the jar back


def _write(path: Path, text: str) -> str:
    path.write_text(text + "\n")
    return str(path)


def test_scrubber_and_missing_cookies_file(tmp_path):
    scrub = dl.Scrubber.for_config(
        dl.DownloadConfig(out=tmp_path, proxy="socks5://u%40x:p%2Fw@h:1")
    )
    text = scrub("failed via socks5://u%40x:p%2Fw@h:1 (user u@x, pw p/w) http://a:b@c/d")
    assert "p%2Fw" not in text and "p/w" not in text and "u@x" not in text and "a:b@" not in text
    with pytest.raises(ConfigError) as err:
        dl.DownloadConfig(out=tmp_path, cookies=str(tmp_path / "secret-name.txt"))
    assert "secret-name" not in str(err.value)
    assert "proxy" not in repr(dl.DownloadConfig(out=tmp_path, proxy="http://u:pw@h:1"))


# ----------------------------------------------------------------------------- pieces


def test_error_classification_of_real_yt_dlp_errors():
    from yt_dlp.utils import DownloadError, ExtractorError

    def err(msg: str) -> DownloadError:
        return DownloadError(f"ERROR: [youtube] abcdefghijk: {msg}")

    assert dl.classify_error(err("Private video. Sign in if you've been granted access"))[0] == (
        "unavailable"
    )
    assert dl.classify_error(err("Video unavailable. This video has been removed"))[0] == (
        "unavailable"
    )
    assert dl.classify_error(err("Sign in to confirm your age."))[0] == "unavailable"
    status, reason = dl.classify_error(err("Sign in to confirm you’re not a bot."))
    assert status == "failed" and "--rate-limit" in reason
    assert dl.classify_error(err("HTTP Error 429: Too Many Requests"))[0] == "failed"
    assert dl.classify_error(err("Requested format is not available"))[0] == "failed"
    assert dl.classify_error(err("HTTP Error 503: Service Unavailable"))[0] == "failed"
    wrapped = DownloadError(
        "ERROR: boom", exc_info=(None, ExtractorError("x", expected=True), None)
    )
    assert dl.classify_error(wrapped) == ("failed", "boom")


def test_youtube_section_options(tmp_path):
    clip = dl.prepare_clips([{"clip_id": "zpWuikVorYg_000032", "end": 42}]).clips[0]
    opts = dl._ydl_options(clip, cfg(tmp_path), tmp_path, dl.Scrubber())
    assert list(opts["download_ranges"]({}, None)) == [{"start_time": 32.0, "end_time": 42}]
    assert opts["retries"] == 0 and opts["socket_timeout"] == 5 and "proxy" not in opts
    opts = dl._ydl_options(clip, cfg(tmp_path, section=3), tmp_path, dl.Scrubber())
    assert list(opts["download_ranges"]({}, None)) == [{"start_time": 32.0, "end_time": 35.0}]
    whole = dl.prepare_clips([{"clip_id": "f1", "url": "http://h/f1.mp4"}]).clips[0]
    assert "download_ranges" not in dl._ydl_options(whole, cfg(tmp_path), tmp_path, dl.Scrubber())


def test_vggsound_csv_split_becomes_ten_second_sections(tmp_path):
    from avprep.recipes import load_clips

    csv = tmp_path / "vggsound.csv"
    csv.write_text(
        '---g-f_I2yQ,1,"people marching",test\r\n--0PQM4-hqg,30,"waterfall, burbling",train\r\n'
    )
    rows = load_clips(csv, split="test")
    clips = dl.prepare_clips(rows).clips
    assert [(c.clip_id, c.url, c.start, c.end) for c in clips] == [
        ("---g-f_I2yQ_000001", "https://www.youtube.com/watch?v=---g-f_I2yQ", 1.0, 11.0)
    ]
    assert dl._section(clips[0], cfg(tmp_path)) == (1.0, 11.0)


def _reserve(path: str, n: int, q) -> None:
    limiter = dl.RateLimiter(path, per_minute=600)
    q.put([limiter.reserve() for _ in range(n)])


def test_rate_limit_slots_are_shared_across_processes(tmp_path):
    path = str(tmp_path / ".ratelimit")
    dl.RateLimiter(path, 600).reset()
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_reserve, args=(path, 4, q)) for _ in range(2)]
    for p in procs:
        p.start()
    slots = sorted(q.get(timeout=60) + q.get(timeout=60))
    for p in procs:
        p.join()
    gaps = [b - a for a, b in zip(slots, slots[1:])]
    assert len(slots) == 8 and min(gaps) == pytest.approx(0.1, abs=1e-6)


def test_backoff_rate_parsing_and_cli_strict(srv, tmp_path):
    import random

    rng = random.Random(0)
    for attempt, low, high in [(1, 1, 2), (2, 2, 4), (3, 4, 8), (9, 30, 60)]:
        d = dl.backoff_delay(attempt, base=2, cap=60, rng=rng)
        assert low <= d <= high
    assert dl.parse_rate("30") == 30 and dl.parse_rate("2/s") == 120 and dl.parse_rate("60/h") == 1
    with pytest.raises(ConfigError):
        dl.parse_rate("fast")
    ids = _write(tmp_path / "ids.txt", f"{srv.url('clip_a.mp4')}\n{srv.url('missing/m.mp4')}")
    args = ["download", "--ids", ids, "--out", str(tmp_path / "o"), "--no-progress"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "unavailable" in result.output and "top error reasons" in result.output
    result = CliRunner().invoke(cli, [*args, "--strict"])
    assert "1 of 2 clip(s) are not ok" in str(result.exception)
    result = CliRunner().invoke(cli, [*args, "--limit", "1", "--strict"])
    assert result.exit_code == 0 and "already done             1" in result.output


def test_one_run_per_folder(tmp_path):
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    with open(out / dl.LOCK_NAME, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(ConfigError, match="another avprep download"):
            run([{"clip_id": "a", "url": "http://127.0.0.1:9/a.mp4"}], out)
