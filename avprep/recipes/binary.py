"""Registry formats that are not text id lists: archives and the originals' pickles.

The metadata registry records them (address, size, sha256) so ``avprep
metadata fetch`` can get and check them; ``metadata parse`` says which command
reads each instead of parsing it as a list.
"""

from __future__ import annotations

from avprep.recipes.formats import register
from avprep.recipes.table import BadLine, Collector


def _not_a_list(text: str, col: Collector, dataset: str | None) -> None:
    raise BadLine("not a text id list")  # pragma: no cover - load_clips stops before


register(
    "zip-archive",
    ("chaotic",),
    "a zip archive: unpack it (Chaotic World: `avprep chaotic-world prepare --root "
    "SSL_ssl_format`; docs/chaotic-world.md)",
    "SSL_ssl_format.zip",
    binary=True,
)(_not_a_list)

register(
    "htf-frame-pickle",
    ("flickr",),
    "Hear-The-Flow's annotated-frame pickle {id: [frame, ...]}: read it with "
    "`avprep.annotations.htf_frames` (restricted unpickler), which writes an "
    "`extract --times` file",
    "imagetoframe.pickle",
    binary=True,
)(_not_a_list)
