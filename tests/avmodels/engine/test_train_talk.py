"""Training that talks: a line per epoch at the default log level, the train loss in
train_log.csv every epoch, --seed, -v after the subcommand, a summary with wall time
and loss, Ctrl-C says how to resume, --resume of a finished run says so."""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from avmodels.cli import cli
from avmodels.engine.runlog import epoch_line
from tests.engine_data import write_tiny_store

TINY = ["model.pretrained=false", "model.image_size=32", "train.batch_size=2",
        "train.num_workers=0", "train.log_every=1000"]  # fmt: skip
EPOCH = re.compile(r"epoch (\d+)/(\d+)  loss (-?\d+\.\d{4})  val ciou (\S+) .*  (\d+\.\d) s")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("talk")
    path, boxes = write_tiny_store(root, 6, size=40)
    ann = root / "gt.json"
    ann.write_text(json.dumps([{"file": c, "bbox": [list(b)]} for c, b in boxes.items()]))
    return path, ann


def _sets(*extra: str) -> list[str]:
    out = []
    for s in (*TINY, *extra):
        out += ["--set", s]
    return out


def test_epoch_line_format():
    val = {"ciou": 0.5, "auc": 0.25, "pointing": float("nan"), "val_loss": 1.5}
    line = epoch_line(3, 20, 0.41234, val, 12.34, True, "ciou")
    assert (
        line
        == "epoch 3/20  loss 0.4123  val ciou 0.5000 auc 0.2500 loss 1.5000  12.3 s  new best ciou"
    )
    assert epoch_line(1, 2, 0.5, None, 1.0, False, None) == "epoch 1/2  loss 0.5000  1.0 s"


@pytest.mark.slow
def test_train_talks_at_the_default_level(store, tmp_path):
    path, ann = store
    run = tmp_path / "run"
    args = ["train", "sspl", "--data", str(path), "--val-fraction", "0.34", "--annotations",
            str(ann), "--benchmark", "vggss", "--out", str(run), "--seed", "7",
            *_sets("train.epochs=2")]  # fmt: skip
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    lines = [m for m in map(EPOCH.search, res.stderr.splitlines()) if m]
    assert [(m.group(1), m.group(2)) for m in lines] == [("1", "2"), ("2", "2")]
    assert "new best ciou" in res.stderr.splitlines()[0] or "new best" in res.stderr
    assert "INFO avmodels.engine" not in res.stderr  # only the epoch lines at this level
    with open(run / "train_log.csv") as fh:
        rows = list(csv.DictReader(fh))
    # log_every is 1000 steps, yet every epoch's end is recorded
    assert [float(r["epoch"]) for r in rows] == [1.0, 2.0]
    assert "seed: 7" in (run / "config.yaml").read_text()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["train_loss"] == pytest.approx(float(lines[-1].group(3)), abs=1e-4)
    assert re.search(r"wall time\s+\d+\.\d s", res.stdout)
    assert re.search(r"train loss\s+-?\d+\.\d{4}", res.stdout)
    assert (run / "plots" / "loss.png").is_file()
    # --resume of a finished run: nothing left to do, said plainly
    res = CliRunner().invoke(cli, ["train", "--resume", str(run)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "nothing left to do" in res.stdout and "train.epochs=7" in res.stdout


def test_verbose_is_accepted_after_the_subcommand():
    res = CliRunner().invoke(cli, ["report", "-v", "--help"])
    assert res.exit_code == 0, res.output
    assert logging.getLogger().level == logging.INFO
    res = CliRunner().invoke(cli, ["report", "-vv", "--help"])
    assert res.exit_code == 0 and logging.getLogger().level == logging.DEBUG
    res = CliRunner().invoke(cli, ["report", "--help"])
    assert logging.getLogger().level == logging.WARNING
    assert logging.getLogger("avmodels.epochs").level == logging.INFO


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume(store, tmp_path):
    path, _ = store
    run = tmp_path / "run"
    main = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from avmodels.cli import main; main()")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", main, "train", "sspl", "--data", str(path), "--out", str(run),
         *_sets("train.epochs=500", "eval.every=0")],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    seen = []
    try:
        deadline = time.monotonic() + 120
        for line in proc.stderr:
            seen.append(line)
            if "epoch 1/500" in line or time.monotonic() > deadline:
                break
        assert any("epoch 1/500" in s for s in seen), "".join(seen)[-2000:]
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=120)
    rest = proc.stderr.read()
    assert code == 130, rest[-2000:]
    assert f"avmodels train --resume {run}" in rest
    assert (run / "checkpoints" / "last.pt").is_file()
