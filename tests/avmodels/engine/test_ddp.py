"""DDP for real: ``torchrun --nproc_per_node 2`` on CPU (gloo).

Both ranks must end with identical parameters (gradients really all-reduced,
BatchNorm statistics synchronised), equal to a one-process run that sees the
same global batches.
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

from avmodels.engine.checkpoint import load_model_file
from avmodels.engine.train import TrainRequest, train
from tests.engine_data import write_tiny_store

SETS = [
    "model.pretrained=false",
    "model.image_size=32",
    "train.num_workers=0",
    "train.log_every=1",
    "train.epochs=1",
    "eval.every=0",
    # SGD: parameters move by lr x gradient, so equal gradients give equal parameters;
    # Adam's first steps are lr x sign(gradient) and turn float noise into lr-sized flips
    "optim.name=sgd",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(run):
    with open(run / "train_log.csv") as fh:
        return [float(r["loss"]) for r in csv.DictReader(fh)]


@pytest.mark.slow
def test_torchrun_two_ranks_equal_one_process(tmp_path):
    data, _ = write_tiny_store(tmp_path / "data", 8, size=40)
    # one process, global batch 4 (also builds the VGGish cache both runs share)
    single = tmp_path / "single"
    train(TrainRequest("sspl", [str(data)], str(single), sets=[*SETS, "train.batch_size=4"],
                       progress=False))  # fmt: skip
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
           "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "avmodels", "train", "sspl",
           "--data", str(data), "--out", str(run), "--no-progress"]  # fmt: skip
    for s in [*SETS, "train.batch_size=2"]:
        cmd += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 2
    a, b = summary["replica_sha256"]
    assert a == b, "the two ranks hold different parameters"

    one = load_model_file(single / "final.pt")["state_dict"]
    two = load_model_file(run / "final.pt")["state_dict"]
    assert one.keys() == two.keys()
    for k in one:
        assert torch.allclose(one[k].float(), two[k].float(), atol=1e-5, rtol=1e-4), k
    assert _losses(run) == pytest.approx(_losses(single), abs=1e-5)
    # and training did move the trainable parts (the comparison is not vacuous)
    init = tmp_path / "init"
    train(TrainRequest("sspl", [str(data)], str(init), sets=[*SETS, "train.batch_size=4",
                       "train.max_steps=0"], progress=False))  # fmt: skip
    zero = load_model_file(init / "final.pt")["state_dict"]
    assert not torch.allclose(zero["head.projector.layer1.0.weight"],
                              one["head.projector.layer1.0.weight"])  # fmt: skip
    assert torch.equal(zero["frame_net.0.weight"], one["frame_net.0.weight"])  # frozen


@pytest.mark.slow
def test_global_batchnorm_two_processes_equal_full_batch(tmp_path):
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.ddp_worker", str(r), "2", str(port), str(tmp_path)],
            env=env,
        )
        for r in range(2)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    torch.manual_seed(0)
    x = (1000.0 + torch.randn(8, 5, 3)).requires_grad_(True)
    w = torch.randn(8, 5, 3)
    bn = torch.nn.BatchNorm1d(5)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    y = bn(x)
    (y * w).sum().backward()
    got = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert torch.allclose(torch.cat([g["y"] for g in got]), y, atol=1e-4)
    assert torch.allclose(torch.cat([g["gx"] for g in got]), x.grad, atol=1e-4)
    for g in got:
        assert torch.allclose(g["gw"], bn.weight.grad, atol=1e-3)
        assert torch.allclose(g["rm"], bn.running_mean, atol=1e-3)
        assert torch.allclose(g["rv"], bn.running_var, rtol=1e-4)
