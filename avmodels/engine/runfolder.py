"""A training run's folder: one live run per folder, created only when training starts.

* **Lock.** The main process holds ``RUN/.train.lock`` (an exclusive
  ``flock``, :mod:`avprep.lock`) from before it writes anything until it
  ends, so a second ``--resume`` (or ``--overwrite``) on a live run is
  refused at once. The kernel drops the lock when the process dies, kill -9
  included.
* **Created last.** ``train`` validates everything it can first (the
  method and its weights, the data and its profile, batch size against the
  data) and creates the folder only then, so a run that fails before
  training leaves no folder blocking the retry.
* **Resume before the first checkpoint.** A run killed after its folder was
  made but before ``checkpoints/last.pt`` existed is started from scratch by
  ``--resume``, with a log line saying so.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from avprep.lock import folder_lock, lock_name

log = logging.getLogger(__name__)

STAGE = "train"
_held: dict[Path, contextlib.ExitStack] = {}


def has_files(run: Path) -> bool:
    """Whether ``run`` holds anything besides its lock file."""
    skip = lock_name(STAGE)
    return run.is_dir() and any(p.name != skip for p in run.iterdir())


def lock(run: Path) -> None:
    """Take ``run``'s lock (creating the folder) unless this process holds it already.

    Raises :class:`avprep.lock.FolderBusyError` when another run holds it.
    """
    key = Path(run).resolve()
    if key in _held:
        return
    stack = contextlib.ExitStack()
    stack.enter_context(
        folder_lock(run, STAGE, hint="stop that run first, or train into another --out")
    )
    _held[key] = stack


def release(run: Path) -> None:
    """Release ``run``'s lock if this process holds it."""
    stack = _held.pop(Path(run).resolve(), None)
    if stack is not None:
        stack.close()


def resume_from_scratch(run: Path, checkpoint: Path) -> bool:
    """True (and a log line) when ``--resume`` finds no checkpoint to continue from."""
    if checkpoint.is_file():
        return False
    log.warning(
        "%s has no checkpoint yet (the run stopped before its first one): starting it from scratch",
        run,
    )
    return True
