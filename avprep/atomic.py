"""Atomic file writes and content hashes.

A file that exists under its final name is complete: every writer goes
through a temporary name in the same folder and ``os.replace`` at the end.
Temporary names start with ``.tmp-`` so a crash leaves nothing that looks
finished (and ``cleanup_temps`` can sweep them). The final file gets the
mode ``open()`` would give it (0o666 less the umask), not mkstemp's 0600.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

TMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` on success.

    The temporary keeps ``final``'s suffix by default (ffmpeg picks formats by
    extension). On an exception the temporary is removed and ``final`` is
    untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = final.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(
        prefix=TMP_PREFIX + final.stem + ".", suffix=suffix, dir=final.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if not tmp_path.exists():
            raise FileNotFoundError(f"nothing was written to {tmp_path}")
        # mkstemp makes 0600 files: give the final file the mode open() would
        os.chmod(tmp_path, file_mode())
        os.replace(tmp_path, final)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            from avprep.diskfull import disk_full_error

            raise disk_full_error(final) from exc
        raise


def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` gives a new file: 0o666 less the umask."""
    return 0o666 & ~current_umask()


def write_bytes(final: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(final) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(final)


def write_text(final: str | os.PathLike, text: str) -> Path:
    return write_bytes(final, text.encode("utf-8"))


def write_json(final: str | os.PathLike, obj: object) -> Path:
    return write_text(final, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def cleanup_temps(folder: str | os.PathLike, *, dirs: bool = False) -> int:
    """Remove temporaries a killed run left in ``folder``; return how many.

    Files named ``.tmp-*``; with ``dirs`` also ``.tmp-*`` folders (work areas).
    Call it only while holding the folder's lock (:mod:`avprep.lock`): a
    running writer's temporaries look the same.
    """
    n = 0
    for p in Path(folder).glob(TMP_PREFIX + "*"):
        if p.is_dir() and not p.is_symlink():
            if dirs:
                shutil.rmtree(p, ignore_errors=True)
                n += 1
            continue
        with contextlib.suppress(OSError):
            p.unlink()
            n += 1
    return n
