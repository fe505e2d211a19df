"""Checkpoints (training state) and model files (weights + config), saved atomically.

- A *checkpoint* (``RUN/checkpoints/last.pt``) holds everything ``--resume``
  needs to continue exactly: model, optimiser, scheduler and AMP scaler
  states, the RNG states of python/numpy/torch (CPU and CUDA), epoch, step
  within the epoch, global step, best score and early-stopping counter.
- A *model file* (``RUN/best.pt``, ``RUN/last_model.pt``, or an imported
  checkpoint) holds the method name, its resolved config and its weights:
  what ``avmodels eval`` and ``localize`` need.

Both are plain containers of tensors, numbers, strings, lists and dicts, so
they load with ``torch.load(..., weights_only=True)`` (no pickled code runs),
and both are written to a temporary file and renamed, so a crash never
leaves a half-written file under the final name.
"""

from __future__ import annotations

import os
import pickle
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avprep.atomic import atomic_path
from avprep.errors import InputError

MODEL_FORMAT = "avmodels-model/1"
CHECKPOINT_FORMAT = "avmodels-checkpoint/1"


def _atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_model(
    path: str | os.PathLike, model: Any, cfg: dict[str, Any], meta: dict[str, Any] | None = None
) -> Path:
    """Write a model file: method name, config and weights (CPU tensors)."""
    obj = {
        "format": MODEL_FORMAT,
        "method": model.name,
        "config": _plain(cfg),
        "state_dict": _cpu_state(model),
        "meta": _plain(meta or {}),
    }
    return _atomic_save(obj, path)


def _load(path: str | os.PathLike, fmt: str, what: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message suggests weights_only=False: that would run code from the file
        m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        needs = f" (it needs {m.group(1)})" if m else ""
        raise InputError(
            f"{path}: refused: this {what} holds pickled Python objects beyond tensors and "
            f"plain data{needs}, and loading them could run code from the file; avmodels "
            "loads only files it wrote itself (weights only). For an original paper's "
            "checkpoint use `avmodels import-ckpt`"
        ) from None
    except Exception as exc:
        raise InputError(f"{path}: not a readable {what} ({exc})") from exc
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise InputError(f"{path}: not an avmodels {what} (format {fmt!r} expected)")
    return obj


def load_model_file(path: str | os.PathLike) -> dict[str, Any]:
    """The content of a model file (``weights_only=True``)."""
    return _load(path, MODEL_FORMAT, "model file")


def build_model(
    path: str | os.PathLike, device: str | torch.device = "cpu", sets: Sequence[str] = ()
):
    """Instantiate the method a model file names, with its config and weights, in eval mode.

    ``sets``: ``--set section.key=value`` items applied to the file's config with
    the same key checking as ``avmodels train`` (an unknown key is an error).
    """
    from avmodels.engine.config import apply_overrides, parse_set
    from avmodels.methods import METHODS

    obj = load_model_file(path)
    cls = METHODS.get(obj["method"])
    cfg = dict(obj["config"])
    if sets:
        cfg = apply_overrides(cfg, parse_set(sets), "--set")
        obj = {**obj, "config": cfg}
    model_cfg = dict(cfg.get("model", {}))
    if "pretrained" in model_cfg:
        model_cfg["pretrained"] = False  # the file carries every weight
    cfg["model"] = model_cfg
    model = cls(cfg)
    model.load_state_dict(obj["state_dict"], strict=True)
    return model.to(device).eval(), obj


# -- training checkpoints ----------------------------------------------------
def rng_state() -> dict[str, Any]:
    """RNG states as tensors and plain numbers (safe for ``weights_only`` loading)."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "gauss": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    path: str | os.PathLike,
    *,
    method: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None,
    scaler: Any | None,
    progress: dict[str, Any],
) -> Path:
    """Write the full training state (see the module docstring)."""
    obj = {
        "format": CHECKPOINT_FORMAT,
        "method": method,
        "model": _cpu_state(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng_state(),
        "progress": _plain(progress),
    }
    return _atomic_save(obj, path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    return _load(path, CHECKPOINT_FORMAT, "checkpoint")
