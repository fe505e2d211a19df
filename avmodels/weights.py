"""Pretrained backbone weights: official download URLs, checksums, a local cache.

``avmodels weights fetch vgg16 vggish`` downloads the files the papers use into
``avprep.home.cache_dir("weights")`` (``$AVPREP_HOME/weights``), checking the
sha256 and size; a file that fails the check is never kept. ``--mirror URL``
fetches the same file names from another server (an internal mirror, or the
loopback server of the tests).

Checksums: torchvision's VGG16 file has a published full sha256. For
torchvggish's ``vggish-10086976.pth`` only the torch-hub convention is known
(the file name carries the first 8 hex digits of its sha256, which is what
``torch.hub`` itself checks) plus its size; we check both. Once a file has
passed, a ``<file>.sha256`` sidecar records its full hash so later loads only
compare sizes.
"""

from __future__ import annotations

import http.client
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from avprep.atomic import atomic_path, sha256_file, write_text
from avprep.errors import ChecksumError, ConfigError, DownloadError, InputError
from avprep.home import cache_dir
from avprep.registry import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightFile:
    """One downloadable weight file."""

    name: str
    url: str
    sha256: str | None = None
    sha256_prefix: str | None = None
    size: int | None = None
    description: str = ""
    #: the git blob id of a file published in a git repository (sha1 of
    #: ``b"blob <size>\0" + content``): a full-content check where no sha256 is known
    git_blob_sha1: str | None = None

    @property
    def filename(self) -> str:
        return Path(urllib.parse.urlparse(self.url).path).name

    def check_hash(self, digest: str) -> bool:
        if self.sha256 is not None:
            return digest == self.sha256
        if self.sha256_prefix is not None:
            return digest.startswith(self.sha256_prefix)
        return True

    @property
    def expected(self) -> str:
        if self.sha256:
            return self.sha256
        if self.sha256_prefix:
            return f"{self.sha256_prefix}... (prefix)"
        if self.git_blob_sha1:
            return f"(none published; git blob {self.git_blob_sha1})"
        return "(unchecked)"


WEIGHTS: Registry[WeightFile] = Registry("weights")

WEIGHTS.add(
    "vgg16",
    WeightFile(
        name="vgg16",
        url="https://download.pytorch.org/models/vgg16-397923af.pth",
        sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
        size=553_433_881,
        description="torchvision VGG16 ImageNet weights (IMAGENET1K_V1): SSPL's frame net",
    ),
)
WEIGHTS.add(
    "vggish",
    WeightFile(
        name="vggish",
        url="https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth",
        sha256_prefix="10086976",
        size=288_567_937,
        description="torchvggish's port of the AudioSet VGGish weights: SSPL's sound net",
    ),
)

WEIGHTS.add(
    "resnet18",
    WeightFile(
        name="resnet18",
        url="https://download.pytorch.org/models/resnet18-f37072fd.pth",
        sha256_prefix="f37072fd",
        description="torchvision ResNet-18 ImageNet weights (IMAGENET1K_V1): Hear-The-Flow's "
        "vision and flow streams",
    ),
)

# -- Multi-Source's pseudo-label generator (issue 17): the audio tagger and the
# two category mappings, from the authors' repository (master). The tagger file
# is in the repository's history but no sha256 of it is published: its git blob
# id (from the repository's tree) checks the full content instead.
_MSSL_RAW = "https://raw.githubusercontent.com/shvdiwnkozbw/Multi-Source-Sound-Localization/master/"
WEIGHTS.add(
    "mobilecrnn-v2",
    WeightFile(
        name="mobilecrnn-v2",
        url=_MSSL_RAW + "mobile_crnn/models/mobilecrnn_v2.pth",
        git_blob_sha1="2e31c730e9ab8310ebcc27a5b318ee11745e32e2",
        description="Multi-Source's AudioSet tagger (MobileCRNN v2, 527 classes): its audio "
        "pseudo labels",
    ),
)
WEIGHTS.add(
    "mssl-cluster-a",
    WeightFile(
        name="mssl-cluster-a",
        url=_MSSL_RAW + "utils/cluster_a.npy",
        sha256="6b3021651fbb780c2ec2222ddee3c5cd2cc97a9c2159a84bed18949440db5fff",
        size=14_884,
        description="Multi-Source utils/cluster_a.npy: 7x527 0/1, AudioSet classes -> 7 "
        "top-level categories",
    ),
)
WEIGHTS.add(
    "mssl-cluster-v3",
    WeightFile(
        name="mssl-cluster-v3",
        url=_MSSL_RAW + "utils/cluster_v3.npy",
        sha256="ab0d10b92abfa0fa8cfde5c242e2739dd156b10a7c545a7760ddf106e9cc4e24",
        size=56_128,
        description="Multi-Source utils/cluster_v3.npy: 1000x7 0/1, ImageNet classes -> the "
        "same 7 categories",
    ),
)

