"""The metadata registry and `avprep metadata fetch`: real registry, loopback mirror."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from avprep import catalog
from avprep.atomic import sha256_file
from avprep.cli import cli
from avprep.errors import (
    ChecksumError,
    ConfigError,
    DownloadError,
    InputError,
    UnavailableError,
    UnknownNameError,
)
from avprep.recipes import DATASETS, FORMATS, load_clips
from tests.avprep.recipes.test_recipes import readme_rows
from tests.httpserver import MediaServer

VENV_BIN = Path(sys.executable).parent
RAW = re.compile(r"^https://raw\.githubusercontent\.com/([^/]+/[^/]+)/([^/]+)/(.+)$")


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """An empty AVPREP_HOME (the cache) for one test."""
    root = tmp_path / "home"
    monkeypatch.setenv("AVPREP_HOME", str(root))
    monkeypatch.delenv("AVPREP_METADATA_MIRROR", raising=False)
    return root


# ---------------------------------------------------------------- the registry


def test_registry_entries_are_well_formed():
    entries = catalog.list_entries()
    names = [e.name for e in entries] + [a for e in entries for a in e.aliases]
    assert len(names) == len(set(names))
    for e in entries:
        assert e.format in FORMATS, e.name
        assert e.corpus in DATASETS, e.name
        assert e.split in ("train", "test", None), e.name
        assert e.relpath == e.name + Path(e.file).suffix
        assert ".." not in e.relpath and not e.relpath.startswith("/")
        assert e.urls and e.description, e.name
        if e.sha256 is None:
            assert "sha256 unknown" in e.notes, e.name  # say why
        for url in e.urls:
            if "githubusercontent" in url:
                assert RAW.match(url), url
    # the two files from the datasets' own sites
    assert catalog.get_entry("soundnet/urls-public").urls == (
        "http://data.csail.mit.edu/soundnet/urls_public.txt",
    )
    assert catalog.get_entry("vggsound/all").format == "vggsound-csv"
    # aliases resolve to the entry, unknown names list the valid ones
    assert catalog.get_entry("vggsound/train-144k").name == "ezvsl/vggss-144k"
    assert catalog.get_entry("ezvsl/vggss-json").name == "vggss/test-5158"
    with pytest.raises(UnknownNameError, match=r"unknown metadata name 'x/y'; valid: .*flickr/"):
        catalog.get_entry("x/y")


def test_registry_matches_shared_readme_and_copies(shared_metadata):
    """Every file of ../shared/metadata is in the registry with its README address, size,
    line count and sha256, and that sha256 is the sha256 of the shared copy."""
    rows = readme_rows(shared_metadata)
    assert len(rows) == 24
    by_url = {u: e for e in catalog.list_entries() for u in e.urls}
    for row in rows:
        matches = [
            (u, e)
            for u, e in by_url.items()
            if (m := RAW.match(u)) and m.group(1) == row["repo"] and m.group(3) == row["path"]
        ]
        assert len(matches) == 1, row["file"]
        url, entry = matches[0]
        assert entry.sha256 == row["sha"], row["file"]
        assert entry.bytes == row["bytes"], row["file"]
        copy = shared_metadata / row["file"]
        assert sha256_file(copy) == entry.sha256, row["file"]
        assert copy.stat().st_size == entry.bytes
        assert entry.file == Path(row["path"]).name
    # the byte-identical duplicates the README mentions are extra urls of one entry
    flickr = catalog.get_entry("flickr/test-249")
    assert any(u.endswith("/EZ-VSL/main/metadata/flickr_test.csv") for u in flickr.urls)
    assert any(u.endswith("/SSL-TIE/main/metadata/test_flick.csv") for u in flickr.urls)
    vggss = catalog.get_entry("vggss/test-5158")
    assert sum(u.endswith("/metadata/vggss.json") for u in vggss.urls) == 3


# ---------------------------------------------------------------- fetching


def make_mirror(root: Path, shared: Path, names: dict[str, str]) -> Path:
    """A mirror folder laid out by the rule <name><suffix>, filled from the shared copies."""
    for name, rel in names.items():
        dest = root / catalog.get_entry(name).relpath
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared / rel, dest)
    return root


def test_fetch_from_mirror_verifies_and_reuses(home, tmp_path, shared_metadata):
    mirror = make_mirror(
        tmp_path / "mirror",
        shared_metadata,
        {
            "flickr/test-249": "sspl/flickr_test249_in5k.csv",
            "vggss/test-5158": "sspl/vggss_test_5158.json",
        },
    )
    with MediaServer(mirror) as srv:
        path = catalog.fetch("flickr/test-249", mirror=srv.base + "/")
        assert path == home / "metadata" / "flickr" / "test-249.csv"
        assert sha256_file(path) == catalog.get_entry("flickr/test-249").sha256
        assert srv.hits["/flickr/test-249.csv"] == 1  # the mirror rule: <mirror>/<name><suffix>
        # a verified cached copy is reused without a request; --force downloads again
        assert catalog.fetch("flickr/test-249", mirror=srv.base) == path
        assert srv.hits["/flickr/test-249.csv"] == 1
        catalog.fetch("flickr/test-249", mirror=srv.base, force=True)
        assert srv.hits["/flickr/test-249.csv"] == 2
        # a corrupted cached copy is replaced
        path.write_text("tampered\n")
        assert catalog.cached("flickr/test-249") is None
        catalog.fetch("flickr/test-249", mirror=srv.base)
        assert sha256_file(path) == catalog.get_entry("flickr/test-249").sha256
        # an alias fetches the same file; a registry name works wherever a path does
        assert catalog.fetch("ezvsl/vggss-json", mirror=srv.base).name == "test-5158.json"
    df = load_clips("flickr/test-249")
    assert len(df) == 249 and set(df["split"]) == {"test"}
    assert df.attrs["name"] == "flickr/test-249" and df.attrs["format"] == "flickr-id-csv"
    assert len(load_clips("vggss/test-5158")) == 5158
    assert not list((home / "metadata").rglob(".tmp-*"))


def test_checksum_mismatch_leaves_no_file(home, tmp_path, shared_metadata):
    mirror = tmp_path / "mirror"
    (mirror / "flickr").mkdir(parents=True)
    good = (shared_metadata / "sspl/flickr_test249_in5k.csv").read_bytes()
    (mirror / "flickr" / "test-249.csv").write_bytes(good.replace(b"202", b"203", 1))
    with MediaServer(mirror) as srv:
        with pytest.raises(ChecksumError, match="sha256"):
            catalog.fetch("flickr/test-249", mirror=srv.base)
    target = home / "metadata" / "flickr"
    assert list(target.iterdir()) == []  # neither the file nor a temporary
    # a wrong size is caught the same way
    (mirror / "flickr" / "test-249.csv").write_bytes(good + b"1,0\r\n")
    with MediaServer(mirror) as srv, pytest.raises(ChecksumError, match="bytes"):
        catalog.fetch("flickr/test-249", mirror=srv.base)
    assert list(target.iterdir()) == []


def test_missing_on_mirror_is_unavailable(home, tmp_path):
    (tmp_path / "empty").mkdir()
    with MediaServer(tmp_path / "empty") as srv, pytest.raises(UnavailableError, match="404"):
        catalog.fetch("flickr/test-249", mirror=srv.base)
    # credentials in a mirror address never reach the message
    with MediaServer(tmp_path / "empty") as srv, pytest.raises(DownloadError) as exc:
        catalog.fetch("flickr/test-249", mirror=srv.base.replace("//", "//me:secret@"))
    assert "secret" not in str(exc.value) and "***@" in str(exc.value)
    # a folder works as a mirror too (file:// URL)
    with pytest.raises(UnavailableError):
        catalog.fetch("flickr/test-249", mirror=str(tmp_path / "empty"))
    assert not (home / "metadata" / "flickr" / "test-249.csv").exists()


def write_registry(folder: Path, entries: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "registry.yaml").write_text(json.dumps({"version": 1, "entries": entries}))
    return folder


def test_fallback_urls_unknown_sha_and_env_mirror(home, tmp_path, monkeypatch):
    media = tmp_path / "site"
    media.mkdir()
    body = b'abcdefghijk,10,"a, b",train\nabcdefghijk,20,c,test\n'
    (media / "vggsound.csv").write_bytes(body)
    with MediaServer(media) as srv:
        reg = write_registry(
            tmp_path / "reg",
            [
                {
                    "name": "toy/all",
                    "file": "vggsound.csv",
                    "format": "vggsound-csv",
                    "corpus": "vggsound",
                    "urls": [srv.url("missing/vggsound.csv"), srv.url("vggsound.csv")],
                    "sha256": None,
                    "description": "toy",
                },
                {
                    "name": "toy/checked",
                    "file": "vggsound.csv",
                    "format": "vggsound-csv",
                    "corpus": "vggsound",
                    "urls": [srv.url("vggsound.csv")],
                    "sha256": __import__("hashlib").sha256(body).hexdigest(),
                    "bytes": len(body),
                },
            ],
        )
        monkeypatch.setenv("AVPREP_METADATA", str(reg))
        assert [e.name for e in catalog.list_entries()] == ["toy/all", "toy/checked"]
        # the first address is gone, the second serves the file; nothing to check it against
        path = catalog.fetch("toy/all")
        assert path.read_bytes() == body
        assert srv.hits["/missing/vggsound.csv"] == 1 and srv.hits["/vggsound.csv"] == 1
        assert load_clips("toy/all", split="test")["clip_id"].tolist() == ["abcdefghijk_000020"]
        # AVPREP_METADATA_MIRROR replaces the addresses like --mirror
        (media / "toy").mkdir()
        (media / "toy" / "checked.csv").write_bytes(body)
        monkeypatch.setenv("AVPREP_METADATA_MIRROR", srv.base)
        catalog.fetch("toy/checked")
        assert srv.hits["/toy/checked.csv"] == 1
    with pytest.raises(DownloadError):
        catalog.fetch("toy/checked", force=True, timeout=2, attempts=1)  # server gone


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "../x", "file": "a.txt"}, "bad name"),
        ({"name": "a/b", "file": "../a.txt"}, "bare file name"),
        ({"name": "a/b", "file": "a.txt", "sha256": "abc"}, "sha256 must be"),
        ({"name": "a/b", "file": "a.txt", "urls": ["ftp://x/a.txt"]}, "not an http"),
        ({"name": "a/b", "file": "a.txt", "colour": "red"}, "unknown field"),
        ({"name": "a/b", "file": "a.txt", "aliases": ["a/b"]}, "used twice"),
    ],
)
def test_bad_registry_is_a_config_error(tmp_path, monkeypatch, entry, message):
    base = {"format": "ids", "corpus": "flickr", "urls": ["https://x.org/a.txt"]}
    reg = write_registry(tmp_path / "reg", [{**base, **entry}])
    monkeypatch.setenv("AVPREP_METADATA", str(reg))
    with pytest.raises(ConfigError, match=message):
        catalog.list_entries()


def test_missing_registry_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("AVPREP_METADATA", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="AVPREP_METADATA"):
        catalog.list_entries()


def test_unknown_source_is_an_input_error(home):
    with pytest.raises(InputError, match="not a registry name"):
        load_clips("nope/nothing")


# ---------------------------------------------------------------------- CLI


def test_cli_list_show_fetch(home, tmp_path, shared_metadata):
    runner = CliRunner()
    res = runner.invoke(cli, ["metadata", "list"])
    assert res.exit_code == 0, res.output
    assert "vggss/test-5158" in res.output and "soundnet/urls-public" in res.output
    assert f"{len(catalog.list_entries())} entries" in res.output
    listed = json.loads(runner.invoke(cli, ["metadata", "list", "--json"]).output)
    assert {e["name"] for e in listed} == {e.name for e in catalog.list_entries()}
    res = runner.invoke(cli, ["metadata", "show", "vggsound/train-144k"])
    assert "ezvsl/vggss-144k" in res.output
    assert "https://raw.githubusercontent.com/stoneMo/EZ-VSL/main/metadata/vggss_144k.txt" in (
        res.output
    )
    assert "not fetched" in res.output
    mirror = make_mirror(
        tmp_path / "m", shared_metadata, {"htf/flickr-test-trimmed": "htf/flickr_test_trimmed.csv"}
    )
    with MediaServer(mirror) as srv:
        res = runner.invoke(
            cli, ["metadata", "fetch", "htf/flickr-test-trimmed", "--mirror", srv.base]
        )
        assert res.exit_code == 0, res.output
        assert "summary: 1 fetched, 0 already cached, 0 failed" in res.output
        res = runner.invoke(
            cli, ["metadata", "fetch", "htf/flickr-test-trimmed", "--mirror", srv.base]
        )
        assert "summary: 0 fetched, 1 already cached, 0 failed" in res.output
    show = json.loads(
        runner.invoke(cli, ["metadata", "show", "htf/flickr-test-trimmed", "--json"]).output
    )
    assert show["cache"] == "cached, sha256 ok"


def test_cli_fetch_failure_is_readable(tmp_path):
    (tmp_path / "empty").mkdir()
    env = {"AVPREP_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    with MediaServer(tmp_path / "empty") as srv:
        proc = subprocess.run(
            [VENV_BIN / "avprep", "metadata", "fetch", "flickr/test-249", "--mirror", srv.base],
            capture_output=True,
            text=True,
            env=env,
        )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "no longer available" in proc.stderr and "1 failed" in proc.stdout
    proc = subprocess.run(
        [VENV_BIN / "avprep", "metadata", "fetch", "no/such"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2 and "unknown metadata name 'no/such'" in proc.stderr
