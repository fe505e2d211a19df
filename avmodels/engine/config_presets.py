"""Named training configs: ``avmodels train sspl-pcm --config chaotic-world``.

A preset is a YAML file of config overrides shipped in ``avmodels/configs/``
as ``<method>.<name>.yaml`` (each file says where its settings come from). A
``--config`` value that is an existing file is read as before; otherwise it
must name a preset of the method.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from avprep.errors import ConfigError

PRESET_DIR = Path(__file__).resolve().parents[1] / "configs"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def presets(method: str) -> list[str]:
    """The preset names shipped for ``method``."""
    prefix = f"{method}."
    return sorted(
        p.name[len(prefix) : -len(".yaml")]
        for p in PRESET_DIR.glob(f"{method}.*.yaml")
        if p.name.startswith(prefix)
    )


def preset_path(method: str, value: str | os.PathLike) -> Path:
    """``value`` itself if it is a file, else the preset file it names for ``method``."""
    path = Path(value)
    if path.is_file():
        return path
    name = str(value)
    if not _NAME.match(name):
        raise ConfigError(f"config file not found: {value}")
    found = PRESET_DIR / f"{method}.{name}.yaml"
    if found.is_file():
        return found
    have = presets(method)
    raise ConfigError(
        f"--config {name!r}: no such file and no preset of {method!r} by that name; "
        f"presets: {', '.join(have) or '(none)'}"
    )
