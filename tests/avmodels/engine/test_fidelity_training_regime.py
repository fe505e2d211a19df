"""SSPL's training regime by name (``train.replicas=independent``) and its test-set selection.

SSPL's ``main.py`` (restated): ``DistributedSampler`` gives rank r every W-th
clip of a shuffled order; each rank steps its own replica (the DDP wrappers
are bypassed: no gradient averaging) at 128 clips a batch, so rank 0 takes
N / (W x 128) steps an epoch; BatchNorm is ``SyncBatchNorm`` (statistics of
every rank's batch); rank 0 scores the test set with the fixed 0.5
threshold before training and after every epoch and keeps the best.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from avmodels.data import EpochSampler
from avmodels.engine.checkpoint import load_model_file
from avmodels.engine.config_sections import TrainConfig
from avmodels.engine.distributed import DistEnv
from avmodels.engine.replicas import replica_plan
from avmodels.engine.train import TrainRequest, train
from avprep.errors import ConfigError
from tests.engine_data import write_tiny_store

TINY = [
    "model.pretrained=false",
    "model.image_size=32",
    "train.batch_size=2",
    "train.num_workers=0",
    "train.log_every=1",
    "train.epochs=1",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("regime")
    path, boxes = write_tiny_store(root, 8, size=40)
    ann = root / "gt.json"
    ann.write_text(
        json.dumps([{"file": c, "class": "x", "bbox": [list(b)]} for c, b in boxes.items()])
    )
    return path, ann


@pytest.mark.slow
def test_one_process_emulates_rank0_of_two_independent_replicas(store, tmp_path):
    path, _ = store
    sets = [*TINY, "eval.every=0", "train.replicas=independent"]
    ind = train(TrainRequest("sspl", [str(path)], str(tmp_path / "ind"), sets=sets,
                             progress=False))  # fmt: skip
    # 8 clips at batch 2: our default takes 8 / 2 = 4 steps; rank 0 of 2 replicas 8 / (2 x 2)
    assert ind.steps == 2
    run = json.loads((tmp_path / "ind" / "run.json").read_text())
    assert run["replicas"] == {"mode": "independent", "rank": 0, "world_size": 2, "emulated": True}
    summary = json.loads((tmp_path / "ind" / "summary.json").read_text())
    assert "emulated rank 0 of 2" in summary["replicas"] and "4 of 8 clips" in summary["replicas"]


def test_rank0_share_is_every_second_clip_of_the_shuffled_order():
    cfg = {"train": {"replicas": "independent", "replica_count": 2}}
    plan = replica_plan(TrainConfig.from_config(cfg), DistEnv())
    assert (plan.rank, plan.world_size) == (0, 2)
    n, batch, seed, epoch = 20, 3, 7, 1
    s = EpochSampler(n, batch_size=batch, rank=plan.rank, world_size=plan.world_size,
                     shuffle=True, seed=seed)  # fmt: skip
    s.set_epoch(epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    kept = order[: (n // (batch * 2)) * batch * 2]  # whole global batches (drop_last)
    assert [p for p, _ in s] == kept[0::2]
    assert s.batches_per_epoch() == n // (batch * 2)
    with pytest.raises(ConfigError, match="train.replicas"):
        TrainConfig.from_config({"train": {"replicas": "sometimes"}})


@pytest.mark.slow
def test_select_on_test_uses_the_methods_preset_and_evaluates_before_training(store, tmp_path):
    path, ann = store
    run = tmp_path / "sel"
    with pytest.warns(UserWarning, match="selected on the test set"):
        train(TrainRequest("sspl", [str(path)], str(run), select_on_test=[str(path)],
                           annotations=str(ann), benchmark="vggss", sets=TINY,
                           progress=False))  # fmt: skip
    info = json.loads((run / "run.json").read_text())
    sel = info["selection"]
    assert sel["preset"] == "sspl" and sel["before_training"] is True
    assert "TEST" in sel["data"] and "own" in sel["preset_source"]
    assert "preset: sspl" in (run / "config.yaml").read_text()
    with open(run / "val_log.csv") as fh:
        epochs = [int(float(r["epoch"])) for r in csv.DictReader(fh)]
    assert epochs == [0, 1]  # evaluated before the first epoch, as SSPL's main.py
    best = load_model_file(run / "best.pt")["meta"]
    assert best["epoch"] == 1  # the epoch-0 evaluation is logged, never kept
    assert json.loads((run / "summary.json").read_text())["selection"] == sel


@pytest.mark.slow
def test_an_explicit_preset_wins_and_val_selection_is_recorded(store, tmp_path):
    path, ann = store
    run = tmp_path / "val"
    train(TrainRequest("sspl", [str(path)], str(run), val=[str(path)], annotations=str(ann),
                       benchmark="vggss", sets=[*TINY, "eval.preset=lvs"], progress=False))  # fmt: skip
    sel = json.loads((run / "run.json").read_text())["selection"]
    assert sel["data"] == "--val" and sel["preset"] == "lvs" and sel["before_training"] is False
    with open(run / "val_log.csv") as fh:
        assert [int(float(r["epoch"])) for r in csv.DictReader(fh)] == [1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_independent_replicas_share_batchnorm_but_not_gradients(store, tmp_path):
    path, _ = store
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
           "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "avmodels", "train", "sspl",
           "--data", str(path), "--out", str(run), "--no-progress"]  # fmt: skip
    for s in [*TINY, "eval.every=0", "train.replicas=independent", "optim.name=sgd"]:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    # 8 clips, 2 ranks at batch 2: 2 steps each
    assert summary["world_size"] == 2 and summary["steps"] == 2
    a, b = summary["replica_sha256"]
    assert a != b, "gradients were averaged: the replicas are identical"
    bn_a, bn_b = summary["replica_batchnorm_sha256"]
    assert bn_a == bn_b, "BatchNorm statistics were not shared"
