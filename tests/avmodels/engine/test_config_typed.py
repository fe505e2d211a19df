"""The typed run config: resolved once into frozen sections, every choice checked first.

A bad choice must stop ``avmodels train`` before any data is opened or any run
folder is made: the tests give a store path that does not exist (opening it
would fail with another message) and check that ``--out`` never appears.
"""

from __future__ import annotations

import dataclasses
import sys

import pytest

from avmodels.engine.config import ENGINE_DEFAULTS, resolve_config
from avmodels.engine.config_sections import OptimConfig, RunConfig, TrainConfig, typed
from avmodels.engine.train import TrainRequest, train
from avmodels.methods import METHODS
from avprep.errors import ConfigError


@pytest.mark.parametrize(
    "item, valid",
    [
        ("optim.name=adamx", "adam, adamw, sgd"),
        ("optim.scheduler=cosin", "constant, none, cosine, step"),
        ("train.loader=fast", "torch, ring"),
        ("train.amp=fp8", "none, bf16, fp16"),
        ("train.augment=gpu", "batch, sample"),
        ("train.input=tpu", "auto, cpu, gpu"),
        ("train.replicas=some", "averaged, independent"),
        ("eval.select=best", "auto, ciou, auc"),
        ("eval.preset=nope", "default, lvs"),
        ("eval.benchmark=coco", "vggss, flickr, chaotic"),
    ],
)
def test_a_bad_choice_stops_before_data_and_run_folder(tmp_path, item, valid):
    out = tmp_path / "run"
    req = TrainRequest("sspl", [str(tmp_path / "no-such-store")], str(out), sets=[item],
                       progress=False)  # fmt: skip
    with pytest.raises(ConfigError) as err:
        train(req)
    key, value = item.split("=")
    message = str(err.value)
    assert message.startswith(f"{key}={value!r} is not a choice; valid: ") and valid in message
    assert "\n" not in message
    assert not out.exists()


def test_cli_bad_optimiser_is_one_line_and_exits_non_zero(tmp_path, monkeypatch, capsys):
    from avmodels.cli import main  # the console script's entry point

    out = tmp_path / "run"
    argv = ["avmodels", "train", "sspl", "--data", str(tmp_path / "none"), "--out", str(out),
            "--set", "optim.name=adamx", "--no-progress"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == ["error: optim.name='adamx' is not a choice; valid: adam, adamw, sgd"], err
    assert not out.exists()


def test_resume_checks_choices_before_anything(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"method": "sspl", "data": []}')
    (run / "config.yaml").write_text("train:\n  loader: fast\n")
    with pytest.raises(ConfigError, match="train.loader='fast' is not a choice"):
        train(TrainRequest(None, [], str(run), resume=True, progress=False))
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "run.json"]


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_resolves_to_typed_frozen_sections(name):
    cfg = resolve_config(name)
    rc = typed(cfg)
    assert isinstance(rc, RunConfig) and rc.raw is cfg
    # the typed sections carry exactly the resolved values of the engine's keys
    for section in ("train", "eval", "data"):
        typed_sec = getattr(rc, section)
        for key in ENGINE_DEFAULTS[section]:
            assert getattr(typed_sec, key) == cfg[section][key], (section, key)
    assert rc.optim.name == cfg["optim"]["name"]
    assert rc.optim.scheduler == cfg["optim"]["scheduler"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rc.train.epochs = 3  # type: ignore[misc]


def test_values_are_typed_once():
    rc = typed(resolve_config("sspl", sets=["train.grad_clip=1", "train.max_steps=7",
                                             "eval.patience=2", "data.val_fraction=0.1",
                                             "optim.name=SGD", "optim.scheduler=Cosine"]))  # fmt: skip
    assert rc.train.grad_clip == 1.0 and isinstance(rc.train.grad_clip, float)
    assert rc.train.max_steps == 7 and rc.eval.patience == 2
    assert rc.data.val_fraction == 0.1
    assert (rc.optim.name, rc.optim.scheduler) == ("sgd", "cosine")  # as before: any case
    assert rc.optim.betas == (0.9, 0.999) and isinstance(rc.optim.betas, tuple)
    with pytest.raises(ConfigError, match="train.max_steps must be an integer"):
        typed(resolve_config("sspl", sets=["train.max_steps=1.5"]))
    with pytest.raises(ConfigError, match="train.batch_size must be set"):
        typed(resolve_config("sspl", sets=["train.batch_size=null"]))


def test_with_eval_changes_typed_and_raw_alike():
    cfg = resolve_config("sspl")
    rc = typed(cfg).with_eval(preset="sspl")
    assert rc.eval.preset == "sspl" and rc.raw["eval"]["preset"] == "sspl"
    assert cfg["eval"]["preset"] is None  # the resolved dict is not mutated


def test_optimiser_and_schedule_come_from_the_typed_section():
    import torch

    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))]}]
    from avmodels.engine.optimizers import OPTIMIZERS, SCHEDULERS

    o = OptimConfig.from_config({"optim": {"name": "sgd", "lr": 0.5, "momentum": 0.3}})
    opt = OPTIMIZERS.get(o.name)(groups, o)
    assert isinstance(opt, torch.optim.SGD)
    assert opt.param_groups[0]["lr"] == 0.5 and opt.param_groups[0]["momentum"] == 0.3
    step = OptimConfig.from_config({"optim": {"scheduler": "step", "step_epochs": 2}})
    sched = SCHEDULERS.get(step.scheduler)(opt, step, 5, 1)
    assert isinstance(sched, torch.optim.lr_scheduler.StepLR) and sched.step_size == 10
    assert SCHEDULERS.get("constant")(opt, o, 5, 1) is None
    assert TrainConfig.from_config({}).loader == ENGINE_DEFAULTS["train"]["loader"]


def test_a_store_without_the_methods_inputs_stops_before_any_shard_is_opened(tmp_path):
    from avprep.store.index import StoreIndex

    store = tmp_path / "store"
    store.mkdir()
    # an index alone: opening a shard would fail, so the message proves none was opened
    StoreIndex(layout="native", split="train", rows=4, rows_per_shard=4, shards=[],
               attrs={"modalities": ["frame", "audio"]}).write(store)  # fmt: skip
    out = tmp_path / "run"
    sets = ["model.pretrained=false", "model.image_size=32", "model.cache_vggish=false"]
    with pytest.raises(ConfigError, match=r"reads 'spectrogram', which .*store does not store"):
        train(TrainRequest("sspl", [str(store)], str(out), sets=sets, progress=False))
    assert not out.exists()
