"""How many epochs of the demo fit its ``--minutes`` budget here: one training step timed."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from avmodels.demo import DemoPaths, DemoSettings


def calibrate_step(s: DemoSettings, p: DemoPaths, repeats: int = 2) -> float:
    """Seconds one training step of the demo's configuration takes here (a rough figure)."""
    import torch
    from torch.utils.data import default_collate

    from avmodels.engine.config import resolve_config
    from avmodels.methods import METHODS
    from avprep.store import open_dataset

    r = s.recipe
    cfg = resolve_config(r.method, sets=[*r.sets(s.seed, 1), *s.extra_sets])
    method = METHODS.get(r.method)(cfg)
    method.train()
    ds = open_dataset(p.store("train"), modalities=list(method.required_inputs()))
    transform = method.sample_transform(train=True)
    bs = int(cfg["train"]["batch_size"])
    samples = [transform(ds[i % len(ds)]) for i in range(min(bs, 16))]
    batch = default_collate([samples[i % len(samples)] for i in range(bs)])
    opt = method.build_optimizer()
    times = []
    for i in range(repeats + 1):
        t = time.perf_counter()
        loss = method.training_losses(batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:  # the first step pays one-off costs
            times.append(time.perf_counter() - t)
    del method, opt
    torch.set_grad_enabled(True)
    return min(times)


def plan_epochs(s: DemoSettings, p: DemoPaths) -> tuple[int, str]:
    """Epochs to train: the recipe's, fewer if ``--minutes`` would be exceeded here."""
    planned = s.epochs or s.recipe.epochs
    if s.minutes is None:
        return planned, f"{planned} epochs (no time budget)"
    from avprep.store.index import read_index

    n_train = sum(sh.rows for sh in read_index(p.store("train")).shards)
    bs = int(dict(s.recipe.config).get("train.batch_size", 32))
    for item in s.extra_sets:
        if item.startswith("train.batch_size="):
            bs = int(item.split("=", 1)[1])
    steps = max(1, n_train // bs)
    step_s = calibrate_step(s, p)
    # data loading shares the two cores, and each epoch ends with a validation pass
    epoch_s = steps * step_s * 1.35 + 2.0
    fit = max(1, int(s.minutes * 60 // epoch_s))
    epochs = min(planned, fit)
    why = (
        f"{epochs} epochs of {steps} steps (planned {planned}; a step takes ~{step_s:.2f} s here, "
        f"an epoch ~{epoch_s:.0f} s, budget {s.minutes:g} min)"
    )
    return epochs, why
