"""The Method contract: ``encode`` once, then ``losses`` and ``maps``.

For every registered method (smoke sizes): the engine's batch-level calls
(``training_losses``, ``evaluation_step``, ``localization_map``) give exactly
what ``encode`` followed by ``losses`` / ``validation_losses`` / ``maps``
gives; no method re-implements ``evaluation_step``; no method module imports
another.
"""

from __future__ import annotations

import ast
import copy
import importlib
import inspect
from pathlib import Path

import pytest
import torch
from torch.utils.data import default_collate

from avmodels.engine.config import resolve_config
from avmodels.methods import METHODS, Method
from tests.method_config import one_thread  # noqa: F401 (autouse fixture)


def _model_and_batches(name: str):
    cls = METHODS.get(name)
    cfg = resolve_config(name, overrides_dict=cls.smoke_overrides)
    torch.manual_seed(0)
    model = cls(cfg)
    torch.manual_seed(1)
    train = default_collate([model.sample_transform(True)(model.smoke_sample(i)) for i in range(2)])
    test = default_collate(
        [model.sample_transform(False)(model.smoke_sample(9 + i)) for i in range(2)]
    )
    return model, train, test


# sspl-pcm's smallest map (96 px through VGG16) takes ~8 s on one CPU thread
ALL = [pytest.param(n, marks=pytest.mark.slow) if n == "sspl-pcm" else n for n in METHODS.names()]


def _assert_same(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("name", ALL)
def test_engine_calls_are_encode_then_losses_and_maps(name):
    model, train, test = _model_and_batches(name)
    twin = copy.deepcopy(model)  # encode may update state (momentum, BatchNorm, k-means)

    model.train(), twin.train()
    torch.manual_seed(2)
    expected = model.training_losses(train)
    torch.manual_seed(2)
    got = twin.losses(twin.encode(train), train)
    _assert_same(expected, got)
    assert torch.isfinite(got["loss"]) and got["loss"].requires_grad
    for (k, a), b in zip(model.state_dict().items(), twin.state_dict().values(), strict=True):
        assert torch.equal(a, b), k  # the same side effects in the same order

    model.eval(), twin.eval()
    with torch.no_grad():
        maps, val = model.evaluation_step(test, with_loss=True)
        only_maps, none = model.evaluation_step(test, with_loss=False)
        features = twin.encode(test)
        want_maps = twin.maps(features, test)
        want_val = twin.validation_losses(features, test)
        single = model.localization_map(test)
    assert none is None
    assert maps.shape == (2, *maps.shape[1:]) and maps.dim() == 3
    assert torch.equal(maps, want_maps) and torch.equal(only_maps, want_maps)
    assert torch.equal(single, want_maps)
    _assert_same(val, want_val)


@pytest.mark.parametrize("name", METHODS.names())
def test_no_method_reimplements_evaluation_step(name):
    for klass in inspect.getmro(METHODS.get(name)):
        if klass is Method:
            break
        assert "evaluation_step" not in vars(klass), f"{klass.__name__} overrides evaluation_step"


def test_no_method_module_imports_another():
    modules = {importlib.import_module(cls.__module__) for _, cls in METHODS.items()}
    names = {m.__name__ for m in modules}
    assert len(names) >= 8
    for module in modules:
        tree = ast.parse(Path(module.__file__).read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
                imported.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
        assert not (imported & (names - {module.__name__})), module.__name__


@pytest.mark.parametrize("name", METHODS.names())
def test_a_method_reads_the_config_resolved_once(name):
    from avmodels.methods import build_method
    from avprep.errors import ConfigError

    cls = METHODS.get(name)
    cfg = resolve_config(name, overrides_dict=cls.smoke_overrides)
    # the constructor keeps the resolved config's sections as they are: no second
    # merge of the defaults (which would put the method's sections before the engine's)
    built = cls(cfg).cfg
    assert list(built) == list(cfg)
    assert {k: v for k, v in built.items() if k != "optim"} == {
        k: v for k, v in cfg.items() if k != "optim"
    }  # (mssl derives its optim.lr from the stage)
    # a partial config goes through the same resolver, strict keys included
    assert build_method(name, cls.smoke_overrides).cfg == built
    with pytest.raises(ConfigError, match="did you mean 'model.pretrained'"):
        build_method(name, {"model": {"pretraind": False}})
