"""The metadata registry: public id lists and annotations, by name.

``metadata/registry.yaml`` (beside the package; ``AVPREP_METADATA`` names
another folder) lists every public metadata file the benchmarks use: its
registry name (``vggss/test-5158``), where it is published, its sha256 and
byte size where known, and the parser format that reads it.

:func:`fetch` downloads an entry into ``<AVPREP_HOME>/metadata/`` and checks
its sha256: a mismatch raises :class:`ChecksumError` and leaves no file. A
cached copy whose sha256 matches is reused without touching the network.

Mirror rule: with ``mirror="https://host/base"`` the file is fetched from
``https://host/base/<name><suffix>`` (the same relative path it has in the
cache, e.g. ``https://host/base/vggss/test-5158.json``) instead of the
original addresses. ``file://`` URLs and plain folder paths work as mirrors.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from avprep import __version__
from avprep.atomic import atomic_path, sha256_file
from avprep.errors import (
    ChecksumError,
    ConfigError,
    DownloadError,
    UnavailableError,
    UnknownNameError,
)
from avprep.home import cache_dir
from avprep.registry import Registry

log = logging.getLogger(__name__)

REGISTRY_FILE = "registry.yaml"
ENV_DIR = "AVPREP_METADATA"
ENV_MIRROR = "AVPREP_METADATA_MIRROR"
USER_AGENT = f"avprep/{__version__} (metadata fetch)"

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)+$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_FIELDS = {
    "name",
    "aliases",
    "file",
    "format",
    "corpus",
    "split",
    "clips",
    "bytes",
    "sha256",
    "urls",
    "description",
    "notes",
}


@dataclasses.dataclass(frozen=True)
class Entry:
    """One public metadata file."""

    name: str
    file: str
    format: str
    corpus: str
    urls: tuple[str, ...]
    split: str | None = None
    clips: int | None = None
    bytes: int | None = None
    sha256: str | None = None
    aliases: tuple[str, ...] = ()
    description: str = ""
    notes: str = ""

    @property
    def relpath(self) -> str:
        """Path inside the cache and below a mirror: ``<name><suffix of file>``."""
        return self.name + PurePosixPath(self.file).suffix

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["urls"] = list(self.urls)
        d["aliases"] = list(self.aliases)
        d["relpath"] = self.relpath
        return d


class Catalog:
    """The entries of one registry file, looked up by name or alias."""

    def __init__(self, entries: list[Entry], source: Path) -> None:
        self.source = source
        self.registry: Registry[Entry] = Registry("metadata name")
        self.aliases: dict[str, str] = {}
        for e in entries:
            self.registry.add(e.name, e)
        for e in entries:
            for a in e.aliases:
                if a in self.registry or a in self.aliases:
                    raise ConfigError(f"{source}: name {a!r} is used twice")
                self.aliases[a] = e.name

    def get(self, name: str) -> Entry:
        try:
            return self.registry.get(self.aliases.get(name, name))
        except UnknownNameError as exc:
            aliases = ", ".join(self.aliases)
            raise UnknownNameError(f"{exc}; aliases: {aliases or '(none)'}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.registry or name in self.aliases

    def entries(self) -> list[Entry]:
        return [e for _, e in self.registry.items()]


def metadata_dir() -> Path:
    """The folder holding ``registry.yaml``: ``$AVPREP_METADATA``, else ``<repo>/metadata``
    in a source checkout, else the copy an installed wheel ships (see :mod:`avprep.shipped`)."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser()
    from avprep.shipped import data_dir

    return data_dir("metadata")


