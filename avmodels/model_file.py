"""Which model file a command reads: ``--ckpt``, or a run folder's best (else final) model."""

from __future__ import annotations

from pathlib import Path

from avprep.errors import ConfigError, InputError


def model_file_of(run: str | Path | None, ckpt: str | Path | None) -> Path:
    """The model a command reads: ``ckpt``, or the run's best.pt, else final.pt."""
    if (run is None) == (ckpt is None):
        raise ConfigError("give exactly one of --run RUN_DIR or --ckpt MODEL_FILE")
    if ckpt is not None:
        return Path(ckpt)
    for name in ("best.pt", "final.pt"):
        if (Path(run) / name).is_file():
            return Path(run) / name
    raise InputError(f"{run} has no best.pt or final.pt (has training finished?)")
