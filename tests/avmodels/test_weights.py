"""Pretrained-weight downloads: the loopback server only, sha256 and size checks."""

from __future__ import annotations

import hashlib

import pytest
from click.testing import CliRunner

from avmodels import weights
from avmodels.cli import cli
from avprep.errors import ChecksumError, ConfigError, DownloadError
from tests.httpserver import MediaServer

PAYLOAD = b"pretend these are VGG16 weights" * 1000


@pytest.fixture()
def served(tmp_path, monkeypatch):
    """A fake weight file on a loopback server, registered under a test name."""
    monkeypatch.setenv("AVPREP_HOME", str(tmp_path / "home"))
    root = tmp_path / "srv"
    root.mkdir()
    (root / "fake-1234abcd.pth").write_bytes(PAYLOAD)
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    spec = weights.WeightFile(
        name="fake",
        url="https://example.invalid/models/fake-1234abcd.pth",
        sha256=digest,
        size=len(PAYLOAD),
    )
    monkeypatch.setitem(weights.WEIGHTS._items, "fake", spec)
    with MediaServer(root) as srv:
        yield srv, spec


def test_official_entries():
    vgg = weights.WEIGHTS.get("vgg16")
    assert vgg.url == "https://download.pytorch.org/models/vgg16-397923af.pth"
    assert vgg.sha256.startswith("397923af") and len(vgg.sha256) == 64
    vggish = weights.WEIGHTS.get("vggish")
    assert vggish.filename == "vggish-10086976.pth" and vggish.sha256_prefix == "10086976"


def test_fetch_from_mirror_checks_and_caches(served):
    srv, spec = served
    path = weights.fetch("fake", mirror=srv.base)
    assert path.read_bytes() == PAYLOAD and weights.is_cached("fake")
    assert srv.hits["/fake-1234abcd.pth"] == 1
    assert weights.fetch("fake", mirror=srv.base) == path  # cached: no second request
    assert srv.hits["/fake-1234abcd.pth"] == 1
    assert weights.resolve("fake", download=False) == path


def test_checksum_mismatch_keeps_nothing(served, monkeypatch):
    srv, spec = served
    monkeypatch.setitem(
        weights.WEIGHTS._items, "fake", weights.WeightFile("fake", spec.url, sha256="0" * 64)
    )
    with pytest.raises(ChecksumError, match="sha256"):
        weights.fetch("fake", mirror=srv.base)
    folder = weights.cached_path("fake").parent
    assert list(folder.iterdir()) == []  # no file, no temporary, no sidecar
    # a wrong size is caught before hashing
    monkeypatch.setitem(
        weights.WEIGHTS._items, "fake", weights.WeightFile("fake", spec.url, size=3)
    )
    with pytest.raises(ChecksumError, match="bytes"):
        weights.fetch("fake", mirror=srv.base)


def test_truncated_download_and_missing_file(served):
    srv, spec = served
    with pytest.raises((DownloadError, ChecksumError)):
        weights.fetch("fake", mirror=srv.base + "/truncated")
    with pytest.raises(DownloadError, match="404"):
        weights.fetch("fake", mirror=srv.base + "/missing")
    assert not weights.cached_path("fake").exists()
    with pytest.raises(ConfigError, match="avmodels weights fetch fake"):
        weights.resolve("fake", download=False)
    with pytest.raises(ConfigError, match="http"):
        weights.fetch("fake", mirror="file:///etc")


def test_hand_copied_file_is_verified_not_downloaded(served):
    srv, spec = served
    path = weights.cached_path("fake")
    path.write_bytes(PAYLOAD)
    assert weights.fetch("fake", mirror=srv.base) == path
    assert srv.hits["/fake-1234abcd.pth"] == 0


def test_weights_cli(served):
    srv, _ = served
    res = CliRunner().invoke(cli, ["weights", "fetch", "fake", "--mirror", srv.base])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["weights", "list"])
    assert "vgg16" in res.output and "fake" in res.output and "cached" in res.output