def _entry(raw: object, where: str) -> Entry:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: an entry must be a mapping, got {type(raw).__name__}")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
    for key in ("name", "file", "format", "corpus", "urls"):
        if not raw.get(key):
            raise ConfigError(f"{where}: missing field {key!r}")
    name = str(raw["name"])
    aliases = tuple(str(a) for a in raw.get("aliases") or ())
    for n in (name, *aliases):
        # names become cache paths: no '..', no absolute paths, no odd characters
        if not _NAME.match(n) or ".." in n:
            raise ConfigError(f"{where}: bad name {n!r} (lower-case words joined by '/')")
    file = str(raw["file"])
    if "/" in file or "\\" in file or file.startswith("."):
        raise ConfigError(f"{where}: 'file' must be a bare file name, got {file!r}")
    sha = raw.get("sha256")
    if sha is not None and not _SHA.match(str(sha)):
        raise ConfigError(f"{where} ({name}): sha256 must be 64 lower-case hex digits or null")
    urls = raw["urls"]
    if isinstance(urls, str) or not isinstance(urls, list):
        raise ConfigError(f"{where} ({name}): 'urls' must be a list")
    for u in urls:
        if urllib.parse.urlsplit(str(u)).scheme not in ("http", "https"):
            raise ConfigError(f"{where} ({name}): not an http(s) address: {u!r}")
    for key in ("clips", "bytes"):
        v = raw.get(key)
        if v is not None and (not isinstance(v, int) or v < 0):
            raise ConfigError(f"{where} ({name}): {key} must be a non-negative integer or null")
    return Entry(
        name=name,
        file=file,
        format=str(raw["format"]),
        corpus=str(raw["corpus"]),
        urls=tuple(str(u) for u in urls),
        split=raw.get("split"),
        clips=raw.get("clips"),
        bytes=raw.get("bytes"),
        sha256=sha,
        aliases=aliases,
        description=str(raw.get("description") or "").strip(),
        notes=str(raw.get("notes") or "").strip(),
    )


def read_registry(path: str | os.PathLike) -> Catalog:
    """Parse and validate one ``registry.yaml``."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"metadata registry not found: {path} (set {ENV_DIR} to the folder holding "
            f"{REGISTRY_FILE})"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise ConfigError(f"{path}: expected a mapping with a list 'entries'")
    entries = [_entry(raw, f"{path}: entry {i + 1}") for i, raw in enumerate(data["entries"])]
    try:
        return Catalog(entries, path)
    except ValueError as exc:  # Registry.add: a name registered twice
        raise ConfigError(f"{path}: {exc}") from None


@functools.lru_cache(maxsize=4)
def _cached_catalog(path: str, mtime: float) -> Catalog:
    return read_registry(path)


def catalog() -> Catalog:
    """The registry in use (re-read when the file or ``AVPREP_METADATA`` changes)."""
    path = metadata_dir() / REGISTRY_FILE
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = -1.0
    return _cached_catalog(str(path), mtime)


def list_entries() -> list[Entry]:
    """All entries, in registry order."""
    return catalog().entries()


def get_entry(name: str) -> Entry:
    """The entry called ``name`` (or one of its aliases); unknown names list the valid ones."""
    return catalog().get(name)


def is_name(name: str) -> bool:
    return name in catalog()


def cache_path(name: str) -> Path:
    """Where ``fetch(name)`` puts the file (it may not exist yet)."""
    return cache_dir("metadata") / get_entry(name).relpath


def cached(name: str) -> Path | None:
    """The cached file if present and (where known) its sha256 matches, else None."""
    entry = get_entry(name)
    path = cache_dir("metadata") / entry.relpath
    if not path.is_file():
        return None
    if entry.sha256 and sha256_file(path) != entry.sha256:
        return None
    return path


def mirror_url(mirror: str, entry: Entry) -> str:
    """``<mirror>/<name><suffix>``; a folder path becomes a ``file://`` URL."""
    if "://" not in mirror:
        mirror = Path(mirror).expanduser().resolve().as_uri()
    return mirror.rstrip("/") + "/" + urllib.parse.quote(entry.relpath)


def _download(url: str, dest: Path, entry: Entry, timeout: float) -> str:
    """Stream ``url`` into ``dest``; return the sha256 of what was written."""
    from tqdm import tqdm

    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    h = hashlib.sha256()
    with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as out:  # noqa: S310 - http(s)/file only
        total = resp.headers.get("Content-Length")
        with tqdm(
            total=int(total) if total and total.isdigit() else entry.bytes,
            unit="B",
            unit_scale=True,
            desc=entry.name,
            disable=None,  # only on a terminal
            leave=False,
        ) as bar:
            while block := resp.read(1 << 16):
                out.write(block)
                h.update(block)
                bar.update(len(block))
        out.flush()
        os.fsync(out.fileno())
    # mkstemp makes 0600 files; a cache of public lists may be shared by a group
    os.chmod(dest, 0o644)
    return h.hexdigest()


