"""How several training processes share the work: ``train.replicas``.

``averaged`` (the default): the usual data-parallel training. Each of the
``WORLD_SIZE`` processes takes its share of every global batch, gradients
are all-reduced by ``DistributedDataParallel`` so every replica takes the
same step, BatchNorm statistics are synchronised (``train.sync_bn``). On
one process it is plain training: N / batch steps per epoch.

``independent``: SSPL's regime as its released code runs (``main.py``). It
builds ``DistributedDataParallel`` wrappers but trains through the unwrapped
modules, so:

- every process starts from rank 0's weights (DDP's constructor broadcasts
  them) and then steps its *own* replica on its own gradients: no gradient
  averaging, the replicas drift apart;
- each process reads its share of the data (``DistributedSampler``: every
  W-th clip of a shuffled order), so with W = 2 GPUs at 128 clips each, rank
  0 takes N / 256 steps per epoch;
- BatchNorm layers are ``SyncBatchNorm``: batch statistics (and their
  gradient terms) cover every process's batch, so running statistics agree;
- only rank 0 evaluates (on the test set, with the fixed 0.5 threshold,
  before training and after each epoch) and saves its own replica.

Under ``torchrun`` this is done for real. On one process it is emulated for
rank 0: its share of the data (``train.replica_count`` replicas, SSPL: 2)
and its number of steps per epoch at the same per-process batch; what
cannot be emulated without the other replicas is BatchNorm statistics over
their batches too (here they cover rank 0's batch only).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import nn

from avmodels.engine.distributed import (
    DistEnv,
    has_batchnorm,
    sync_batchnorm_converter,
    wrap_model,
)

if TYPE_CHECKING:
    from avmodels.engine.config_sections import TrainConfig

log = logging.getLogger(__name__)

REPLICAS = ("averaged", "independent")


@dataclass(frozen=True)
class ReplicaPlan:
    """Which share of the data this process trains on, and how replicas relate."""

    mode: str  # averaged | independent
    rank: int  # data share: this process's rank (or the emulated rank 0)
    world_size: int  # number of data shares (real processes, or emulated replicas)
    emulated: bool  # independent replicas emulated on one process (rank 0's share)

    @property
    def independent(self) -> bool:
        return self.mode == "independent"


def replica_plan(tc: TrainConfig, env: DistEnv) -> ReplicaPlan:
    """The plan ``train.replicas`` / ``train.replica_count`` give on ``env`` (both checked
    with the config: :class:`~avmodels.engine.config_sections.TrainConfig`)."""
    mode = tc.replicas
    if mode == "averaged" or env.distributed:
        return ReplicaPlan(mode, env.rank, env.world_size, emulated=False)
    count = tc.replica_count
    return ReplicaPlan(mode, 0, count, emulated=count > 1)


def prepare_model(method: nn.Module, plan: ReplicaPlan, env: DistEnv, tc: TrainConfig) -> nn.Module:
    """The module the training loop calls: DDP for ``averaged``, the method itself else.

    ``independent`` under torchrun: BatchNorm synchronised (``train.sync_bn``),
    every parameter and buffer broadcast from rank 0 once (as DDP's
    constructor does), no DDP wrapper, so gradients stay local.
    """
    if not plan.independent:
        return wrap_model(method, env, tc)
    if not env.distributed:
        return method
    if tc.sync_bn and has_batchnorm(method):
        method.convert_sync_batchnorm(sync_batchnorm_converter(env.device))
    with torch.no_grad():
        for t in [*method.parameters(), *method.buffers()]:
            dist.broadcast(t.data, src=0)
    return method


def describe(plan: ReplicaPlan, n: int, batch: int, steps: int) -> str:
    """One line for the log and the run record."""
    if not plan.independent:
        return f"replicas averaged over {plan.world_size} process(es): {steps} steps per epoch"
    where = "emulated rank 0 of" if plan.emulated else "rank"
    who = (
        f"{where} {plan.world_size}"
        if plan.emulated
        else f"{where} {plan.rank} of {plan.world_size}"
    )
    return (
        f"independent replicas (SSPL's regime), {who}: {n // plan.world_size} of {n} clips, "
        f"{steps} steps per epoch at batch {batch}, no gradient averaging"
    )


def batchnorm_sha256(module: nn.Module) -> str:
    """A hash of every BatchNorm running statistic: equal on all ranks iff they are shared."""
    import hashlib

    h = hashlib.sha256()
    for name, m in module.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            h.update(name.encode())
            for t in (m.running_mean, m.running_var):
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def state_sha256(module: nn.Module) -> str:
    """A hash of every parameter and buffer: equal on all processes iff replicas agree."""
    import hashlib

    h = hashlib.sha256()
    for key, value in module.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
