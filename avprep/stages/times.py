"""Clips at annotated times: several clips of one video in ONE decode pass.

``avprep extract --times FILE`` reads a CSV (header required)::

    clip_id,video,frame,time
    ADCCAWWD_004157,ADCCAWWD,4157,166.24

``video`` is the source video's id (its file stem in ``--in``); each row has
``frame`` (1-based index of the decoded frame in presentation order: what
``ffmpeg -i V -start_number 1 V_%06d.png`` numbers for a constant-frame-rate
video), ``time`` (seconds on the source timeline) or both. With both, the frame
is taken by index and the audio window is centred on ``time`` (the Chaotic
World annotations give ``start_fid`` and ``start_time``); with ``frame`` only,
the window is centred on that frame's decoded timestamp; with ``time`` only,
the frame is the one *shown* at that time (the last whose timestamp is <= it).

Per video, one ffmpeg process decodes the file once: a ``select`` filter keeps
only the requested frames (by decoded index ``n``, or a few frames around each
requested time), ``-stats_enc_pre`` reports each kept frame's decoded index and
timestamp (variable frame rate safe: nothing is computed from a nominal fps),
and the whole audio track is decoded to mono s16 at the profile's rate in the
same pass. Each clip's window is then cut from the decoded samples: sample 0
is the first decoded sample (the decoder has already dropped the codec's
priming), as the fork's ``torchaudio.load`` sees it.

The window is placed by the project's one window rule
(:mod:`avprep.stages.audio_window`, ``at-time``: first sample ``round(t *
rate) - n // 2`` of the decoded signal; the fork's ``int((t - 1.5) * sr)`` at
the native rate differs from it by at most one sample when ``t * rate`` is not
whole). A window that leaves the track follows ``window_outside``: ``shift``
moves it inside, ``skip`` fails the clip with the reason (the Chaotic World
fork's rule: ``start_time >= 1.5`` and the window's end inside the track),
``pad`` fills the outside with silence. A time past the video's end, or a frame index
past its last frame, fails the clip with a reason; nothing is clamped.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from avprep import ffmpeg
from avprep.errors import AvprepError, HostileIdError, InputError, MediaError
from avprep.ids import check_id
from avprep.manifest import FAILED, OK, ClipRecord, Manifest
from avprep.profiles import Profile, source_scale_value
from avprep.spectrogram import compute as compute_spectrogram
from avprep.stage import Stage, Work
from avprep.stages import audio as audio_stage
from avprep.stages import flow as flow_stage
from avprep.stages import frames as frame_stage
from avprep.stages.audio_window import SignalFacts, plan_window
from avprep.stages.mediainfo import clip_info

log = logging.getLogger(__name__)

# seconds of frames kept on each side of a requested time (at least 2.5 frame periods)
_AROUND = 0.1
# decoding a whole long video can take a while
_DECODE_TIMEOUT = 3 * 3600


@dataclasses.dataclass(frozen=True)
class TimedClip:
    """One row of a times file."""

    clip_id: str
    video: str
    time: float | None = None
    frame: int | None = None  # 1-based decoded frame index
    line: int = 0


@dataclasses.dataclass(frozen=True)
class VideoJob:
    """Every clip of one source video (one decode pass)."""

    video: str
    path: str
    clips: tuple[TimedClip, ...]


def video_key(job: VideoJob) -> str:
    """What the runner names a job by: ``video:<name>``, never a clip id (``:`` is
    not allowed in one), so no manifest record answers for a video; its clips
    were chosen by their own records (:func:`select_videos`)."""
    return f"video:{job.video}"


# -- the times file -----------------------------------------------------------
def read_times(path: str | os.PathLike) -> list[TimedClip]:
    """Parse a times CSV; bad rows raise :class:`InputError` naming file:line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--times {p}: cannot read ({exc})") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None:
        raise InputError(f"--times {p}: empty file")
    cols = [h.strip().lower() for h in header]
    missing = [c for c in ("clip_id", "video") if c not in cols]
    if missing or not ({"time", "frame"} & set(cols)):
        raise InputError(
            f"--times {p}:1: the header must name clip_id, video and time and/or frame "
            f"(got {', '.join(cols)})"
        )
    at = {c: cols.index(c) for c in ("clip_id", "video", "time", "frame") if c in cols}
    out: list[TimedClip] = []
    seen: dict[str, int] = {}
    dupes: list[str] = []
    for line, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        where = f"{p}:{line}"
        if len(row) < len(cols):
            raise InputError(f"{where}: expected {len(cols)} fields, got {len(row)}")
        try:
            cid = check_id(row[at["clip_id"]].strip())
            video = check_id(row[at["video"]].strip())
        except HostileIdError as exc:
            raise HostileIdError(f"{where}: {exc}") from None
        t = _time(row[at["time"]], where) if "time" in at else None
        n = _frame(row[at["frame"]], where) if "frame" in at else None
        if t is None and n is None:
            raise InputError(f"{where}: give a time or a frame")
        if cid in seen:
            dupes.append(f"{cid} (lines {seen[cid]} and {line})")
        seen.setdefault(cid, line)
        out.append(TimedClip(cid, video, t, n, line))
    if dupes:
        raise InputError(
            f"--times {p}: {len(dupes)} duplicate clip id(s), e.g. {'; '.join(dupes[:3])}"
        )
    if not out:
        raise InputError(f"--times {p}: no rows")
    return out


