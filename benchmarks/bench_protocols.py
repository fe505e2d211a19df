"""Benchmark: the aggregate step of the extended sets and of AVSBench's F-score.

- Extended VGG-SS size (10,316 samples: 5,158 sounding + 5,158 silent): AP and
  max-F1 from per-sample IoU and confidence. Ours (``avmodels.metrics.extended``:
  one sort, cumulative counts per threshold) against the originals' structure
  (one Python pass over every sample for every threshold,
  ``tests/protocols_reference.py``), both for the ``slavc`` convention (about
  50 AP thresholds) and for our ``default`` (every distinct confidence: the
  loop would take n^2 steps, so it is timed on ``--loop-clips`` samples only).
- AVSBench F curve (255 thresholds) of 3,700 S4-sized frames (224 x 224): ours
  (one sort per frame, cumulative sums) against one thresholded map per
  threshold (the original's loop, in numpy).

Results are checked equal in the same run. Wall seconds, best of ``--repeat``.

    .venv/bin/python benchmarks/bench_protocols.py [--frames 3700] [--repeat 3]

Writes ``benchmarks/results/protocols.md``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from avmodels.metrics import avsbench as avs  # noqa: E402
from avmodels.metrics import extended as ex  # noqa: E402
from tests import protocols_reference as ref  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "protocols.md"


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=10316)
    ap.add_argument("--loop-clips", type=int, default=1500)
    ap.add_argument("--frames", type=int, default=3700)
    ap.add_argument("--baseline-frames", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.samples
    snd = np.arange(n) < n // 2
    ious = np.where(snd, rng.random(n), np.nan)
    conf = (rng.random(n) + 0.5 * (np.nan_to_num(ious) >= 0.5)).astype(np.float32)
    c = [float(v) for v in conf]
    lines = [
        "# Protocol aggregates: ours vs the originals' loop structure",
        "",
        f"Machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}; "
        "wall seconds, best of the repeats (baselines: one run).",
        "",
        "| step | n | ours (s) | baseline (s) | ratio | equal |",
        "|---|---|---|---|---|---|",
    ]
    t_ours, r = best(lambda: ex.score_extended(list(map(str, range(n))), snd, ious, conf, "slavc"),
                     args.repeat)  # fmt: skip
    t0 = time.perf_counter()
    ap_ref = ref.ext_ap_original(list(snd), list(ious), c)
    f1_ref = ref.ext_max_f1(list(snd), list(ious), c, original=True)
    t_ref = time.perf_counter() - t0
    eq = abs(r.ap - ap_ref) < 1e-12 and abs(r.max_f1 - f1_ref) < 1e-12
    lines.append(f"| extended AP + max-F1, `slavc` | {n} | {t_ours:.4f} | {t_ref:.2f} | "
                 f"{t_ref / t_ours:.0f}x | {eq} |")  # fmt: skip
    m = args.loop_clips
    t_ours, r = best(lambda: ex.score_extended(list(map(str, range(m))), snd[:m], ious[:m],
                                               conf[:m], "default"), args.repeat)  # fmt: skip
    t0 = time.perf_counter()
    ap_ref = ref.ext_ap_all_points(list(snd[:m]), list(ious[:m]), c[:m])
    t_ref = time.perf_counter() - t0
    eq = abs(r.ap - ap_ref) < 1e-12
    lines.append(f"| extended AP (every confidence), `default` | {m} | {t_ours:.4f} | "
                 f"{t_ref:.2f} | {t_ref / t_ours:.0f}x | {eq} |")  # fmt: skip
    t_full, _ = best(lambda: ex.score_extended(list(map(str, range(n))), snd, ious, conf,
                                               "default"), args.repeat)  # fmt: skip
    lines.append(f"| extended AP + max-F1, `default` | {n} | {t_full:.4f} | — | — | — |")
    # AVSBench F curves
    k = args.frames
    probs = rng.random((k, 224, 224), dtype=np.float32)
    gts = np.zeros((k, 224, 224), np.float32)
    gts[:, 60:160, 50:150] = 1
    t_ours, curves = best(lambda: [avs.f_curve(p, g) for p, g in zip(probs, gts)], 1)
    b = args.baseline_frames
    t0 = time.perf_counter()
    base = [ref.avs_fcurve(p, g) for p, g in zip(probs[:b], gts[:b])]
    t_ref = (time.perf_counter() - t0) * k / b
    eq = all(np.allclose(x, y, atol=1e-5) for x, y in zip(curves[:b], base))
    lines.append(f"| AVSBench F curves (255 thr.) | {k} | {t_ours:.2f} | {t_ref:.2f} (from {b}) | "
                 f"{t_ref / t_ours:.1f}x | {eq} |")  # fmt: skip
    text = "\n".join(lines) + "\n"
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
