"""``avmodels benchmark``: every protocol with data, one table, baselines beside the model."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from avmodels.cli import cli
from avmodels.engine.benchmark import parse_data
from avprep.errors import ConfigError, InputError
from tests.protocol_data import write_protocol_data, write_tiny_model


def test_parse_data_checks_protocols_and_keys():
    assert parse_data(["vggss.store=a,b", "vggss.ids=x.txt"]) == {
        "vggss": {"store": "a,b", "ids": "x.txt"}
    }
    for bad, msg in (("vggss=x", "PROTOCOL.KEY"), ("nope.store=x", "unknown protocol"),
                     ("is3.annotations=x", "is3 takes")):  # fmt: skip
        with pytest.raises(ConfigError, match=msg):
            parse_data([bad])


@pytest.mark.slow
def test_benchmark_cli_writes_one_table(tmp_path):
    data = write_protocol_data(tmp_path)
    model = write_tiny_model(tmp_path / "model.pt")
    items = [f"{p}.{k}={v}" for p, spec in data.items() for k, v in spec.items()]
    args = ["benchmark", "--ckpt", str(model), "--suite", "all", "--preset", "default",
            "--preset", "lvs", "--out", str(tmp_path / "out")]  # fmt: skip
    for it in items:
        args += ["--data", it]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "out" / "benchmark.json").read_text())
    rows = out["rows"]
    got = {(r["protocol"], r["preset"], r["model"]) for r in rows}
    for proto, preset in [("vggss", "default"), ("vggss", "lvs"), ("extended-vggss", "slavc"),
                          ("extended-vggss", "acl-ssl"), ("is3", "sslalignment"),
                          ("s4", "official"), ("s4", "default")]:  # fmt: skip
        assert (proto, preset, "model") in got
        assert (proto, preset, "centre") in got
    assert ("vggss", "default", "ceiling") in got and ("vggss", "lvs", "whole-image") in got
    assert ("is3", "default", "ceiling") in got
    # the ceiling (GT as a map) beats the random map on cIoU
    by = {(r["protocol"], r["preset"], r["model"]): r for r in rows}
    assert by[("vggss", "default", "ceiling")]["metrics"]["ciou"] == 1.0
    ext = by[("extended-vggss", "default", "model")]
    assert ext["n"] == 10 and 0 <= ext["metrics"]["ap"] <= 1
    assert set(out["columns"]) >= {
        "ciou",
        "auc",
        "ap",
        "max_f1",
        "loc_acc",
        "iiou",
        "miou",
        "fscore",
    }
    assert "flickr" in out["skipped"] and "no data" in out["skipped"]["flickr"]
    with open(tmp_path / "out" / "benchmark.csv") as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)
    md = (tmp_path / "out" / "benchmark.md").read_text()
    assert md.startswith("| protocol | preset | model | n |") and "extended-vggss" in md
    assert "<table" in (tmp_path / "out" / "benchmark.html").read_text()


def test_benchmark_without_data_is_a_readable_error(tmp_path):
    model = write_tiny_model(tmp_path / "model.pt")
    res = CliRunner().invoke(cli, ["benchmark", "--ckpt", str(model), "--suite", "standard"])
    assert isinstance(res.exception, InputError)  # the CLI prints it as one line
    assert "nothing was evaluated" in str(res.exception)
