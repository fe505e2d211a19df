"""The optimisers and learning-rate schedules ``optim.name`` / ``optim.scheduler`` name.

Two registries, so the valid choices are listed in one place (config
validation, error messages, docs). Each entry builds the torch object from the
method's parameter groups and the run's :class:`~avmodels.engine.config_sections.OptimConfig`:

- optimisers: ``adam``, ``adamw`` (``optim.betas``), ``sgd`` (``optim.momentum``);
  all take ``optim.lr`` and ``optim.weight_decay`` (a group's own ``lr`` wins);
- schedules, stepped after every optimiser step: ``constant`` (no scheduler;
  ``none`` is the same), ``cosine`` (over ``train.epochs``), ``step``
  (``optim.step_epochs``, ``optim.gamma``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from avprep.registry import Registry

if TYPE_CHECKING:
    from avmodels.engine.config_sections import OptimConfig

Groups = list[dict[str, Any]]
OptimizerBuilder = Callable[[Groups, "OptimConfig"], torch.optim.Optimizer]
# (optimizer, optim config, steps per epoch, epochs) -> scheduler or None
SchedulerBuilder = Callable[
    [torch.optim.Optimizer, "OptimConfig", int, int], "torch.optim.lr_scheduler.LRScheduler | None"
]

OPTIMIZERS: Registry[OptimizerBuilder] = Registry("optimiser (optim.name)")
SCHEDULERS: Registry[SchedulerBuilder] = Registry("scheduler (optim.scheduler)")


@OPTIMIZERS.register("adam")
def _adam(groups: Groups, o: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(groups, lr=o.lr, weight_decay=o.weight_decay)


@OPTIMIZERS.register("adamw")
def _adamw(groups: Groups, o: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay, betas=o.betas)


@OPTIMIZERS.register("sgd")
def _sgd(groups: Groups, o: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=o.lr, weight_decay=o.weight_decay, momentum=o.momentum)


def _constant(optimizer: Any, o: OptimConfig, steps_per_epoch: int, epochs: int) -> None:
    return None


SCHEDULERS.add("constant", _constant)
SCHEDULERS.add("none", _constant)


@SCHEDULERS.register("cosine")
def _cosine(optimizer: Any, o: OptimConfig, steps_per_epoch: int, epochs: int) -> Any:
    total = max(1, steps_per_epoch * epochs)
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)


@SCHEDULERS.register("step")
def _step(optimizer: Any, o: OptimConfig, steps_per_epoch: int, epochs: int) -> Any:
    step = max(1, o.step_epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step, gamma=o.gamma)