# Multi-Source's evaluation files (not id lists, so not in avprep's metadata registry).
for _name, _path, _sha, _size, _what in (
    (
        "mssl-normav",
        "utils/normav.json",
        "6eb7cf2489bf1ebab02200ece0844a7971f3fa9210d5033119e7e6e83248e754",
        1_599_966,
        "AudioSet-instrument test boxes (COCO, Faster R-CNN): the class-aware metric's ground truth",
    ),
    (
        "mssl-audioset-val",
        "utils/audioset_val.npy",
        "a3943572f4d5c8731fe00287019707f50af3700c77b4479f978977e93dd9e430",
        11_118,
        "AudioSet-instrument: (1099, 10) bool, the 1 fps test frames that carry boxes",
    ),
    (
        "mssl-gtdata",
        "utils/gtdata.pkl",
        "bbd4e3e32c2eeb884fb76da758afa3fe02081d93ffa4a85edbeaece97291bcca",
        1_512_803,
        "Multi-Source's Flickr file: frame/audio paths, 8 region proposals and the annotators' "
        "boxes (256 px) per clip; read with avprep.safepickle",
    ),
):
    WEIGHTS.add(
        _name,
        WeightFile(name=_name, url=_MSSL_RAW + _path, sha256=_sha, size=_size, description=_what),
    )


def cached_path(name: str) -> Path:
    """Where the file of weights ``name`` lives in the cache (it may not exist yet)."""
    return cache_dir("weights") / WEIGHTS.get(name).filename


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def verify(spec: WeightFile, path: Path) -> str:
    """Check size and sha256 of ``path``; return the full sha256 or raise ChecksumError."""
    size = path.stat().st_size
    if spec.size is not None and size != spec.size:
        raise ChecksumError(
            f"{path}: {size} bytes, expected {spec.size} for {spec.name} "
            "(truncated or a different file)"
        )
    digest = sha256_file(path)
    if not spec.check_hash(digest):
        raise ChecksumError(f"{path}: sha256 {digest}, expected {spec.expected} for {spec.name}")
    if spec.git_blob_sha1 is not None:
        blob = git_blob_sha1(path)
        if blob != spec.git_blob_sha1:
            raise ChecksumError(
                f"{path}: git blob {blob}, expected {spec.git_blob_sha1} for {spec.name}"
            )
    return digest


def git_blob_sha1(path: Path) -> str:
    """The id git gives the file's content (``git hash-object``)."""
    import hashlib

    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())  # noqa: S324 - git's id, not security
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def is_cached(name: str) -> bool:
    """True when the file is in the cache and has passed its check before."""
    path = cached_path(name)
    side = _sidecar(path)
    if not (path.is_file() and side.is_file()):
        return False
    spec = WEIGHTS.get(name)
    return spec.size is None or path.stat().st_size == spec.size


def _source_url(spec: WeightFile, mirror: str | None) -> str:
    if not mirror:
        return spec.url
    if urllib.parse.urlparse(mirror).scheme not in ("http", "https"):
        raise ConfigError(f"--mirror must be an http(s) URL, got {mirror!r}")
    return mirror.rstrip("/") + "/" + spec.filename


def fetch(
    name: str, *, mirror: str | None = None, force: bool = False, timeout: float = 60.0
) -> Path:
    """Download weights ``name`` into the cache (unless already verified there)."""
    spec = WEIGHTS.get(name)
    path = cached_path(name)
    if not force and is_cached(name):
        log.info("%s already cached at %s", name, path)
        return path
    if not force and path.is_file():
        # present but never verified (copied in by hand): check it instead of downloading
        try:
            digest = verify(spec, path)
        except ChecksumError as exc:
            log.warning("cached %s fails its check (%s); downloading again", name, exc)
        else:
            write_text(_sidecar(path), digest + "\n")
            return path
    url = _source_url(spec, mirror)
    log.info("downloading %s from %s", name, url)
    with atomic_path(path) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:  # noqa: S310 - http(s) only, checked above
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=spec.filename) as bar:
                    while chunk := resp.read(1 << 20):
                        out.write(chunk)
                        bar.update(len(chunk))
        except urllib.error.HTTPError as exc:
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError) as exc:
            raise DownloadError(f"{url}: {exc}") from exc
        digest = verify(spec, tmp)  # raises: the temporary is removed, the cache untouched
    write_text(_sidecar(path), digest + "\n")
    return path


def resolve(name: str, path: str | os.PathLike | None = None, *, download: bool = True) -> Path:
    """The local file of weights ``name``: an explicit ``path``, the cache, or a download."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise InputError(f"weights file not found: {p}")
        return p
    if is_cached(name):
        return cached_path(name)
    if not download:
        raise ConfigError(
            f"pretrained weights {name!r} are not in the cache ({cached_path(name)}); "
            f"run `avmodels weights fetch {name}` or train with --no-pretrained"
        )
    return fetch(name)