def _time(cell: str, where: str) -> float | None:
    s = cell.strip()
    if not s:
        return None
    try:
        t = float(s)
    except ValueError:
        raise InputError(f"{where}: time {s[:40]!r} is not a number of seconds") from None
    if not math.isfinite(t) or t < 0:
        raise InputError(f"{where}: time must be a finite number of seconds >= 0, got {s[:40]!r}")
    return t


def _frame(cell: str, where: str) -> int | None:
    s = cell.strip()
    if not s:
        return None
    if not s.isdigit() or int(s) < 1:
        raise InputError(f"{where}: frame must be an integer >= 1 (1-based), got {s[:40]!r}")
    return int(s)


def plan_jobs(
    clips: list[TimedClip], videos: dict[str, str]
) -> tuple[list[VideoJob], list[ClipRecord]]:
    """Group clips by video (times file order kept); clips of absent videos fail."""
    groups: dict[str, list[TimedClip]] = {}
    failed: list[ClipRecord] = []
    for c in clips:
        if c.video not in videos:
            failed.append(
                ClipRecord(c.clip_id, FAILED, error=f"{c.clip_id}: video {c.video} is not in --in")
            )
            continue
        groups.setdefault(c.video, []).append(c)
    jobs = [VideoJob(v, videos[v], tuple(cs)) for v, cs in groups.items()]
    return jobs, failed


# -- one video ----------------------------------------------------------------
@dataclasses.dataclass
class Decoded:
    """What one pass gives: kept frames by decoded index, their times, the whole track."""

    frames: dict[int, np.ndarray]  # 0-based decoded index -> RGB
    times: dict[int, float]  # 0-based decoded index -> seconds
    audio: np.ndarray  # mono int16 at ``rate``
    rate: int
    scale: str | None = None


def select_expression(clips: tuple[TimedClip, ...], need_next: bool, around: float) -> str:
    """ffmpeg ``select`` terms keeping the frames the clips need (``n`` is 0-based)."""
    terms: set[str] = set()
    for c in clips:
        if c.frame is not None:
            terms.add(f"eq(n,{c.frame - 1})")
            if need_next:
                terms.add(f"eq(n,{c.frame})")
        else:
            lo = max(0.0, c.time - around)
            terms.add(f"between(t,{lo:.6f},{c.time + around:.6f})")
    return "+".join(sorted(terms))


def video_stop(clips: tuple[TimedClip, ...], need_next: bool, around: float) -> list[str]:
    """Output options that end the video decode after the last frame the clips need.

    Frame requests only: ``-frames:v`` (the number of distinct selected
    frames); time requests only: ``-to`` just past the last window (``-copyts``
    keeps source times). Mixed requests decode to the end.
    """
    if all(c.frame is not None for c in clips):
        wanted = {c.frame - 1 for c in clips} | ({c.frame for c in clips} if need_next else set())
        return ["-frames:v", str(len(wanted))]
    if all(c.frame is None for c in clips):
        return ["-to", f"{max(c.time for c in clips) + around + 0.05:.6f}"]
    return []


