"""Options shared by the avmodels commands, checked against the registries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from avprep.clikit import choice_option


def preset_option(*decls: str, **kw: Any) -> Callable:
    """``--preset``: one of the metric presets (:data:`avmodels.metrics.presets.PRESETS`)."""
    from avmodels.metrics.presets import PRESETS

    kw.setdefault("help", "Metric preset.")
    return choice_option(*(decls or ("--preset",)), names=PRESETS.names(), **kw)
