"""Telling a full disk apart from a bad clip.

A write that fails with ``ENOSPC`` or ``EDQUOT`` says nothing about the clip
being processed: the run must stop with a readable message ("disk full at
PATH") and the next run must redo the clip. :func:`disk_full_path` recognises
such a failure (a Python ``OSError``, or an external tool's message such as
ffmpeg's "No space left on device"); :func:`check_free` refuses to start a
write that is known in advance not to fit (h5py must never reach a full disk
mid-write: HDF5 does not survive it cleanly).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

from avprep.errors import DiskFullError

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_FULL_TEXT = re.compile(r"(?:(/\S+): )?(?:No space left on device|Disk quota exceeded)")
#: the marker a retryable record carries in ``meta`` (see :mod:`avprep.runner`)
RETRYABLE = "retryable"


def disk_full_path(exc: BaseException) -> str | None:
    """The path (``""`` when unknown) if ``exc`` or its causes are a full disk, else None."""
    seen = 0
    while exc is not None and seen < 8:
        seen += 1
        if isinstance(exc, DiskFullError):
            return getattr(exc, "path", None) or ""
        if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
            return os.fspath(exc.filename) if exc.filename else ""
        m = _FULL_TEXT.search(str(exc))
        if m:
            return m.group(1) or ""
        exc = exc.__cause__ or exc.__context__
    return None


def disk_full_error(path: str | os.PathLike, detail: str = "") -> DiskFullError:
    err = DiskFullError(
        f"disk full at {os.fspath(path)}{detail}: free some space and rerun the same command "
        "(finished work is kept; the interrupted item is redone)"
    )
    err.path = os.fspath(path)  # type: ignore[attr-defined]
    return err


def check_free(folder: str | os.PathLike, need: int, what: str) -> None:
    """Raise :class:`DiskFullError` if ``folder``'s disk has less than ``need`` bytes free."""
    free = shutil.disk_usage(Path(folder)).free
    if free < need:
        raise disk_full_error(
            folder, f" ({what} needs about {need / 1e6:.1f} MB, {free / 1e6:.1f} MB free)"
        )
