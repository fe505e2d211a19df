"""Recipes: every public id list of the benchmarks -> one clip table (pandas).

:func:`load_clips` reads a file (or a registry name, fetched on first use)
in any format of :data:`FORMATS` and returns a DataFrame with the columns of
:data:`COLUMNS`: ``clip_id``, ``source``, ``url``, ``start``, ``end``,
``label``, ``split``. One module per corpus registers its formats:
``flickr`` (SoundNet), ``vggsound``, ``vggss``, ``chaotic``, ``urls``, plus
corpus-agnostic ``filelists``. Clip ids are normalised (VGGSound
``<ytid>_<start:06d>``, Flickr numeric ids), so lists from different papers
compare directly (see :mod:`avprep.leakage`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from avprep.errors import ConfigError, InputError
from avprep.recipes import (  # noqa: F401 - registers formats  # noqa: F401, E402 - Multi-Source's sets
    audioset_instrument,
    ave,
    binary,
    chaotic,
    clip_table,
    filelists,
    flickr,
    protocols,
    urls,
    vggsound,
    vggss,
)
from avprep.recipes.detect import detect_format
from avprep.recipes.formats import DATASETS, FORMATS, Format, normalise_dataset
from avprep.recipes.table import COLUMNS, SOURCES, Collector, empty_frame
from avprep.recipes.text import read_text

log = logging.getLogger(__name__)

__all__ = [
    "COLUMNS",
    "DATASETS",
    "FORMATS",
    "SOURCES",
    "Format",
    "clip_ids",
    "detect_format",
    "load_clips",
    "resolve_source",
]

MAX_REPORTED = 10


def resolve_source(source: str | os.PathLike):
    """``(path, registry entry or None)``: an existing file, else a registry name (fetched)."""
    from avprep import catalog

    path = Path(source)
    if path.exists():
        return path, None
    name = str(source)
    if catalog.is_name(name):
        entry = catalog.get_entry(name)
        return catalog.fetch(entry.name), entry
    raise InputError(
        f"{source}: no such file, and not a registry name (see `avprep metadata list`)"
    )


def _bad_lines_error(path: str, bad: list[tuple[int, str]]) -> InputError:
    shown = "\n  ".join(reason for _, reason in bad[:MAX_REPORTED])
    more = f"\n  ... and {len(bad) - MAX_REPORTED} more" if len(bad) > MAX_REPORTED else ""
    return InputError(
        f"{path}: {len(bad)} malformed {'entry' if len(bad) == 1 else 'entries'} "
        f"(fix them, or pass --skip-bad to skip them):\n  {shown}{more}"
    )


def load_clips(
    source: str | Path,
    *,
    fmt: str = "auto",
    dataset: str | None = None,
    split: str | None = None,
    skip_bad: bool = False,
) -> pd.DataFrame:
    """Parse an id list / annotation file into the clip table.

    ``source``: a path, a registry name such as ``vggss/test-5158`` (fetched
    into the cache if needed), or a comma list ``a,b,c`` (see :mod:`avprep.idspec`). ``fmt``: a name of :data:`FORMATS` or ``auto``
    (detected from the content; a registry entry brings its own). ``dataset``
    (flickr | vggsound | url | chaotic) restricts detection and checks ids.
    ``split`` keeps the rows of that split; rows whose split is unknown are
    labelled with it. Malformed lines raise :class:`InputError` naming the
    file and line numbers, unless ``skip_bad`` (then they are skipped and
    counted). Duplicates are dropped. ``df.attrs`` holds ``path``, ``name``,
    ``format``, ``skipped``, ``bad_lines`` [(number, reason)], ``duplicates``,
    ``filtered`` (rows of another split).
    """
    from avprep.idspec import INLINE_NAME, inline_ids, is_inline

    if is_inline(source):  # "a,b,c" typed after --ids
        path, entry, text = INLINE_NAME, None, "\n".join(inline_ids(str(source)))
    else:
        path, entry = resolve_source(source)
        text = None
    dataset = normalise_dataset(dataset)
    if fmt != "auto":
        FORMATS.get(fmt)  # unknown format -> error listing the valid ones
    elif entry is not None:
        fmt = entry.format
    if dataset is None and entry is not None and entry.corpus in DATASETS:
        dataset = entry.corpus
    if text is None:  # a file (an inline "a,b,c" list has its text already)
        fmt, text = _file_text(path, fmt)
    if fmt == "auto":
        fmt = detect_format(text, dataset, str(path))
        log.info("%s: detected format %s", path, fmt)
    spec = FORMATS.get(fmt)
    if dataset is not None and dataset not in spec.datasets:
        raise ConfigError(
            f"format {fmt!r} does not describe dataset {dataset!r} "
            f"(it describes: {', '.join(spec.datasets)})"
        )
    col = Collector(str(path), unit=spec.unit)
    spec.parse(text, col, dataset)
    if col.bad and not skip_bad:
        raise _bad_lines_error(str(path), col.bad)
    if col.bad:
        log.warning("%s: skipped %d malformed entries", path, len(col.bad))
    df = col.frame()
    if entry is not None and entry.split:
        df["split"] = df["split"].where(df["split"].notna(), entry.split).astype(object)
    filtered = 0
    if split is not None:
        df, filtered = _keep_split(df, split)
    if df.empty:
        df = empty_frame()
    df.attrs.update(
        path=str(path),
        name=entry.name if entry is not None else None,
        format=fmt,
        dataset=dataset,
        skipped=len(col.bad),
        bad_lines=list(col.bad),
        duplicates=col.duplicates,
        filtered=filtered,
    )
    if col.duplicates:
        log.info("%s: dropped %d duplicate clip ids", path, col.duplicates)
    return df


def _file_text(path: str | Path, fmt: str) -> tuple[str, str]:
    """(format, what its parser reads) for a file: its text, or for a binary format
    (a pickle, detected by its suffix) the path, as those read the file themselves."""
    if fmt == "auto" and Path(path).suffix == ".pkl":
        fmt = "mssl-tags-pkl"  # a binary pickle: never decoded as text
    if fmt != "auto" and FORMATS.get(fmt).binary:
        return fmt, str(path)
    return fmt, read_text(path)


def _keep_split(df: pd.DataFrame, split: str) -> tuple[pd.DataFrame, int]:
    """The rows of ``split`` and those of no known split (labelled ``split``); how many
    rows of other splits were dropped."""
    known = df["split"].notna()
    keep = ~known | (df["split"] == split)
    df = df[keep].reset_index(drop=True)
    df["split"] = pd.Series([split] * len(df), dtype=object)
    return df, int((~keep).sum())


def clip_ids(source: str | Path, **kw) -> list[str]:
    """The clip ids of ``source`` in file order (duplicates dropped): :func:`avprep.idspec.read_ids`
    (``kw`` go to :func:`load_clips`)."""
    from avprep.idspec import read_ids

    return read_ids(source, **kw)
