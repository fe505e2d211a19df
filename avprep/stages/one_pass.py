"""The one ffmpeg pass of a clip: what it decodes (:class:`PassPlan`) and how.

One ffmpeg process opens the file twice: input 0 seeks to the key frame (or
its keyframe) and writes it and the next frames as PPM to a pipe; input 1
seeks to the audio window (or decodes the whole track) and writes mono s16
at the profile's rate; ``-stats_enc_pre`` gives each frame's time from the
source timeline (``-copyts``). Side files live in a ``.tmp-<id>-*`` folder
inside OUT, removed after the clip (and swept by the next run if killed).
"""

from __future__ import annotations

import dataclasses
import os
import resource
import shutil
import tempfile
from pathlib import Path

import numpy as np

from avprep import ffmpeg
from avprep.atomic import TMP_PREFIX
from avprep.stages import frames as frame_stage


@dataclasses.dataclass(frozen=True)
class PassPlan:
    """What one ffmpeg pass decodes."""

    kind: str
    fps_n: float | None
    t_frame: float
    t_seek: float
    n_frames: int | None  # None: every frame up to t_frame (+ a margin)
    keyframe: bool
    a_start: float
    a_seconds: float | None
    rate: int
    video_duration: float = 0.0


def decode_pass(
    path: str, plan: PassPlan, cid: str, out: Path
) -> tuple[list[np.ndarray], list, np.ndarray]:
    """One ffmpeg process: (RGB frames, their times in s, mono int16 audio)."""
    # ffmpeg's side outputs go to a .tmp-<id>-* folder inside OUT, removed after the
    # clip; one a killed run leaves is swept by the next run (under OUT's lock). An
    # ffmpeg orphaned by a kill -9 that writes after that sweep writes into nothing.
    out.mkdir(parents=True, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{cid}-", dir=out)
    raw_path = os.path.join(work, "audio.s16")
    stats_path = os.path.join(work, "times.txt")
    try:
        proc = ffmpeg.run(pass_args(path, plan, raw_path, stats_path), what=cid)
        frames = frame_stage.parse_ppm_stream(proc.stdout)
        times = read_frame_times(stats_path)
        raw = np.fromfile(raw_path, dtype="<i2")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if len(times) < len(frames):
        times += [None] * (len(frames) - len(times))
    return frames, times, raw


def pass_args(path: str, plan: PassPlan, raw_path: str, stats_path: str) -> list[str]:
    # input 0: video from the seek point; input 1: the same file, audio from its window
    args: list[str] = ["-copyts", "-threads", "1"]
    if plan.kind != "fps":
        if plan.keyframe:
            # start at the keyframe before t_frame instead of decoding up to it
            args += ["-noaccurate_seek", "-ss", f"{plan.t_frame:.6f}"]
        elif plan.t_seek > 0:
            args += ["-ss", f"{plan.t_seek:.6f}"]
    args += ["-i", path, "-threads", "1"]
    if plan.a_start > 0:
        args += ["-ss", f"{plan.a_start:.6f}"]
    if plan.a_seconds is not None:
        args += ["-t", f"{plan.a_seconds:.6f}"]
    args += ["-i", path, "-map", "0:v:0"]
    if plan.kind == "fps":
        args += ["-vf", f"fps={plan.fps_n:g}"]
    elif plan.n_frames is None:
        # -copyts keeps source timestamps, so the end is an absolute time
        args += ["-to", f"{plan.t_frame + 0.5:.6f}"]
    else:
        args += ["-frames:v", str(plan.n_frames if not plan.keyframe else 2)]
    args += [
        "-fps_mode", "passthrough", "-enc_time_base:v", "demux",
        "-stats_enc_pre", stats_path, "-stats_enc_pre_fmt", "{pts} {tb}",
        "-c:v", "ppm", "-f", "image2pipe", "pipe:1",
        "-map", "1:a:0", "-ac", "1", "-ar", str(plan.rate),
        "-c:a", "pcm_s16le", "-f", "s16le", "-y", raw_path,
    ]  # fmt: skip
    return args


def cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def read_frame_times(path: str) -> list[float | None]:
    """Frame times (s) from ffmpeg's ``-stats_enc_pre`` lines ``<pts> <num>/<den>``."""
    times: list[float | None] = []
    for parts in ffmpeg.stats_rows(path):
        try:
            times.append(round(ffmpeg.pts_seconds(parts[0], parts[1]), 6))
        except (ValueError, IndexError, ZeroDivisionError):
            times.append(None)
    return times


def nearest(times: list[float | None], t: float) -> int:
    best, best_d = 0, float("inf")
    for i, x in enumerate(times):
        if x is not None and abs(x - t) < best_d:
            best, best_d = i, abs(x - t)
    return best
