"""Method/store compatibility, checked from the stores' indexes before any shard is opened.

``avmodels train`` asks the built method which modalities it reads and checks
each ``--data``/``--val``/``--select-on-test`` store's ``index.json`` for them
(the store's layout says what it holds: ``avprep.store.layouts``), so a
mismatch is one message before any data is read or any run folder is made.
A shard file or an SSPL folder without an index is checked when it is opened.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from avprep.errors import ConfigError
from avprep.store.index import INDEX_NAME, read_index
from avprep.store.layouts import layout_of_index


def check_store_inputs(paths: Iterable[str | os.PathLike], modalities: Sequence[str]) -> None:
    """Raise a :class:`ConfigError` naming the first modality an indexed store lacks."""
    for p in paths:
        path = Path(p)
        if not (path / INDEX_NAME).is_file():
            continue
        index = read_index(path)
        layout = layout_of_index(index)
        if layout is None:
            continue  # the reader says what it holds when it is opened
        stored = layout.stored_modalities(index)
        missing = [m for m in modalities if m not in stored]
        if missing:
            raise ConfigError(
                f"the method reads {missing[0]!r}, which {path} does not store "
                f"(stored: {', '.join(stored) or 'none'}); pack the store with the method's "
                "profile"
            )