def _shown(url: str) -> str:
    """``url`` for messages, with any ``user:password@`` masked (mirrors may carry one)."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1***@", url)


def _is_gone(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in (403, 404, 410)
    # file:// mirrors report a missing file as URLError(FileNotFoundError)
    reason = getattr(exc, "reason", None)
    return isinstance(reason, FileNotFoundError) or isinstance(exc, FileNotFoundError)


def fetch(
    name: str,
    mirror: str | None = None,
    force: bool = False,
    *,
    timeout: float = 60.0,
    attempts: int = 2,
) -> Path:
    """Download entry ``name`` into the cache (sha256 checked) and return its path.

    A cached copy is reused when its sha256 matches (``force`` downloads
    anyway). ``mirror`` (or ``$AVPREP_METADATA_MIRROR``) replaces the original
    addresses by ``<mirror>/<name><suffix>``. Raises :class:`ChecksumError`
    when every source served different bytes (no file is left),
    :class:`UnavailableError` when every source is gone, else
    :class:`DownloadError`.
    """
    entry = get_entry(name)
    final = cache_dir("metadata") / entry.relpath
    if final.is_file() and not force and _cached_copy_ok(entry, final):
        return final
    mirror = mirror or os.environ.get(ENV_MIRROR) or None
    urls = [mirror_url(mirror, entry)] if mirror else list(entry.urls)
    problems: list[str] = []
    gone = checksum = 0
    for url in urls:
        for attempt in range(1, attempts + 1):
            try:
                digest = _download_checked(url, final, entry, timeout)
            except ChecksumError as exc:
                checksum += 1
                problems.append(str(exc))
                break  # the same address will send the same bytes again
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", None) or exc
                if isinstance(exc, urllib.error.HTTPError):
                    reason = f"HTTP {exc.code} {exc.reason}"
                if _is_gone(exc):
                    gone += 1
                    problems.append(f"{_shown(url)}: {reason}")
                    break
                problems.append(f"{_shown(url)} (attempt {attempt}): {reason}")
                if attempt < attempts:
                    time.sleep(0.5 * attempt)
                continue
            if entry.sha256 is None:
                log.warning(
                    "%s: no sha256 is registered, so nothing was checked; got sha256 %s",
                    entry.name,
                    digest,
                )
            log.info("%s: fetched %s -> %s", entry.name, _shown(url), final)
            return final
    raise _fetch_failed(entry, final, problems, checksum=checksum, all_gone=gone == len(urls))


def _cached_copy_ok(entry: Entry, final: Path) -> bool:
    """Whether the cached ``final`` can be used (its sha256 matches, or none is known);
    a copy with the wrong sha256 is deleted (it must not survive a failed refetch)."""
    if entry.sha256 is None:
        log.info("%s: using cached %s (no sha256 known to check)", entry.name, final)
        return True
    if sha256_file(final) == entry.sha256:
        log.info("%s: using cached %s", entry.name, final)
        return True
    log.warning("%s: cached %s has the wrong sha256; downloading again", entry.name, final)
    final.unlink()
    return False


def _download_checked(url: str, final: Path, entry: Entry, timeout: float) -> str:
    """Download ``url`` to ``final`` atomically, kept only when its size and sha256 are the
    registered ones (else :class:`ChecksumError`); the sha256 of what was written."""
    with atomic_path(final) as tmp:
        digest = _download(url, tmp, entry, timeout)
        size = tmp.stat().st_size
        if entry.bytes is not None and size != entry.bytes:
            raise ChecksumError(
                f"{entry.name}: {_shown(url)} sent {size} bytes, expected {entry.bytes}"
            )
        if entry.sha256 is not None and digest != entry.sha256:
            raise ChecksumError(
                f"{entry.name}: {_shown(url)} sent a file with sha256 {digest}, "
                f"expected {entry.sha256}"
            )
    return digest


def _fetch_failed(
    entry: Entry, final: Path, problems: list[str], *, checksum: int, all_gone: bool
) -> ChecksumError | DownloadError:
    """The error for a fetch no source served: a checksum failure, every source gone, or
    a download failure (with the offline hint)."""
    detail = "\n  ".join(problems)
    if checksum:
        return ChecksumError(
            f"{entry.name}: no source sent the registered file (nothing was kept):\n  {detail}"
        )
    if all_gone:
        return UnavailableError(f"{entry.name}: no longer available at any address:\n  {detail}")
    return DownloadError(
        f"{entry.name}: download failed:\n  {detail}\n"
        f"(offline? use --mirror URL, or put the file at {final})"
    )
