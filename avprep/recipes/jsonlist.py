"""Loading JSON annotation lists (VGG-SS, Chaotic World) with readable errors."""

from __future__ import annotations

import json
from collections.abc import Iterator

from avprep.errors import InputError


def load_list(text: str, path: str) -> list:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path}: line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})"
        ) from None
    except RecursionError:
        raise InputError(f"{path}:1: JSON nested too deeply to be a list of annotations") from None
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of annotations, got {type(data).__name__}")
    return data


def numbered(items: list) -> Iterator[tuple[int, object]]:
    """``(item number, item)``, numbered from 1 as the error messages say."""
    return enumerate(items, 1)
