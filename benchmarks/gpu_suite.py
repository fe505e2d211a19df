"""GPU training suite: step-only vs end-to-end samples/s per method (driven by gpu_suite.sh).

For each method (SSPL, SSPL-PCM, SSL-TIE, Hear-The-Flow), at the image size
and the papers' batch sizes (the methods' defaults), random weights:

- **step-only**: one optimiser step (forward, backward, optimiser) on a batch
  already on the device (``bench_train.build``/``batches``), fp32, bf16 and
  bf16 + channels_last; median of timed steps after warm-up, peak memory;
- **end to end**: ``avmodels train`` itself (``avmodels.engine.train.train``)
  from native shards of SynthAV clips extracted with the method's profile,
  through the engine's loader with ``train.input=cpu`` (workers decode and
  augment) and ``train.input=gpu`` (workers hand JPEG bytes, decoding and the
  batched augmentation on the device), bf16 + channels_last, ``--workers``
  loader workers; samples/s = median of the run log's windows after the first
  (the windows that hold an epoch-end checkpoint are outliers the median
  drops); GPU utilisation sampled every 0.2 s (``torch.cuda.utilization``),
  peak memory.

The goal (DESIGN.md): end to end >= 90 % of step-only at 224 px with at most
8 workers. ``--device cpu --tiny`` runs everything small on the CPU (the test
that keeps the suite working). Writes ``--out`` (benchmarks/results/gpu.md).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
from bench_train import batches, build, step_time  # noqa: E402
from bench_train_input import build_content  # noqa: E402

DATA = {"sspl": "sspl", "sspl-pcm": "sspl", "ssl-tie": "ssl-tie", "htf": "htf"}


def paper_batch(method: str) -> int:
    from avmodels.engine.config import resolve_config

    return int(resolve_config(method)["train"]["batch_size"])


def step_only(method: str, size: int, batch: int, device: torch.device, steps: int,
              warmup: int) -> dict[str, dict[str, float]]:  # fmt: skip
    out = {}
    m = build(method, size, device)
    m.train()
    opt = m.build_optimizer()
    data = batches(m, batch, device)
    for name, amp, cl in (("fp32", "none", False), ("bf16", "bf16", False),
                          ("bf16+cl", "bf16", True)):  # fmt: skip
        if cl:  # the last variant: the same model, weights in channels_last
            m = m.to(memory_format=torch.channels_last)
        b = m.batch_to_device(data["cached" if "cached" in data else "live"], device, cl)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for _ in range(warmup):
            step_time(m, opt, b, "ours", amp, device)
        ts = [step_time(m, opt, b, "ours", amp, device) for _ in range(steps)]
        peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
        out[name] = {"samples_per_s": batch / statistics.median(ts), "peak_gib": peak}
    del m, opt, data
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


class _Utilisation:
    """GPU utilisation sampled in a thread (NaN where the driver library is absent)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.samples, self._stop = device, [], threading.Event()

    def __enter__(self):
        def poll():
            while not self._stop.wait(0.2):
                try:
                    self.samples.append(float(torch.cuda.utilization(self.device)))
                except Exception:  # noqa: BLE001 - pynvml missing: no figure, not a failure
                    return

        if self.device.type == "cuda":
            self._t = threading.Thread(target=poll, daemon=True)
            self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()

    def mean(self) -> float:
        return statistics.mean(self.samples) if self.samples else float("nan")


def end_to_end(method: str, shards: Path, size: int, batch: int, device: torch.device,
               workers: int, steps: int, inp: str, work: Path) -> dict[str, float]:  # fmt: skip
    from avmodels.engine.train import TrainRequest, train

    run = work / f"run-{method}-{inp}-{time.time_ns()}"
    key = "model.image_size" if method.startswith("sspl") else "data.image_size"
    sets = [
        "model.pretrained=false", f"{key}={size}", f"train.batch_size={batch}",
        f"train.num_workers={workers}", f"train.max_steps={steps}", "train.epochs=1000",
        "train.log_every=2", "eval.every=0", f"train.input={inp}", f"train.device={device}",
        "train.amp=bf16", f"train.channels_last={str(device.type == 'cuda').lower()}",
    ]  # fmt: skip
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with _Utilisation(device) as util:
        t0 = time.perf_counter()
        train(TrainRequest(method, [str(shards)], str(run), sets=sets, progress=False))
        wall = time.perf_counter() - t0
    with open(run / "train_log.csv") as fh:
        rates = [float(r["samples_per_s"]) for r in csv.DictReader(fh) if r.get("samples_per_s")]
    steady = rates[1:] or rates
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return {"samples_per_s": statistics.median(steady) if steady else float("nan"),
            "gpu_util": util.mean(), "peak_gib": peak, "wall_s": wall}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--methods", default="sspl,sspl-pcm,ssl-tie,htf")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--clips", type=int, default=512)
    ap.add_argument("--steps", type=int, default=10, help="timed steps (step-only)")
    ap.add_argument("--e2e-steps", type=int, default=24, help="steps per end-to-end run")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu.md")
    ap.add_argument("--tiny", action="store_true", help="small everything (for the test)")
    a = ap.parse_args(argv)
    device = torch.device(a.device)
    if a.tiny:
        a.image_size, a.clips, a.steps, a.e2e_steps, a.workers = 96, 8, 1, 4, 1  # PCM: 16*(4k+2)
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    work = a.workdir or Path(tempfile.mkdtemp(prefix="gpu-suite-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    content = build_content(work, a.clips, sorted({DATA[m] for m in methods}))
    print(f"content ready in {time.perf_counter() - t0:.0f} s", flush=True)
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    lines = [
        "# GPU training suite (benchmarks/gpu_suite.sh)",
        "",
        f"{dev_name}; torch {torch.__version__}; {os.cpu_count()} CPUs; {a.image_size} px; "
        f"{a.workers} loader workers; {a.clips} SynthAV clips; random weights"
        + ("; TINY run (not a measurement)" if a.tiny else "")
        + ".",
        "",
        "| method | batch | step fp32 | step bf16 | step bf16+cl | e2e input=cpu | e2e input=gpu "
        "| e2e/step (best input) | GPU util cpu/gpu % | peak GiB step/e2e |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method in methods:
        batch = 2 if a.tiny else paper_batch(method)
        so = step_only(method, a.image_size, batch, device, a.steps, 1 if a.tiny else 3)
        e2e = {
            inp: end_to_end(
                method,
                content[DATA[method]]["shards"],
                a.image_size,
                batch,
                device,
                a.workers,
                a.e2e_steps,
                inp,
                work,
            )  # fmt: skip
            for inp in ("cpu", "gpu")
        }
        ref = so["bf16+cl" if device.type == "cuda" else "bf16"]["samples_per_s"]
        best = max(e2e[i]["samples_per_s"] for i in e2e)
        lines.append(
            f"| {method} | {batch} | {so['fp32']['samples_per_s']:.4g} | "
            f"{so['bf16']['samples_per_s']:.4g} | {so['bf16+cl']['samples_per_s']:.4g} | "
            f"{e2e['cpu']['samples_per_s']:.4g} | {e2e['gpu']['samples_per_s']:.4g} | "
            f"{best / ref:.0%} | {e2e['cpu']['gpu_util']:.0f}/{e2e['gpu']['gpu_util']:.0f} | "
            f"{so['bf16+cl']['peak_gib']:.1f}/{max(e2e[i]['peak_gib'] for i in e2e):.1f} |"
        )
        print(lines[-1], flush=True)
    lines += ["", f"suite wall time {time.perf_counter() - t0:.0f} s", ""]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
