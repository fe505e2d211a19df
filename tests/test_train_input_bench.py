"""The training-input benchmark and the GPU suite run (tiny, on the CPU) so they cannot rot.

Both share one work folder: SynthAV clips made, extracted with each method's
profile and packed by the benchmark's own content builder. No timing is
asserted: only that every contender ran and the tables were written.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("bench-input")


@pytest.mark.slow
def test_bench_train_input_tiny(work, tmp_path):
    import bench_train_input

    out = tmp_path / "train_input.md"
    # the originals' checkouts are absent here: those baselines are skipped with the reason
    bench_train_input.main(["--tiny", "--workdir", str(work), "--out", str(out),
                            "--orig-sspl", str(tmp_path / "no-such-checkout")])  # fmt: skip
    text = out.read_text()
    for method in ("## sspl", "## ssl-tie", "## htf"):
        assert method in text
    for path in ("ours-batch-torch", "ours-batch-ring", "ours-sample-torch",
                 "ours-gpu-input-torch"):  # fmt: skip
        assert text.count(f"| {path} |") == 3, path
    # HTF and SSL-TIE also on shards packed without gzip
    assert text.count("| ours-batch-ring-raw |") == 2
    assert text.count("1-min load average") == 3
    assert f"skipped: {tmp_path / 'no-such-checkout'} is absent" in text
    assert "skipped: no checkout given" in text
    rows = [r for r in text.splitlines() if r.startswith("| ours-")]
    assert all(float(r.split("|")[2]) > 0 for r in rows)  # every contender moved samples


@pytest.mark.slow
def test_gpu_suite_runs_on_cpu_tiny(work, tmp_path):
    out = tmp_path / "gpu.md"
    env = {**os.environ, "PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    res = subprocess.run(
        [str(ROOT / "benchmarks" / "gpu_suite.sh"), "--device", "cpu", "--tiny",
         "--methods", "htf", "--workdir", str(work), "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    text = out.read_text()
    assert "TINY run" in text
    # one method keeps it within CI's time (the loop is the same for every method)
    rows = [r for r in text.splitlines() if r.startswith("| htf")]
    assert len(rows) == 1
    for r in rows:
        cells = [c.strip() for c in r.strip("|").split("|")]
        assert all(float(c) > 0 for c in cells[2:7]), r  # step-only x3, e2e cpu and gpu
