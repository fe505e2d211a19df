"""The batch of every process, for losses whose negatives span the global batch.

:func:`gather_batch` all-gathers along dim 0; the gradient of every block goes
back to the process that owns it, so N processes with batch b train exactly as
one process with batch N b (``loss.global_negatives`` of the EZ-VSL family).
"""

from __future__ import annotations

import torch
import torch.distributed as dist


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0; the gradient of every block goes back to its owner (summed)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        world, rank = dist.get_world_size(), dist.get_rank()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.n = rank, x.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # every process's loss depends on this process's rows
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather_batch(x: torch.Tensor, enabled: bool) -> tuple[torch.Tensor, int]:
    """(the global batch, the row where this process's block starts).

    Without a process group (or with ``enabled`` false) the local batch and 0.
    Every process must hold the same number of rows (the engine drops the last
    partial training batch).
    """
    if not enabled or not dist.is_available() or not dist.is_initialized():
        return x, 0
    if dist.get_world_size() == 1:
        return x, 0
    return _GatherWithGrad.apply(x), dist.get_rank() * x.shape[0]
