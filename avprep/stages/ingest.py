"""Ingest stage: turn a copy of a dataset (folder, tar or zip) into a download folder.

``avprep ingest --from SRC --ids LIST --out OUT`` leaves ``OUT`` exactly as
``avprep download`` would have: ``OUT/<clip_id>.<ext>`` and one ``ok`` record
per clip in ``OUT/manifest.jsonl`` (with ``meta.source = "ingest"`` and
``meta.ingested_from`` naming the archive member), every file verified as a
download is (:func:`avprep.stages.download.verify_media`: probe plus a decode
of the last second) before it gets its final name. So ``extract`` reads it,
and ``avprep download --ids OUT/missing.txt --out OUT`` fetches the rest into
the same folder and resumes like any other run.

* **Matching.** A member belongs to a clip when its file name without the
  extension is the clip id (``<ytid>_<start:06d>.mp4``, ``<flickr id>.mp4``),
  or, for VGGSound, ``<ytid>_<start>`` with another zero padding. Folders
  inside the archive do not matter.
* **Hostile members** (absolute paths, ``..``, symbolic or hard links,
  devices; in a folder: links) are refused and never read.
* **Streaming.** Tar archives (also ``.tar.gz``/``.bz2``/``.xz``) are read
  member by member in one pass (``tarfile`` stream mode); zip members are
  opened one at a time. Nothing is unpacked whole: each wanted member is
  copied to ``OUT/.tmp-<clip_id>-*``, verified, and renamed.
* **Coverage.** The report lists present (ingested now or already there),
  missing, corrupt (with the reason), extra (media in the source not in the
  list), duplicates (the first good copy is kept) and refused members.
  ``OUT/missing.txt`` holds the missing and corrupt ids, one a line.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any

from tqdm.auto import tqdm

from avprep.atomic import TMP_PREFIX, write_text
from avprep.errors import InputError, MediaError
from avprep.ids import is_safe_id
from avprep.manifest import MANIFEST_NAME, OK, ClipRecord  # noqa: F401 - the one name, offered here
from avprep.stage import Stage, open_stage
from avprep.stages.download import _EXT, is_done, tool_versions
from avprep.stages.mediainfo import verify_media

log = logging.getLogger(__name__)

MEDIA_SUFFIXES = (
    ".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".flv", ".3gp", ".mpg", ".mpeg",
    ".m4a", ".wav", ".flac", ".mp3", ".ogg", ".opus", ".aac",
)  # fmt: skip
MISSING_NAME = "missing.txt"
REPORT_NAME = "ingest_report.json"
_VGG = re.compile(r"^([A-Za-z0-9_-]{11})_(\d{1,6})$")
CHUNK = 1 << 20


@dataclasses.dataclass
class Member:
    """One file of the source: its name there and how to read it."""

    name: str
    size: int | None
    open: Any  # () -> binary file object


@dataclasses.dataclass
class IngestReport:
    """What one :func:`ingest` run found and did."""

    source: str
    requested: int
    ingested: list[str] = dataclasses.field(default_factory=list)
    already: list[str] = dataclasses.field(default_factory=list)
    missing: list[str] = dataclasses.field(default_factory=list)
    corrupt: dict[str, str] = dataclasses.field(default_factory=dict)
    extra: list[str] = dataclasses.field(default_factory=list)
    duplicates: list[str] = dataclasses.field(default_factory=list)
    refused: dict[str, str] = dataclasses.field(default_factory=dict)
    missing_file: Path | None = None

    @property
    def present(self) -> int:
        return len(self.ingested) + len(self.already)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["missing_file"] = str(self.missing_file) if self.missing_file else None
        out["present"] = self.present
        return out

    def summary(self, top: int = 5) -> str:
        lines = [
            f"source      {self.source}",
            f"listed      {self.requested}",
            f"present     {self.present}  ({len(self.ingested)} ingested now, "
            f"{len(self.already)} already there)",
            f"missing     {len(self.missing)}",
            f"corrupt     {len(self.corrupt)}",
            f"extra       {len(self.extra)}  (media in the source, not in the list)",
            f"duplicates  {len(self.duplicates)}",
            f"refused     {len(self.refused)}  (absolute paths, '..', links)",
        ]
        for cid, why in list(self.corrupt.items())[:top]:
            lines.append(f"  corrupt {cid}: {why}")
        for name, why in list(self.refused.items())[:top]:
            lines.append(f"  refused {name}: {why}")
        return "\n".join(lines)


# -- reading the source, member by member -------------------------------------------
def _unsafe_name(name: str) -> str | None:
    """Why an archive member's name is refused, or ``None``."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        return "'..' in the path"
    return None


def _tar_members(path: Path, refused: dict[str, str]) -> Iterator[Member]:
    # "r|*": a stream, one pass, any compression; members come in archive order
    with tarfile.open(path, mode="r|*") as tar:
        for info in tar:
            why = _unsafe_name(info.name)
            if why is None and (info.issym() or info.islnk()):
                why = "a link"
            elif why is None and not (info.isfile() or info.isdir()):
                why = "not a regular file"
            if why:
                refused[info.name] = why
                continue
            if info.isfile():
                yield Member(info.name, info.size, lambda info=info: tar.extractfile(info))


def _zip_members(path: Path, refused: dict[str, str]) -> Iterator[Member]:
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            mode = info.external_attr >> 16
            why = _unsafe_name(info.filename)
            if why is None and stat.S_ISLNK(mode):
                why = "a link"
            if why:
                refused[info.filename] = why
                continue
            if not info.is_dir():
                yield Member(info.filename, info.file_size, lambda info=info: zf.open(info))


