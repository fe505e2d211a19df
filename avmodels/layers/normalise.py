"""Min-max normalisation of each map (each row of a batch) to [0, 1]."""

from __future__ import annotations

import torch


def _per_row(x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (x.dim() - 1)))


def minmax(x: torch.Tensor, eps: float) -> torch.Tensor:
    """``(x - min) / (max - min + eps)``, min and max over all but the first dimension."""
    flat = x.flatten(1)
    lo, hi = _per_row(x, flat.min(1).values), _per_row(x, flat.max(1).values)
    return (x - lo) / (hi - lo + eps)


def minmax_guarded(x: torch.Tensor) -> torch.Tensor:
    """Per map ``(x - min) / (max - min)``; a constant map is returned unchanged."""
    flat = x.flatten(1)
    lo, hi = flat.min(1).values, flat.max(1).values
    span = (hi - lo).view(-1, *([1] * (x.dim() - 1)))
    out = (x - lo.view_as(span)) / torch.where(span == 0, torch.ones_like(span), span)
    return torch.where(span == 0, x, out)