def decode_video(
    path: str,
    expr: str,
    rate: int,
    scale: str | None,
    what: str,
    *,
    audio: bool = True,
    stop: list[str] | None = None,
) -> Decoded:
    """One ffmpeg pass: the selected frames (with decoded index and time) and the audio.

    The whole audio track is decoded (windows are cut from it); the video
    decode ends early with ``stop`` (:func:`video_stop`).
    """
    fd, raw_path = tempfile.mkstemp(prefix="avprep-times.", suffix=".s16")
    os.close(fd)
    fd, stats_path = tempfile.mkstemp(prefix="avprep-times.", suffix=".txt")
    os.close(fd)
    vf = f"select='{expr}'"
    if scale:
        w, h = source_scale_value(scale)
        vf += f",scale={w}:{h}"
    args: list[str] = ["-copyts", "-threads", "1", "-i", path, "-map", "0:v:0", "-vf", vf]
    args += [
        "-fps_mode", "passthrough", "-enc_time_base:v", "demux",
        "-stats_enc_pre", stats_path, "-stats_enc_pre_fmt", "{ni} {pts} {tb}",
        *(stop or []), "-c:v", "ppm", "-f", "image2pipe", "pipe:1",
    ]  # fmt: skip
    if audio:
        args += ["-map", "0:a:0", "-ac", "1", "-ar", str(rate), "-c:a", "pcm_s16le"]
        args += ["-f", "s16le", "-y", raw_path]
    try:
        proc = ffmpeg.run(args, what=what, timeout=_DECODE_TIMEOUT)
        images = frame_stage.parse_ppm_stream(proc.stdout)
        stats = _read_stats(stats_path)
        raw = np.fromfile(raw_path, dtype="<i2") if audio else np.zeros(0, np.int16)
    finally:
        for p in (raw_path, stats_path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)
    if len(stats) != len(images):
        raise MediaError(
            f"{what}: ffmpeg reported {len(stats)} frame times for {len(images)} frames"
        )
    frames = {n: img for (n, _), img in zip(stats, images)}
    times = {n: t for n, t in stats}
    return Decoded(frames, times, raw, rate, scale)


def _read_stats(path: str) -> list[tuple[int, float]]:
    """``{ni} {pts} {tb}`` lines: (decoded frame index, seconds)."""
    out: list[tuple[int, float]] = []
    for parts in ffmpeg.stats_rows(path):
        try:
            out.append((int(parts[0]), ffmpeg.pts_seconds(parts[1], parts[2])))
        except (ValueError, IndexError, ZeroDivisionError):
            raise MediaError(
                f"unexpected frame statistics from ffmpeg: {' '.join(parts)!r}"
            ) from None
    return out


def audio_window(
    n_track: int, rate: int, centre: float, seconds: float, policy: str
) -> tuple[int, int, str | None]:
    """``(start, n, reason)``: the window of ``seconds`` centred at ``centre`` in samples.

    ``shift`` and ``skip`` use the project's one window rule
    (:func:`avprep.stages.audio_window.plan_window`, ``at-time``: start =
    ``round(centre * rate) - n // 2`` in the decoded signal); ``skip`` gives a
    ``reason`` when the window leaves the signal (the clip fails). ``pad``
    keeps that start even outside the signal (:func:`cut_window` fills silence).
    A signal shorter than the window with ``shift`` is taken whole
    (``fit_length`` then tiles or pads it as the profile says).
    """
    n = int(round(seconds * rate))
    if policy == "pad":
        return int(round(centre * rate)) - n // 2, n, None
    signal = SignalFacts(samples=int(n_track), rate=int(rate), source="decoded")
    try:
        w = plan_window(
            "at-time", seconds, signal, centre, outside="fail" if policy == "skip" else "shift"
        )
    except MediaError as exc:
        return 0, n, f"{exc}; skipped (--window-outside skip)"
    if w.whole:
        return 0, int(n_track), None
    return w.start, w.length, None


def cut_window(track: np.ndarray, start: int, n: int) -> np.ndarray:
    """``track[start:start+n]`` with silence where the window leaves the track."""
    lo, hi = max(0, start), min(track.shape[0], start + n)
    body = track[lo:hi] if hi > lo else np.zeros(0, track.dtype)
    if lo == start and hi == start + n:
        return body
    return np.concatenate(
        [np.zeros(lo - start, track.dtype), body, np.zeros(start + n - max(hi, lo), track.dtype)]
    )


