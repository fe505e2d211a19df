"""Mixed precision: autocast contexts and the fp16 gradient scaler.

``train.amp``: ``none`` (fp32), ``bf16`` (CUDA, or CPU where the hardware
has bf16 kernels) or ``fp16`` (CUDA only; gradients are scaled).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from avprep.errors import ConfigError

if TYPE_CHECKING:
    import torch

AMP_MODES = ("none", "bf16", "fp16")


def check_amp(mode: str, device: torch.device) -> str:
    mode = (mode or "none").lower()
    if mode not in AMP_MODES:
        raise ConfigError(f"unknown train.amp {mode!r}; valid: {', '.join(AMP_MODES)}")
    if mode == "fp16" and device.type != "cuda":
        raise ConfigError("train.amp=fp16 needs CUDA; use bf16 or none on CPU")
    return mode


def autocast(mode: str, device: torch.device) -> Any:
    """An autocast context for ``mode`` on ``device`` (a no-op for ``none``)."""
    if mode == "none":
        return contextlib.nullcontext()
    import torch

    dtype = torch.bfloat16 if mode == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(mode: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16, else None."""
    if mode == "fp16":
        import torch

        return torch.amp.GradScaler(device.type)
    return None
