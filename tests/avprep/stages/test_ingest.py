"""`avprep ingest`: a copy of a dataset (folder, tar, zip) becomes a download folder.

Real media made with ffmpeg, real archives (tarfile/zipfile, hostile members
written by hand), the real verification; the mixed run fetches the missing clip
with the real yt-dlp from a loopback server.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from avprep.atomic import sha256_file
from avprep.cli import cli
from avprep.manifest import Manifest
from avprep.stages import download as dl
from avprep.stages.ingest import ingest
from tests.httpserver import MediaServer
from tests.media import make_video

A, B, C, D = "aaaaaaaaaaa_000010", "bbbbbbbbbbb_000020", "ccccccccccc_000030", "ddddddddddd_000040"
FLICKR = "2898394758"
IDS = [A, B, C, D, FLICKR]


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ingest-media")
    good = make_video(root / "good.mp4", seconds=1.0, size=(64, 48))
    other = make_video(root / "other.mp4", seconds=1.0, size=(64, 48), tone_hz=660)
    data = good.read_bytes()
    cut = root / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])  # a truncated copy: not intact media
    return {"good": good, "other": other, "cut": cut}


def _add(tar: tarfile.TarFile, name: str, data: bytes, **kw) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for k, v in kw.items():
        setattr(info, k, v)
    tar.addfile(info, io.BytesIO(data))


def _tar(path: Path, media: dict[str, Path]) -> Path:
    good, other, cut = (media[k].read_bytes() for k in ("good", "other", "cut"))
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, f"vggsound/{A}.mp4", good)
        _add(tar, "vggsound/bbbbbbbbbbb_20.mp4", other)  # another zero padding
        _add(tar, f"vggsound/{C}.mp4", cut)
        _add(tar, "vggsound/zzzzzzzzzzz_000001.mp4", good)  # not in the list
        _add(tar, f"copy2/{A}.mp4", other)  # a second copy: the first is kept
        _add(tar, "../evil.mp4", good)
        _add(tar, "/tmp/abs-evil.mp4", good)
        link = tarfile.TarInfo(f"vggsound/{D}.mp4")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        _add(tar, "README.txt", b"not media")
    return path


def test_tar_ingest_matches_download_and_reports_coverage(media, tmp_path):
    src = _tar(tmp_path / "copy.tar.gz", media)
    out = tmp_path / "videos"
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(IDS) + "\n")
    res = CliRunner().invoke(cli, ["ingest", "--from", str(src), "--ids", str(ids),
                                   "--out", str(out), "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    # the files download would have written, byte for byte the first good copies
    assert sha256_file(out / f"{A}.mp4") == sha256_file(media["good"])
    assert sha256_file(out / f"{B}.mp4") == sha256_file(media["other"])
    assert sorted(p.name for p in out.glob("*.mp4")) == [f"{A}.mp4", f"{B}.mp4"]
    assert not (tmp_path / "evil.mp4").exists() and not Path("/tmp/abs-evil.mp4").exists()
    assert not list(out.glob(".tmp-*"))
    # download's own reader sees them; the records say where they came from
    assert dl.downloaded(out) == {A: out / f"{A}.mp4", B: out / f"{B}.mp4"}
    rec = Manifest(out / "manifest.jsonl").get(A)
    assert rec.ok and rec.meta["source"] == "ingest" and rec.meta["has_video"] is True
    assert rec.meta["ingested_from"] == f"copy.tar.gz:vggsound/{A}.mp4"
    assert rec.meta["bytes"] == (out / f"{A}.mp4").stat().st_size
    report = json.loads((out / "ingest_report.json").read_text())
    assert sorted(report["ingested"]) == [A, B]
    assert report["missing"] == [D, FLICKR] and list(report["corrupt"]) == [C]
    assert report["extra"] == ["vggsound/zzzzzzzzzzz_000001.mp4"]
    assert report["duplicates"] == [f"copy2/{A}.mp4"]
    assert report["refused"] == {
        "../evil.mp4": "'..' in the path",
        "/tmp/abs-evil.mp4": "absolute path",
        f"vggsound/{D}.mp4": "a link",
    }
    assert (out / "missing.txt").read_text() == f"{C}\n{D}\n{FLICKR}\n"
    assert "avprep download --ids" in res.output and "corrupt     1" in res.output
    # a rerun finds them present and changes nothing
    before = (out / "manifest.jsonl").read_text()
    again = ingest(src, IDS, out, progress=False)
    assert sorted(again.already) == [A, B] and again.ingested == []
    assert (out / "manifest.jsonl").read_text() == before


def test_zip_and_folder_sources(media, tmp_path):
    zpath = tmp_path / "copy.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.write(media["good"], f"x/{A}.mp4")
        zf.writestr("../../evil.mp4", media["good"].read_bytes())
        link = zipfile.ZipInfo(f"{B}.mp4")
        link.external_attr = 0o120777 << 16  # a symbolic link member
        zf.writestr(link, "/etc/passwd")
    rep = ingest(zpath, [A, B], tmp_path / "z", progress=False)
    assert rep.ingested == [A] and rep.missing == [B]
    assert rep.refused == {"../../evil.mp4": "'..' in the path", f"{B}.mp4": "a link"}
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(media["other"], folder / "sub" / f"{A}.webm")
    (folder / f"{B}.mp4").symlink_to(media["good"])  # a link is not followed
    rep = ingest(folder, [A, B], tmp_path / "f", progress=False)
    assert rep.ingested == [A] and rep.refused == {f"{B}.mp4": "a link"}
    assert (tmp_path / "f" / f"{A}.webm").is_file()


def test_missing_txt_feeds_download_and_the_mixed_folder_resumes(media, tmp_path):
    """Ingest one Flickr clip, download the other into the same folder (loopback)."""
    other_id = "1111111111"
    src = tmp_path / "copy"
    src.mkdir()
    shutil.copy(media["good"], src / f"{other_id}.mp4")
    out = tmp_path / "videos"
    rep = ingest(src, [FLICKR, other_id], out, progress=False)
    assert rep.ingested == [other_id] and rep.missing == [FLICKR]
    root = tmp_path / "srv"
    flickr = root / "videos" / "27606531@N02" / FLICKR / "play" / "orig"
    flickr.mkdir(parents=True)
    shutil.copy(media["other"], flickr / "a1b2c3d4e5")
    urls = tmp_path / "urls_public.txt"
    urls.write_text(f"http://www.flickr.com/videos/27606531@N02/{FLICKR}/play/orig/a1b2c3d4e5\n")
    with MediaServer(root) as srv:
        res = CliRunner().invoke(
            cli,
            ["download", "--ids", str(out / "missing.txt"), "--dataset", "flickr",
             "--urls-from", str(urls), "--out", str(out), "--proxy", srv.base, "--jobs", "1",
             "--no-progress", "--retries", "0"],
        )  # fmt: skip
    assert res.exit_code == 0, res.output
    m = Manifest(out / "manifest.jsonl")
    assert m.get(FLICKR).ok and m.get(FLICKR).meta.get("source") != "ingest"
    assert m.get(other_id).meta["source"] == "ingest"
    assert sorted(dl.downloaded(out)) == sorted([FLICKR, other_id])
    # and a download of the whole list now has nothing left to fetch
    lines = (out / "manifest.jsonl").read_text()
    res = CliRunner().invoke(
        cli,
        ["download", "--ids", f"{FLICKR},{other_id}", "--dataset", "flickr", "--out", str(out),
         "--no-progress"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (out / "manifest.jsonl").read_text() == lines


def test_soundnet_url_on_a_mirror_keeps_its_flickr_id(media, tmp_path):
    """A SoundNet URL served by a mirror (here loopback) is saved under its Flickr id."""
    root = tmp_path / "mirror"
    path = root / "soundnet" / "videos" / "27606531@N02" / FLICKR / "play" / "orig"
    path.mkdir(parents=True)
    shutil.copy(media["good"], path / "a1b2c3d4e5")
    out = tmp_path / "out"
    with MediaServer(root) as srv:
        urls = tmp_path / "urls.txt"
        urls.write_text(
            srv.url(f"soundnet/videos/27606531@N02/{FLICKR}/play/orig/a1b2c3d4e5") + "\n"
        )
        for fmt in ("auto", "soundnet-urls"):
            from avprep.recipes import load_clips

            df = load_clips(urls, fmt=fmt)
            assert df["clip_id"].tolist() == [FLICKR] and df["source"].tolist() == ["flickr"]
        res = CliRunner().invoke(
            cli,
            ["download", "--ids", str(urls), "--format", "soundnet-urls", "--out", str(out),
             "--jobs", "1", "--no-progress", "--retries", "0"],
        )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert Manifest(out / "manifest.jsonl").get(FLICKR).ok
    (saved,) = [p for p in out.iterdir() if not p.name.startswith(".") and p.suffix != ".jsonl"]
    assert saved.stem == FLICKR and sha256_file(saved) == sha256_file(media["good"])
