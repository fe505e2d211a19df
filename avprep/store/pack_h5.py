"""The library call behind ``avprep pack-h5`` (the command and the recipe step both use it).

:func:`pack_h5` is :func:`avprep.store.pack.pack` with the command's extras: a
released test folder (``frames/`` + ``audio/``, no manifest) is first made into
an extraction folder, and ``modalities`` is the command's comma list.
:func:`check_strict` is ``--strict``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from avprep.errors import InputError
from avprep.store.pack import PackResult, pack


def pack_h5(
    in_: str | os.PathLike,
    out: str | os.PathLike,
    split: str,
    *,
    modalities: str | None = None,
    released_profile: str = "sspl",
    note: Callable[[str], Any] | None = None,
    **options: Any,
) -> PackResult:
    """Pack ``in_`` into ``out``; ``options`` are :func:`~avprep.store.pack.pack`'s.

    A released folder is converted (resumably) into ``out/.released-input``
    with ``released_profile``'s audio window and spectrogram; ``note`` gets the
    line that says so, before packing starts.
    """
    from avprep.store.released import find_released, released_to_extraction

    mods = [m.strip() for m in modalities.split(",") if m.strip()] if modalities else None
    if find_released(in_) is not None:
        in_, n_ok, n_failed = released_to_extraction(
            in_, Path(out) / ".released-input", profile=released_profile
        )
        if note is not None:
            note(f"released folder: {n_ok} clip(s) prepared, {n_failed} failed ({in_})")
    return pack(in_, out, split, modalities=mods, **options)


def check_strict(result: PackResult) -> None:
    """``--strict``: an :class:`InputError` if any clip was skipped or listed id missing."""
    if result.skipped or result.missing:
        raise InputError(
            f"--strict: {len(result.skipped)} clip(s) skipped, {len(result.missing)} listed "
            "id(s) missing (the shards were written; see index.json)"
        )
