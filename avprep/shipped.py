"""The data files avprep ships: the metadata registry and the pipeline recipes.

One copy lives in the repository (``metadata/registry.yaml``,
``pipelines/*.yaml``); a wheel carries the same files inside the package as
``avprep/_shipped/metadata`` and ``avprep/_shipped/pipelines`` (``setup.py``
copies them at build time). :func:`data_dir` finds them either way: in a
source checkout (an editable install, or ``PYTHONPATH``) the repository's
folders win, so an edit is seen at once; an installed wheel uses its own copy.
"""

from __future__ import annotations

import re
from pathlib import Path

import avprep
from avprep.errors import ConfigError

SHIPPED = "_shipped"
FOLDERS = ("metadata", "pipelines")
_RECIPE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def source_root() -> Path | None:
    """The repository holding this package, when run from a source checkout."""
    root = Path(avprep.__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "avprep").is_dir() else None


def data_dir(name: str) -> Path:
    """The folder of shipped files ``name`` (``metadata`` or ``pipelines``)."""
    if name not in FOLDERS:
        raise ValueError(f"unknown shipped folder {name!r}")
    root = source_root()
    if root is not None and (root / name).is_dir():
        return root / name
    return Path(avprep.__file__).resolve().parent / SHIPPED / name


def recipe_names() -> list[str]:
    """The names of the shipped pipeline recipes (``avprep run NAME``)."""
    folder = data_dir("pipelines")
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def recipe_path(spec: str | Path) -> Path:
    """A recipe file: ``spec`` itself when it is a file, else the shipped recipe named ``spec``."""
    path = Path(spec)
    if path.is_file():
        return path
    name = str(spec)
    if name.endswith(".yaml"):
        name = name[: -len(".yaml")]
    if _RECIPE_NAME.match(name):
        shipped = data_dir("pipelines") / f"{name}.yaml"
        if shipped.is_file():
            return shipped
    names = ", ".join(recipe_names()) or "(none shipped)"
    raise ConfigError(f"no recipe file or shipped recipe named {spec}; shipped: {names}")
