"""What ``--ids`` names, read one way by every command.

``--ids`` is one of:

* **a file** in any id-list format :mod:`avprep.recipes` parses (one id a
  line, CRLF or not; ``id,int`` CSVs such as ``flickr_test249_in5k.csv``;
  file names such as ``<id>.jpg``; VGGSound's CSV; VGG-SS JSON; URL lists);
* **a metadata registry name** such as ``vggss/test-5158`` or
  ``htf/flickr-test-trimmed`` (fetched into the cache, sha256 checked, parsed
  by its registry format; see ``avprep metadata list``);
* **a comma list** typed on the command line: ``a_000001,b_000002``.

Order is kept and duplicates are dropped (first kept); an unsafe id is an
error; a list without ids is an error. :func:`read_id_list` also returns the
list's name (the published file name of a registry entry, which SSPL's test
layout names its csv after). ``annotations.idlist.read_ids``,
``store.source.read_ids`` and ``recipes.clip_ids`` all read through here.
"""

from __future__ import annotations

import os
from pathlib import Path

from avprep.errors import InputError
from avprep.ids import check_id

LIST_SUFFIXES = (".txt", ".csv", ".lst", ".list", ".json", ".tsv")
INLINE_NAME = "(command line)"


def is_inline(spec: str | os.PathLike) -> bool:
    """True if ``spec`` is a comma list typed on the command line (not a file or a name)."""
    if not isinstance(spec, str) or Path(spec).exists():
        return False
    if "/" in spec or "\\" in spec:
        return False  # a path that does not exist, or a registry name
    return not spec.strip().lower().endswith(LIST_SUFFIXES)


def inline_ids(spec: str) -> list[str]:
    """The ids of a comma list (blank items skipped, quotes and spaces stripped)."""
    return [t.strip().strip("\"'").strip() for t in spec.split(",") if t.strip().strip("\"'")]


def _checked(ids: list[str], spec: object) -> list[str]:
    out: dict[str, None] = {}
    for cid in ids:
        out[check_id(cid)] = None
    if not out:
        raise InputError(f"--ids {spec}: no clip ids in it")
    return list(out)


def read_id_list(spec: str | os.PathLike, **load_kw) -> tuple[list[str], str]:
    """``(ids, name)`` of ``spec`` (see the module docstring).

    ``load_kw`` go to :func:`avprep.recipes.load_clips` (``dataset``, ``fmt``, ...).
    """
    if is_inline(spec):
        return _checked(inline_ids(str(spec)), spec), INLINE_NAME
    from avprep.recipes import load_clips, resolve_source

    path, entry = resolve_source(spec)
    if path.is_dir():
        raise InputError(f"--ids {spec}: is a folder, expected an id list file")
    df = load_clips(spec, **load_kw)
    ids = _checked([str(c) for c in df["clip_id"].tolist()], spec)
    return ids, (entry.file if entry is not None else path.name)


def read_ids(spec: str | os.PathLike, **load_kw) -> list[str]:
    """The ids of ``spec``: a file, a registry name or ``a,b,c``."""
    return read_id_list(spec, **load_kw)[0]
