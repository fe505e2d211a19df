"""Multi-process training: torchrun environment, DDP, synchronised BatchNorm.

Launch with ``torchrun --nproc_per_node N -m avmodels.cli train ...`` (or the
``avmodels`` script): each process reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``,
joins the process group (NCCL on CUDA, gloo on CPU), wraps the method in
``DistributedDataParallel`` so gradients really are all-reduced (SSPL's
released code builds DDP wrappers but trains through the unwrapped modules,
so its GPUs never exchange gradients), and replaces BatchNorm by a
synchronised version so statistics cover the global batch: PyTorch's
``SyncBatchNorm`` on CUDA, :class:`GlobalBatchNorm` on CPU (PyTorch's only
runs on GPUs).
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.nn.functional import all_reduce as differentiable_all_reduce

from avprep.errors import ConfigError

if TYPE_CHECKING:
    from avmodels.engine.config_sections import TrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands: rank, world size and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:LOCAL_RANK`` when CUDA is present, else CPU."""
    name = (name or "auto").lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for but CUDA is not available")
        if name == "cuda":
            return torch.device("cuda", local_rank)
        return torch.device(name)
    if name != "cpu":
        raise ConfigError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N")
    return torch.device("cpu")


def init_distributed(device_name: str = "auto", timeout_s: float = 7200) -> DistEnv:
    """Join the torchrun process group if ``WORLD_SIZE`` > 1; pick this process's device.

    The long timeout covers rank 0 computing a feature cache while the others
    wait at a barrier.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
        log.info("rank %d/%d joined (%s) on %s", rank, world, backend, device)
    return DistEnv(rank=rank, world_size=world, local_rank=local, device=device)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        if env.device.type == "cuda":
            dist.barrier(device_ids=[env.device.index])
        else:
            dist.barrier()


def all_reduce_mean(value: float, env: DistEnv) -> float:
    """The mean of a Python number over all processes."""
    if not env.distributed:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=env.device)
    dist.all_reduce(t)
    return float(t.item()) / env.world_size


def broadcast_object(obj: Any, env: DistEnv) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any, env: DistEnv) -> list[Any]:
    """Every process's ``obj`` (a list, in rank order) on every process."""
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics cover the batch of every process.

    Works on any device and backend (gloo included): per-channel sums, sums
    of squares and counts are added with a differentiable all-reduce, so the
    gradient of each process's loss reaches the inputs of every process that
    contributed to the statistics, exactly as with one process holding the
    global batch. Outside training, or with one process, it is plain
    BatchNorm. Parameters and buffers are those of BatchNorm, so state dicts
    are interchangeable.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        synced = self.training and dist.is_available() and dist.is_initialized()
        if not synced or dist.get_world_size() == 1:
            return super().forward(x)
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.momentum is None and self.num_batches_tracked is not None:
            momentum = 1.0 / float(self.num_batches_tracked)
        dims = [0, *range(2, x.dim())]
        c = x.size(1)
        shape = [1, c] + [1] * (x.dim() - 2)
        xf = x.float()
        local_n = torch.tensor([x.numel() / c], dtype=torch.float32, device=x.device)
        # two passes (mean, then squared deviations): E[x^2] - E[x]^2 loses all
        # precision when |mean| >> std, which pooled features often have
        stats = differentiable_all_reduce(torch.cat([xf.sum(dims), local_n]))
        n = stats[c]
        if float(n) <= 1:
            raise ValueError("Expected more than 1 value per channel when training")
        mean = stats[:c] / n
        centred = xf - mean.view(shape)
        var = differentiable_all_reduce((centred * centred).sum(dims)) / n
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                unbiased = var * (n / (n - 1))
                self.running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased.detach())
        y = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def _convert(module: nn.Module, cls: type) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and type(module) is not cls:
        out = cls(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        if module.affine:
            with torch.no_grad():
                out.weight = module.weight
                out.bias = module.bias
        out.running_mean = module.running_mean
        out.running_var = module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.training = module.training
        if hasattr(module, "qconfig"):
            out.qconfig = module.qconfig
    for name, child in module.named_children():
        new = _convert(child, cls)
        if new is not child:
            out.add_module(name, new)
    return out


def sync_batchnorm_converter(device: torch.device):
    """A function converting every BatchNorm in a module (in place) for ``device``."""
    if device.type == "cuda":
        return lambda m: nn.SyncBatchNorm.convert_sync_batchnorm(m)
    return lambda m: _convert(m, GlobalBatchNorm)


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def wrap_model(method: nn.Module, env: DistEnv, tc: TrainConfig) -> nn.Module:
    """Synchronise BatchNorm (``train.sync_bn``) and wrap in DDP when there is more than
    one process."""
    if not env.distributed:
        return method
    if tc.sync_bn and has_batchnorm(method):
        method.convert_sync_batchnorm(sync_batchnorm_converter(env.device))
    synced = tc.sync_bn
    ids = [env.device.index] if env.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        method,
        device_ids=ids,
        find_unused_parameters=tc.find_unused_parameters,
        # synchronised BatchNorm keeps running statistics equal on every rank;
        # without it, rank 0's are broadcast (DDP's default)
        broadcast_buffers=not synced,
    )


def unwrap(model: nn.Module) -> nn.Module:
    """The method inside DDP / torch.compile wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


__all__ = [
    "DistEnv",
    "GlobalBatchNorm",
    "all_reduce_mean",
    "barrier",
    "broadcast_object",
    "gather_objects",
    "init_distributed",
    "pick_device",
    "shutdown",
    "sync_batchnorm_converter",
    "unwrap",
    "wrap_model",
]
