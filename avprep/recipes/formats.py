"""The format registry: every id-list / annotation format a recipe can parse.

Each format is a name (``vggsound-csv``), the datasets it can describe, and a
parser ``parse(text, collector, dataset)`` that turns the file's text into
rows. Corpus modules register their formats on import.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from avprep.errors import UnknownNameError
from avprep.recipes.table import Collector
from avprep.registry import Registry

Parser = Callable[[str, Collector, "str | None"], None]

DATASETS = ("flickr", "vggsound", "url", "chaotic", "is3", "avsbench", "vpo")
DATASET_ALIASES = {"urls": "url", "soundnet": "flickr", "vggss": "vggsound"}


@dataclasses.dataclass(frozen=True)
class Format:
    name: str
    parse: Parser
    datasets: tuple[str, ...]
    description: str
    example: str
    unit: str = "line"  # what error positions count: "line" or "item" (JSON lists)
    binary: bool = False  # the parser gets the file's path instead of its text (pickles)


FORMATS: Registry[Format] = Registry("format")


def register(
    name: str,
    datasets: tuple[str, ...],
    description: str,
    example: str,
    unit: str = "line",
    binary: bool = False,
) -> Callable[[Parser], Parser]:
    def deco(fn: Parser) -> Parser:
        FORMATS.add(name, Format(name, fn, datasets, description, example, unit, binary))
        return fn

    return deco


def normalise_dataset(dataset: str | None) -> str | None:
    """``None`` or one of :data:`DATASETS` (aliases such as ``urls`` accepted)."""
    if dataset is None:
        return None
    key = DATASET_ALIASES.get(dataset.lower(), dataset.lower())
    if key not in DATASETS:
        valid = ", ".join([*DATASETS, *DATASET_ALIASES])
        raise UnknownNameError(f"unknown dataset {dataset!r}; valid: {valid}")
    return key