def extract_video_step(job: VideoJob, cfg: Any) -> list[ClipRecord]:
    """The ``--times`` stage's step: every clip of one video (``cfg``: the extract
    stage's config, ``out`` and ``profile``) -> their records; a video that
    cannot be decoded fails each of its clips with the reason."""
    try:
        return extract_video(job, cfg.out, cfg.profile)
    except AvprepError as exc:
        return [_failed(c, f"{c.clip_id}: {exc}") for c in job.clips]
    except Exception as exc:  # noqa: BLE001 - one bad video must not stop the run
        return [_failed(c, f"{c.clip_id}: {type(exc).__name__}: {exc}") for c in job.clips]


def _failed(c: TimedClip, error: str) -> ClipRecord:
    return ClipRecord(clip_id=c.clip_id, status=FAILED, error=error, meta={"video": c.video})


def extract_video(job: VideoJob, out_dir: str | os.PathLike, profile: Profile) -> list[ClipRecord]:
    """Extract every clip of ``job`` from one decode of its video."""
    t0 = time.perf_counter()
    info = clip_info(job.path)
    media = info.media
    if not media.duration or media.duration <= 0:
        raise MediaError(f"{job.video}: zero duration (nothing to extract)")
    if not media.has_video:
        raise MediaError(f"{job.video}: no video stream")
    if not media.has_audio:
        raise MediaError(f"{job.video}: no audio stream")
    rate = int(profile.sample_rate or media.sample_rate or 0)
    if not rate:
        raise MediaError(f"{job.video}: the audio sample rate is unknown; pass --sample-rate")
    video_end = info.video_duration or media.duration
    need_next = profile.flow is not None
    around = max(_AROUND, 2.5 / media.fps) if media.fps else _AROUND
    expr = select_expression(job.clips, need_next, around)
    stop = video_stop(job.clips, need_next, around)
    dec = decode_video(job.path, expr, rate, profile.source_scale, job.video, stop=stop)
    if dec.audio.size == 0:
        raise MediaError(f"{job.video}: the audio stream decoded to no samples")
    decode_s = time.perf_counter() - t0
    records = []
    for c in job.clips:
        t1 = time.perf_counter()
        try:
            rec = _one_clip(c, dec, job, Path(out_dir), profile, video_end, need_next, around)
        except AvprepError as exc:
            rec = _failed(c, f"{c.clip_id}: {exc}")
        if rec.ok:
            rec.meta["timings"] = {
                "decode_video": round(decode_s, 5),
                "clips_of_video": len(job.clips),
                "clip": round(time.perf_counter() - t1, 5),
            }
        records.append(rec)
    return records


def _key_index(c: TimedClip, dec: Decoded, job: VideoJob, video_end: float, around: float) -> int:
    if c.frame is not None:
        if c.frame - 1 not in dec.frames:
            # the select filter passes every existing requested index: this one is not there
            raise MediaError(f"frame {c.frame} is beyond the last frame of video {job.video}")
        return c.frame - 1
    t = float(c.time)
    if t >= video_end:
        raise MediaError(f"time {t:.3f} s is past the end of video {job.video} ({video_end:.3f} s)")
    found = frame_stage.shown_at([dec.times[k] for k in sorted(dec.times)], t)
    keys = sorted(dec.times)
    if found is not None:
        k = keys[found]
        # a kept frame at or before t: the one shown at t only if no frame was skipped between
        if dec.times[k] >= t - around + 1e-6 or k + 1 in dec.times:
            return k
    # variable frame rate with a long gap before t: decode a wider span of this clip alone
    wide = decode_video(
        job.path,
        f"between(t,{max(0.0, t - 10.0):.6f},{t + around:.6f})",
        dec.rate,
        dec.scale,
        job.video,
        audio=False,
        stop=["-to", f"{t + around + 0.05:.6f}"],
    )
    keys = sorted(wide.times)
    found = frame_stage.shown_at([wide.times[k] for k in keys], t)
    if found is None:
        raise MediaError(f"no video frame is shown at {t:.3f} s in video {job.video}")
    k = keys[found]
    dec.times.update(wide.times)
    for j, img in wide.frames.items():
        dec.frames.setdefault(j, img)
    return k


