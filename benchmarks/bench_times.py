"""Benchmark: ``avprep extract --times``, one decode per video vs one extraction per clip.

Data: one generated video (default 60 s, 640x360, 25 fps, H.264 x264 preset
medium with its default keyframe spacing of 250 frames, + AAC 44.1 kHz) and
``--clips`` annotated frames (default 20) spread evenly over it, given by
1-based frame index as the Chaotic World annotations give them.

Measured on the same data in the same run, interleaved over ``--rounds``,
as CPU seconds of this process and its children (``getrusage``) and wall time,
all with the ``chaotic`` profile (window outside the track: pad, so every clip
is extracted):

- ours: ``run_extract(..., times=all 20 rows)``: one ffmpeg process decodes
  the video once, up to the last annotated frame;
- per-clip: 20 runs of ``run_extract`` with a one-row times file each (what
  one extraction per annotated frame costs: a frame index cannot be sought,
  so each run decodes from the start to its frame);
- fork: the Chaotic World fork's first step for one video, every frame to a
  320x180 PNG (``ffmpeg -i V -vf scale=320:180 -start_number 1 V_%06d.png``),
  before any clip is cut (shown for scale; its later steps are not counted).

    .venv/bin/python benchmarks/bench_times.py [--seconds 60] [--clips 20] [--rounds 2]

Writes ``benchmarks/results/times.md``.
"""

from __future__ import annotations

import argparse
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avprep.ffmpeg import ffmpeg_binary, ffmpeg_version  # noqa: E402
from avprep.profiles import get_profile  # noqa: E402
from avprep.stages.extract import run_extract  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "times.md"


def cpu() -> float:
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def make_video(path: Path, seconds: float, size: str, fps: int) -> None:
    subprocess.run(
        [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}:duration={seconds}",
         "-f", "lavfi", "-i", f"anoisesrc=color=pink:sample_rate=44100:duration={seconds}",
         "-c:v", "libx264", "-preset", "medium", "-crf", "23", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "96k", "-shortest", str(path)],
        check=True,
    )  # fmt: skip


def write_times(path: Path, rows: list[tuple[str, int]]) -> Path:
    path.write_text("clip_id,video,frame\n" + "".join(f"{c},LONG,{n}\n" for c, n in rows))
    return path


def measure(fn) -> tuple[float, float]:
    c0, t0 = cpu(), time.perf_counter()
    fn()
    return cpu() - c0, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-times."))
    try:
        videos = work / "videos"
        videos.mkdir()
        make_video(videos / "LONG.mp4", args.seconds, args.size, args.fps)
        n_frames = int(args.seconds * args.fps)
        # evenly spread, away from both ends (a 3 s window fits around each)
        lo, hi = 2 * args.fps, n_frames - 2 * args.fps
        picks = [lo + (hi - lo) * i // max(1, args.clips - 1) for i in range(args.clips)]
        rows = [(f"LONG_{n:06d}", n) for n in picks]
        all_rows = write_times(work / "all.csv", rows)
        singles = [write_times(work / f"one{i}.csv", [r]) for i, r in enumerate(rows)]
        prof = get_profile("chaotic", window_outside="pad")

        def ours(k: int) -> None:
            s = run_extract(videos, work / f"ours{k}", prof, times=all_rows, progress=False)
            assert s.ok == len(rows), s.text()

        def per_clip(k: int) -> None:
            for i, one in enumerate(singles):
                s = run_extract(videos, work / f"per{k}_{i}", prof, times=one, progress=False)
                assert s.ok == 1, s.text()

        def fork(k: int) -> None:
            d = work / f"fork{k}"
            d.mkdir()
            subprocess.run(
                [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-i",
                 str(videos / "LONG.mp4"), "-vf", "scale=320:180", "-start_number", "1",
                 str(d / "LONG_%06d.png")],
                check=True,
            )  # fmt: skip

        res: dict[str, list[tuple[float, float]]] = {"ours": [], "per-clip": [], "fork": []}
        order = [("ours", ours), ("per-clip", per_clip), ("fork", fork)]
        for k in range(args.rounds):
            for name, fn in order[k % 3 :] + order[: k % 3]:
                res[name].append(measure(lambda fn=fn, k=k: fn(k)))
                print(
                    f"round {k} {name}: cpu {res[name][-1][0]:.2f} s wall {res[name][-1][1]:.2f} s"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {n: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v))
           for n, v in res.items()}  # fmt: skip
    lines = [
        "# `extract --times` benchmark (`benchmarks/bench_times.py`)",
        "",
        f"{args.seconds:g} s video, {args.size}, {args.fps} fps, x264 medium (keyint 250) + AAC; "
        f"{args.clips} annotated frames by index, `chaotic` profile; median of {args.rounds} "
        f"rounds; {platform.machine()}, Python {platform.python_version()}, "
        f"ffmpeg {ffmpeg_version()}.",
        "",
        "| way | CPU s | wall s | vs ours (CPU) | vs ours (wall) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, label in (("ours", "ours: one decode for all clips"),
                        ("per-clip", f"{args.clips} single-clip extractions"),
                        ("fork", "fork: every frame to PNG (first step only)")):  # fmt: skip
        c, w = med[name]
        lines.append(
            f"| {label} | {c:.2f} | {w:.2f} | {c / med['ours'][0]:.1f}x | {w / med['ours'][1]:.1f}x |"
        )
    lines.append("")
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
