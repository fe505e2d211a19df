"""One writer per output folder: an exclusive ``flock`` on ``DIR/.<stage>.lock``.

Every stage that writes a folder (download, extract, pack-h5, synth) takes
its lock before it reads the folder's header or manifest, and holds it until
its last write: a second run on the same folder is refused at once with a
message instead of mixing its files with the first one's. The kernel releases
the lock when the process ends however it ends (kill -9 included), so a
killed run never leaves a stale lock behind; the lock file itself stays (an
empty file; removing it would race with a run that has just opened it).
``flock`` is reliable on local disks; over NFS it may not be.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from avprep.errors import ConfigError


class FolderBusyError(ConfigError):
    """Another run holds the folder's lock."""


def lock_name(stage: str) -> str:
    """The lock file's name for ``stage`` (``.download.lock``, ``.extract.lock``, ...)."""
    return f".{stage}.lock"


@contextlib.contextmanager
def folder_lock(
    folder: str | os.PathLike, stage: str, *, hint: str = "use another --out"
) -> Iterator[Path]:
    """Hold ``folder``'s lock for ``stage`` (created if needed) or raise :class:`FolderBusyError`."""
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / lock_name(stage)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusyError(
                f"another avprep {stage} is writing into {folder}; wait for it or {hint}"
            ) from None
        try:
            yield path
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