def _dir_members(root: Path, refused: dict[str, str]) -> Iterator[Member]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for d in list(dirnames):
            if (here / d).is_symlink():
                refused[str((here / d).relative_to(root))] = "a link"
                dirnames.remove(d)
        dirnames.sort()
        for f in sorted(filenames):
            p = here / f
            rel = str(p.relative_to(root))
            if p.is_symlink():
                refused[rel] = "a link"
                continue
            if not p.is_file():
                refused[rel] = "not a regular file"
                continue
            yield Member(rel, p.stat().st_size, lambda p=p: open(p, "rb"))


def members(source: str | os.PathLike, refused: dict[str, str]) -> Iterator[Member]:
    """The files of a folder, tar or zip, in order; hostile ones go to ``refused``."""
    src = Path(source)
    if src.is_dir():
        return _dir_members(src, refused)
    if not src.is_file():
        raise InputError(f"--from {src}: no such folder or archive")
    if zipfile.is_zipfile(src):
        return _zip_members(src, refused)
    if tarfile.is_tarfile(src):
        return _tar_members(src, refused)
    raise InputError(f"--from {src}: not a folder, a tar archive or a zip archive")


def clip_of(name: str, wanted: set[str]) -> tuple[str | None, str]:
    """``(clip id or None, suffix)`` of a member name (see the module docstring)."""
    base = PurePosixPath(name.replace("\\", "/")).name
    stem, dot, ext = base.rpartition(".")
    if not dot or f".{ext.lower()}" not in MEDIA_SUFFIXES:
        return None, ""
    suffix = ext.lower()
    if stem in wanted:
        return stem, suffix
    m = _VGG.match(stem)
    if m:
        cid = f"{m.group(1)}_{int(m.group(2)):06d}"
        if cid in wanted:
            return cid, suffix
    return (stem if is_safe_id(stem) else None), suffix


# -- one clip -------------------------------------------------------------------------
def _copy(src: IO[bytes], dst: Path) -> None:
    with open(dst, "wb") as fh:
        shutil.copyfileobj(src, fh, CHUNK)
        fh.flush()
        os.fsync(fh.fileno())


def ingest_member(member: Member, clip_id: str, suffix: str, out: Path, origin: str) -> ClipRecord:
    """Copy one member to ``OUT/<clip_id>.<ext>`` through a verified temporary file.

    Raises :class:`MediaError` when the member is not intact media (nothing is left).
    """
    ext = suffix if _EXT.match(suffix) else "bin"
    workdir = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{clip_id}-", dir=out))
    try:
        tmp = workdir / f"{clip_id}.{ext}"
        with member.open() as fh:
            _copy(fh, tmp)
        media = verify_media(tmp)
        final = out / f"{clip_id}.{ext}"
        os.replace(tmp, final)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    meta = {
        "source": "ingest",
        "ingested_from": f"{origin}:{member.name}",
        "bytes": final.stat().st_size,
        "duration": media.duration,
        "has_video": media.has_video,
        "has_audio": media.has_audio,
        "width": media.width,
        "height": media.height,
        "fps": media.fps,
        "sample_rate": media.sample_rate,
    }
    return ClipRecord(clip_id, OK, outputs={"path": final.name}, meta=meta, attempts=1)


# -- a run ----------------------------------------------------------------------------
def ingest(
    source: str | os.PathLike,
    ids: Sequence[str],
    out: str | os.PathLike,
    *,
    progress: bool = True,
) -> IngestReport:
    """Ingest the clips ``ids`` found in ``source`` into the download folder ``out``."""
    src = Path(source)
    out = Path(out)
    wanted = list(dict.fromkeys(ids))
    want = set(wanted)
    if not wanted:
        raise InputError("the id list is empty: nothing to ingest")
    out.mkdir(parents=True, exist_ok=True)
    report = IngestReport(source=str(src), requested=len(wanted))
    # the lock, sweep and manifest download's run takes: one writer per folder
    stage = Stage(name="download", step=ingest_member, config=None, out=out, done=is_done)
    with open_stage(stage) as folder:
        manifest = folder.manifest
        done = {c for c in wanted if stage.done(manifest.get(c), out)}
        header = False
        seen: set[str] = set()
        bar = tqdm(total=len(wanted), desc="ingest", unit="clip", disable=not progress)
        bar.update(len(done))
        for member in members(src, report.refused):
            cid, suffix = clip_of(member.name, want)
            if cid is None:
                continue
            if cid not in want:
                report.extra.append(member.name)
                continue
            if cid in seen or cid in done:
                if cid in seen:
                    report.duplicates.append(member.name)
                continue
            try:
                rec = ingest_member(member, cid, suffix, out, src.name)
            except (MediaError, OSError, tarfile.TarError, zipfile.BadZipFile) as exc:
                # a later copy of the same clip may still be good
                report.corrupt[cid] = str(exc).split("\n")[0][:300]
                continue
            if not header:
                manifest.write_header(stage="ingest", source=str(src), **tool_versions())
                header = True
            manifest.append(rec)
            report.corrupt.pop(cid, None)
            report.ingested.append(cid)
            seen.add(cid)
            bar.update(1)
        bar.close()
        report.already = [c for c in wanted if c in done]
        present = seen | done
        report.missing = [c for c in wanted if c not in present and c not in report.corrupt]
        todo = [c for c in wanted if c not in present]
        report.missing_file = write_text(out / MISSING_NAME, "".join(c + "\n" for c in todo))
        write_text(out / REPORT_NAME, json.dumps(report.to_dict(), indent=2) + "\n")
    for name, why in report.refused.items():
        log.warning("refused %s: %s", name, why)
    return report
