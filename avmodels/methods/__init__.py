"""Localisation methods, one module each, looked up by name in ``METHODS``."""

from __future__ import annotations

import importlib
import importlib.util

from avmodels.methods.base import METHODS, Method

# Modules that register methods; imported here so the registry is complete.
_MODULES = ("sspl", "ssl_tie", "htf", "mssl", "ezvsl", "fnac", "lvs", "slavc")

for _mod in _MODULES:
    if importlib.util.find_spec(f"avmodels.methods.{_mod}") is not None:
        importlib.import_module(f"avmodels.methods.{_mod}")

__all__ = ["METHODS", "Method", "build_method"]


def build_method(name: str, cfg: dict | None = None) -> Method:
    """Instantiate the registered method ``name`` with a resolved config."""
    cls = METHODS.get(name)
    return cls(cfg if cfg is not None else cls.defaults)
