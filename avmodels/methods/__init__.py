"""Localisation methods, one module each, looked up by name in ``METHODS``."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from typing import Any

from avmodels.methods.base import METHODS, Method

# Modules that register methods; imported here so the registry is complete.
_MODULES = ("sspl", "ssl_tie", "htf", "mssl", "ezvsl", "fnac", "lvs", "slavc")

for _mod in _MODULES:
    if importlib.util.find_spec(f"avmodels.methods.{_mod}") is not None:
        importlib.import_module(f"avmodels.methods.{_mod}")

__all__ = ["METHODS", "Method", "build_method"]


def build_method(name: str, cfg: Mapping[str, Any] | None = None) -> Method:
    """The registered method ``name`` built from ``cfg`` completed by the one resolver.

    A method's constructor takes a resolved config as it is (the engine merges
    the defaults once); ``cfg`` here may be partial (a test's or an importer's
    patch, or None for the paper's defaults): :func:`avmodels.engine.config.resolve_config` completes
    it with the engine's and the method's defaults, with strict keys.
    """
    from avmodels.methods.construction import resolved

    cls = METHODS.get(name)
    return cls(resolved(cls, cfg))
