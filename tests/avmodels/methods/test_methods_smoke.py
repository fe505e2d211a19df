"""Every registered method builds on CPU, trains a few steps and produces maps.

Parametrised over the METHODS registry, so a method registered later is
covered automatically (with its ``smoke_overrides``: tiny images, no
pretrained weights).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import default_collate

from avmodels.engine.config import resolve_config
from avmodels.methods import METHODS


def _build(name: str):
    cls = METHODS.get(name)
    cfg = resolve_config(name, overrides_dict=cls.smoke_overrides)
    torch.manual_seed(0)
    return cls(cfg), cfg


@pytest.mark.slow
@pytest.mark.parametrize("name", METHODS.names())
def test_method_trains_and_maps(name):
    method, cfg = _build(name)
    batch_size = max(2, int(cfg["train"]["batch_size"]))
    train_tf = method.sample_transform(train=True)
    batch = default_collate([train_tf(method.smoke_sample(i)) for i in range(batch_size)])
    optimizer = method.build_optimizer()
    assert optimizer.param_groups, "no trainable parameters"
    method.train()
    losses = []
    for _ in range(3):
        loss = method.training_losses(batch)["loss"]
        assert loss.dim() == 0 and math.isfinite(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], f"{name}: loss did not decrease on a fixed batch: {losses}"

    method.eval()
    eval_tf = method.sample_transform(train=False)
    samples = [eval_tf(method.smoke_sample(100 + i)) for i in range(batch_size)]
    with torch.no_grad():
        maps = method.localization_map(default_collate(samples))
        single = method.localization_map(default_collate(samples[:1]))
    assert maps.dim() == 3 and maps.shape[0] == batch_size
    assert torch.isfinite(maps).all()
    # a batch of one gives the same map as the same sample inside a batch (eval mode)
    assert single.shape == (1, *maps.shape[1:])
    assert torch.allclose(single[0], maps[0], atol=1e-5)


@pytest.mark.parametrize("name", METHODS.names())
def test_method_defaults_are_complete(name):
    cls = METHODS.get(name)
    cfg = resolve_config(name)
    assert cls.paper, "a method names its paper"
    for section in ("train", "eval", "data"):
        assert section in cfg
    assert int(cfg["train"]["batch_size"]) >= 1 and int(cfg["train"]["epochs"]) >= 1
