"""h5py handles opened lazily, once per process: what the store's datasets hold open.

h5py handles are not fork-safe, so a dataset made in the parent and sent to
DataLoader workers (fork or spawn) must not share one; none is reopened per
sample either.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any


class LazyFiles:
    """h5py handles opened on first use in the current process, dropped on pickling."""

    def __init__(self) -> None:
        self._pid: int | None = None
        self._open: dict[int, Any] = {}

    def get(self, key: int, opener: Callable[[], Any]) -> Any:
        if self._pid != os.getpid():  # a forked child must not reuse the parent's handles
            self._open = {}
            self._pid = os.getpid()
        handle = self._open.get(key)
        if handle is None:
            handle = self._open[key] = opener()
        return handle

    def close(self) -> None:
        if self._pid == os.getpid():
            for h in self._open.values():
                for f in h.get("_files", ()):
                    f.close()
        self._open = {}

    def __getstate__(self) -> dict:
        return {"_pid": None, "_open": {}}
