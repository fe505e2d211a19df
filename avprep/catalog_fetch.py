"""Fetching several registry entries: the library call behind ``avprep metadata fetch``.

The command (``avprep/commands/metadata.py``) and the recipe step
(``avprep/steps.py``) both select with :func:`select_entries`, fetch with
:func:`fetch_each` and fail with :func:`fetch_failure`; they differ only in
what they print.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from avprep import catalog
from avprep.errors import AvprepError, ConfigError


@dataclasses.dataclass(frozen=True)
class Fetched:
    """One entry's outcome: its cached file, or the error that stopped it."""

    entry: catalog.Entry
    path: Path | None
    was_cached: bool
    error: AvprepError | None = None


def select_entries(names: Iterable[str] = (), *, all_: bool = False) -> list[catalog.Entry]:
    """The entries named (``all_``: every entry with a sha256); an unknown name fails here,
    before anything is downloaded."""
    names = [e.name for e in catalog.list_entries() if e.sha256] if all_ else list(names)
    if not names:
        raise ConfigError("name at least one entry (see `avprep metadata list`), or pass --all")
    return [catalog.get_entry(n) for n in names]


def fetch_each(
    entries: Sequence[catalog.Entry], *, mirror: str | None = None, force: bool = False
) -> Iterator[Fetched]:
    """Fetch each entry in turn (sha256 verified); a failure is yielded, not raised."""
    for entry in entries:
        was_cached = not force and catalog.cached(entry.name) is not None
        try:
            path = catalog.fetch(entry.name, mirror=mirror, force=force)
        except AvprepError as exc:
            yield Fetched(entry, None, was_cached, exc)
            continue
        yield Fetched(entry, path, was_cached)


def fetch_failure(failures: Sequence[AvprepError], message: str) -> AvprepError:
    """The error to raise for ``failures``: their type when they share one."""
    err = type(failures[0]) if len({type(f) for f in failures}) == 1 else AvprepError
    return err(message)