def _one_clip(
    c: TimedClip,
    dec: Decoded,
    job: VideoJob,
    out: Path,
    profile: Profile,
    video_end: float,
    need_next: bool,
    around: float,
) -> ClipRecord:
    cid = c.clip_id
    k = _key_index(c, dec, job, video_end, around)
    key, key_time = dec.frames[k], dec.times[k]
    nxt = dec.frames.get(k + 1)
    if need_next and nxt is None:
        raise MediaError(f"no frame after frame {k + 1}, so no optical flow")
    # the profile's ``centre`` / ``at-frame`` both mean the annotated moment here; ``start``
    # starts the window there
    centre = c.time if c.time is not None else key_time
    if profile.audio_window == "start":
        centre += profile.audio_seconds / 2.0
    start, n, reason = audio_window(
        dec.audio.shape[0], dec.rate, centre, profile.audio_seconds, profile.window_outside
    )
    if reason:
        raise MediaError(reason)
    raw = cut_window(dec.audio, start, n)
    n_out = int(round(profile.audio_seconds * dec.rate))
    samples = audio_stage.fit_length(raw, n_out, profile.short_audio)

    outputs: dict[str, str] = {}
    key_small = frame_stage.resize(key, profile)
    frame_stage.write_jpeg(out / "frames" / f"{cid}.jpg", key_small, profile.jpeg_quality)
    outputs["frame"] = f"frames/{cid}.jpg"
    if profile.flow and nxt is not None:
        flow = flow_stage.compute_flow(profile.flow, key_small, frame_stage.resize(nxt, profile))
        flow_stage.write_npy(out / "flow" / f"{cid}.npy", flow_stage.to_stored(flow))
        outputs["flow"] = f"flow/{cid}.npy"
        if profile.flow_legacy_htf:
            flow_stage.write_legacy_htf(out / "flow", cid, flow)
            outputs["flow_legacy_x"] = f"flow/flow_x/{cid}.jpg"
            outputs["flow_legacy_y"] = f"flow/flow_y/{cid}.jpg"
    audio_stage.write_wav(out / "audio" / f"{cid}.wav", samples, dec.rate)
    outputs["audio"] = f"audio/{cid}.wav"
    meta: dict[str, Any] = {}
    if profile.spectrogram:
        spec = compute_spectrogram(profile.spectrogram, samples, dec.rate)
        flow_stage.write_npy(out / "spectrograms" / profile.spectrogram / f"{cid}.npy", spec)
        outputs["spectrogram"] = f"spectrograms/{profile.spectrogram}/{cid}.npy"
        meta["spectrogram_shape"] = list(spec.shape)
    meta.update(
        {
            "video": c.video,
            "frame_index": k + 1,
            "frame_time": round(key_time, 6),
            "next_frame_time": round(dec.times[k + 1], 6) if k + 1 in dec.times else None,
            "requested_time": c.time,
            "requested_frame": c.frame,
            "audio_centre": round(centre, 6),
            "audio_start": round(start / dec.rate, 6),
            "audio_seconds": profile.audio_seconds,
            "window_outside": profile.window_outside,
            "audio_padded": bool(start < 0 or start + n > dec.audio.shape[0]),
            "audio_short": bool(raw.size < n_out),
            "sample_rate": dec.rate,
            "width": int(key_small.shape[1]),
            "height": int(key_small.shape[0]),
            "src_width": int(key.shape[1]),
            "src_height": int(key.shape[0]),
            "source": os.fspath(job.path),
        }
    )
    return ClipRecord(clip_id=cid, status=OK, outputs=outputs, meta=meta)


# -- a whole run --------------------------------------------------------------
def times_stage(stage: Stage) -> Stage:
    """The extract stage (its folder, lock, header and parameters) with a source
    video as the unit of work: one decode per video, its clips' records appended
    as it finishes (:func:`avprep.stage.run_stage`)."""
    return dataclasses.replace(
        stage, step=extract_video_step, desc="extract", unit="video", key=video_key
    )


def select_videos(
    clips: list[TimedClip],
    videos: dict[str, str],
    manifest: Manifest,
    out_dir: str | os.PathLike,
    is_done: Callable[[ClipRecord | None, Path], bool],
) -> tuple[Work, int]:
    """``(the videos with clips to do, clips already done)``: a clip is skipped by
    its own record's done rule; clips of videos absent from ``--in`` are refused
    before any work (:attr:`Work.rejected`)."""
    out = Path(out_dir)
    todo = [c for c in clips if not is_done(manifest.get(c.clip_id), out)]
    work, failed = plan_jobs(todo, videos)
    log.info("extract --times: %d clip(s) of %d video(s) to do", len(todo), len(work))
    return Work(work, failed), len(clips) - len(todo)
