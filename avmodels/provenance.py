"""What an evaluation records about where its figures come from.

``avmodels eval --report`` writes these beside the metrics in
``metrics.json``; ``avmodels report`` shows them in the provenance table: the
model file and its sha256, the epoch it was saved at and the rule that chose
it, the training seed, the id list and how many ids it held and the code version
(package version plus the git commit when run from a checkout); the date is
the time ``metrics.json`` was written (:func:`written_at`).
"""

from __future__ import annotations

import datetime as dt
import functools
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """``avmodels <version>``, plus ``git <commit>[-dirty]`` when run from a git checkout."""
    from avmodels import __version__

    text = f"avmodels {__version__}"
    git = shutil.which("git")
    root = Path(__file__).resolve().parents[1]
    if git is None or not (root / ".git").exists():
        return text
    try:
        commit = subprocess.run(
            [git, "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            [git, "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (subprocess.SubprocessError, OSError):
        return text
    return f"{text}, git {commit}{'-dirty' if dirty else ''}" if commit else text


def evaluation_record(
    model_file: str | Path,
    model_obj: Mapping[str, Any],
    *,
    ids_source: str | None,
    n_ids: int | None,
) -> dict[str, Any]:
    """The provenance fields of one evaluation (JSON-ready)."""
    from avprep.atomic import sha256_file

    meta = dict(model_obj.get("meta") or {})
    train_cfg = dict((model_obj.get("config") or {}).get("train") or {})
    return {
        "model_sha256": sha256_file(model_file),
        "epoch": meta.get("epoch"),
        "select": meta.get("select"),
        "seed": train_cfg.get("seed"),
        "ids": ids_source,
        "n_ids": n_ids,
        "code_version": code_version(),
    }


def written_at(path: str | Path) -> str:
    """When ``path`` was written (its mtime, UTC, ISO 8601): the date of an evaluation.

    Kept out of ``metrics.json`` itself so that scoring the same model on the
    same data twice writes the same file.
    """
    ts = Path(path).stat().st_mtime
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="seconds")
