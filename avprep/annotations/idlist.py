"""Clip-id lists as the papers publish them (``--ids``).

The field's test lists come as bare ids (``vggss_test.csv``, CRLF), ``id,int``
CSV (``flickr_test249_in5k.csv``) or file names (``test_vggss_4911.txt`` holds
``<id>.jpg``). :func:`read_ids` accepts all of them, or a comma-separated list
given on the command line (through :mod:`avprep.idspec`).
"""

from __future__ import annotations

import os


def read_ids(spec: str | os.PathLike) -> list[str]:
    """Ids from a list file, a metadata registry name (``htf/flickr-test-trimmed``)
    or ``"a,b,c"``: :func:`avprep.idspec.read_ids`, the one reader of ``--ids``.

    Order is kept, duplicates are removed; an unsafe id is an error.
    """
    from avprep.idspec import read_ids as read

    return read(spec)
