"""Registry formats that are not text id lists: archives and HTF's frame pickles.

Binary formats get the file's path (``Format.binary``). A zip archive is not
parsed: the error says which command reads it. Hear-The-Flow's
``imagetoframe*.pickle`` is read with the restricted unpickler
(:mod:`avprep.annotations.htf_frames`): its rows are the Flickr test ids it
annotates.
"""

from __future__ import annotations

from avprep.errors import InputError
from avprep.recipes.formats import register
from avprep.recipes.table import Collector, Row


@register(
    "zip-archive",
    ("chaotic",),
    "a zip archive: unpack it (Chaotic World: `avprep chaotic-world prepare --root "
    "SSL_ssl_format`; docs/chaotic-world.md)",
    "SSL_ssl_format.zip",
    binary=True,
)
def parse_zip_archive(path: str, col: Collector, dataset: str | None) -> None:
    raise InputError(
        f"{path}: not an id list: a zip archive; unpack it (Chaotic World: "
        "`avprep chaotic-world prepare --root SSL_ssl_format`)"
    )


@register(
    "htf-frame-pickle",
    ("flickr",),
    "Hear-The-Flow's annotated-frame pickle {id: [frame, ...]} (imagetoframe.pickle), read "
    "with a restricted unpickler; `avprep htf-test-times` turns it into an extract --times file",
    "{'6289328021': [77, 78, 76, 79, 82]}",
    unit="item",
    binary=True,
)
def parse_htf_frame_pickle(path: str, col: Collector, dataset: str | None) -> None:
    from avprep.annotations.htf_frames import read_imagetoframe

    for n, cid in enumerate(read_imagetoframe(path, overrides=False), 1):
        col.add(n, Row(cid, "flickr", split="test"))
