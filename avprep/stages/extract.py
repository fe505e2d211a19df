"""Extraction of one clip, and of a folder of clips, in one ffmpeg pass each.

Per clip (:func:`extract_clip`):

1. container facts from the MP4 boxes (no process) or ``ffmpeg -i``;
2. ONE ffmpeg process with the file opened twice: input 0 seeks (``-ss``
   before ``-i``: jump to the keyframe before the key frame, decode forward,
   drop earlier frames) and writes the key frame and the next one as PPM to a
   pipe; input 1 seeks to the audio window (when an MP4 edit list states the
   decoded length; otherwise it decodes the whole track and the window is cut
   from the counted samples, see :mod:`avprep.stages.audio_window`) and writes
   it as mono s16 at the profile's rate. Decoding is single-threaded: parallelism is across clips.
   ``-copyts`` keeps the source timeline, so the frame times recorded come
   from the frames themselves (variable frame rate safe);
3. in Python: resize (OpenCV), JPEG, tile/pad the audio, WAV, spectrogram,
   optical flow.

Output layout (``OUT/``): ``frames/<id>.jpg``, ``audio/<id>.wav``,
``spectrograms/<name>/<id>.npy`` (float32), ``flow/<id>.npy`` (float16, (2,
H, W)), and ``manifest.jsonl`` (see :func:`run_extract` and
``docs/extraction.md``). Every file is written under a temporary name and
renamed, so a file present under its final name is complete.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import resource
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from avprep import ffmpeg
from avprep.atomic import TMP_PREFIX, cleanup_temps
from avprep.errors import ConfigError, HostileIdError, InputError, MediaError
from avprep.ids import check_id
from avprep.lock import folder_lock
from avprep.manifest import FAILED, MANIFEST_NAME, OK, ClipRecord, Manifest, is_done
from avprep.profiles import Profile, frame_at_value
from avprep.runner import map_clips
from avprep.spectrogram import compute as compute_spectrogram
from avprep.stages import audio as audio_stage
from avprep.stages import flow as flow_stage
from avprep.stages import frames as frame_stage
from avprep.stages.audio_window import AudioWindow, SignalFacts, plan_window
from avprep.stages.flow import write_npy
from avprep.stages.mediainfo import clip_info, mp4_cut_short

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".3gp", ".mpg", ".ts")
# extra audio asked of ffmpeg so resampler rounding never leaves the window short
_AUDIO_MARGIN = 0.05


@dataclasses.dataclass(frozen=True)
class ClipSource:
    """One input video."""

    clip_id: str
    path: str


# -- one clip -----------------------------------------------------------------
def extract_clip(
    source: ClipSource | str | os.PathLike,
    out_dir: str | os.PathLike,
    profile: Profile,
    *,
    clip_id: str | None = None,
) -> ClipRecord:
    """Extract one clip into ``out_dir`` as ``profile`` says; return its record.

    Raises :class:`MediaError` (no audio/video stream, zero duration,
    undecodable) — :func:`run_extract` records those as failed clips.
    """
    if not isinstance(source, ClipSource):
        p = Path(source)
        source = ClipSource(clip_id or p.stem, os.fspath(p))
    cid = check_id(source.clip_id)
    out = Path(out_dir)
    t_start = time.perf_counter()
    cpu_start = _cpu_seconds()
    info = clip_info(source.path)
    media = info.media
    cut = mp4_cut_short(source.path) if info.via == "mp4" else None
    if cut:
        raise MediaError(f"{cid}: {cut} (declared {media.duration or 0:.2f} s); re-download it")
    if not media.duration or media.duration <= 0:
        raise MediaError(f"{cid}: zero duration (nothing to extract)")
    if not media.has_video:
        raise MediaError(f"{cid}: no video stream")
    if not media.has_audio:
        raise MediaError(f"{cid}: no audio stream")

    kind, fps_n = frame_at_value(profile.frame_at)
    need_next = profile.flow is not None
    video_duration = info.video_duration or media.duration
    t_frame = frame_stage.frame_time(profile, video_duration, media.fps, need_next)
    rate = profile.sample_rate or media.sample_rate
    if not rate:
        raise MediaError(f"{cid}: the audio sample rate is unknown; pass --sample-rate")
    rate = int(rate)
    window = _known_window(profile, info, rate, t_frame)
    a_start = window.start_seconds if window is not None else 0.0
    whole = window is None or window.whole
    plan = _Plan(
        kind=kind,
        fps_n=fps_n,
        t_frame=t_frame,
        # start 1.5 frames early: the frame shown at t_frame may start before it
        t_seek=max(0.0, t_frame - 1.5 / (media.fps or 25.0)),
        n_frames=2 + int(need_next),
        keyframe=profile.seek == "keyframe",
        a_start=a_start,
        a_seconds=None if whole else profile.audio_seconds + _AUDIO_MARGIN,
        rate=int(rate),
    )
    frames, times, raw = _decode(source.path, plan, cid, out)
    key_index = 0
    if kind == "fps":
        key_index = _nearest(times, video_duration / 2.0)
    elif not plan.keyframe:
        found = frame_stage.shown_at(times, t_frame)
        if found is None and plan.t_seek > 0:
            # variable frame rate: the frame shown at t_frame starts earlier still
            wide = dataclasses.replace(plan, t_seek=max(0.0, t_frame - 2.0), n_frames=None)
            frames, times, raw = _decode(source.path, wide, cid, out)
            found = frame_stage.shown_at(times, t_frame)
        key_index = found or 0
    if window is None:
        # no edit list told the decoded length: the whole track was decoded, count it
        signal = SignalFacts(samples=int(raw.size), rate=rate, source="decoded")
        window = plan_window(profile.audio_window, profile.audio_seconds, signal, t_frame)
        end = None if window.take is None else window.start + window.take
        raw = raw[window.start : end]
        a_start = window.start_seconds
    t_decoded = time.perf_counter()
    # check everything before writing anything, so a failed clip leaves no files
    if not frames:
        raise MediaError(f"{cid}: no video frame could be decoded at {t_frame:.3f} s")
    if raw.size == 0:
        raise MediaError(f"{cid}: the audio stream decoded to no samples")
    if profile.flow and kind != "fps" and key_index + 1 >= len(frames):
        raise MediaError(f"{cid}: no frame after the key frame, so no optical flow")

    outputs: dict[str, str] = {}
    meta: dict[str, Any] = {}
    next_time = times[key_index + 1] if key_index + 1 < len(times) else None
    nxt = frames[key_index + 1] if key_index + 1 < len(frames) and kind != "fps" else None
    key, key_time = frames[key_index], times[key_index]
    if kind == "fps":
        sub = f"frames/{cid}"
        for i, rgb in enumerate(frames):
            frame_stage.write_jpeg(
                out / sub / f"{i:04d}.jpg", frame_stage.resize(rgb, profile), profile.jpeg_quality
            )
        outputs["frames"] = sub
        meta["frame_times"] = times
    src_h, src_w = key.shape[:2]
    key_small = frame_stage.resize(key, profile)
    frame_stage.write_jpeg(out / "frames" / f"{cid}.jpg", key_small, profile.jpeg_quality)
    outputs["frame"] = f"frames/{cid}.jpg"
    t_frames = time.perf_counter()

    if profile.flow and nxt is not None:
        flow = flow_stage.compute_flow(profile.flow, key_small, frame_stage.resize(nxt, profile))
        write_npy(out / "flow" / f"{cid}.npy", flow_stage.to_stored(flow))
        outputs["flow"] = f"flow/{cid}.npy"
        if profile.flow_legacy_htf:
            flow_stage.write_legacy_htf(out / "flow", cid, flow)
            outputs["flow_legacy_x"] = f"flow/flow_x/{cid}.jpg"
            outputs["flow_legacy_y"] = f"flow/flow_y/{cid}.jpg"
    t_flow = time.perf_counter()

    window_source = "edit-list" if info.audio_signal_duration is not None else "decoded"
    n = int(round(profile.audio_seconds * rate))
    samples = audio_stage.fit_length(raw, n, profile.short_audio)
    audio_stage.write_wav(out / "audio" / f"{cid}.wav", samples, rate)
    outputs["audio"] = f"audio/{cid}.wav"
    t_audio = time.perf_counter()

    if profile.spectrogram:
        spec = compute_spectrogram(profile.spectrogram, samples, rate)
        write_npy(out / "spectrograms" / profile.spectrogram / f"{cid}.npy", spec)
        outputs["spectrogram"] = f"spectrograms/{profile.spectrogram}/{cid}.npy"
        meta["spectrogram_shape"] = list(spec.shape)
    t_spec = time.perf_counter()

    meta.update(
        {
            "frame_time": key_time,
            "next_frame_time": next_time,
            "audio_start": round(a_start, 6),
            # the window's first sample in the decoded signal, and where its length came from
            "audio_start_sample": int(window.start),
            "audio_signal_source": window_source,
            "audio_seconds": profile.audio_seconds,
            "sample_rate": int(rate),
            "width": int(key_small.shape[1]),
            "height": int(key_small.shape[0]),
            "src_width": int(src_w),
            "src_height": int(src_h),
            "fps": media.fps,
            "duration": media.duration,
            "source": os.fspath(source.path),
            "rotation": media.rotation,
            "audio_short": bool(raw.size < n),
            "timings": {
                "decode": round(t_decoded - t_start, 5),
                "frames": round(t_frames - t_decoded, 5),
                "flow": round(t_flow - t_frames, 5),
                "audio": round(t_audio - t_flow, 5),
                "spectrogram": round(t_spec - t_audio, 5),
                # CPU of this process and its finished children (ffmpeg) for the clip
                "cpu": round(_cpu_seconds() - cpu_start, 5),
            },
        }
    )
    return ClipRecord(clip_id=cid, status=OK, outputs=outputs, meta=meta)


def _known_window(profile: Profile, info, rate: int, t_frame: float) -> AudioWindow | None:
    """The audio window when the decoded length is known before decoding, else None.

    An MP4 edit list states it (priming and padding excluded): ffmpeg then seeks
    to the window. Otherwise the one ffmpeg pass decodes the whole track and
    the window is cut from the counted samples (:mod:`avprep.stages.audio_window`).
    """
    if info.audio_signal_duration is None:
        return None
    signal = SignalFacts.from_duration(info.audio_signal_duration, rate)
    window = plan_window(profile.audio_window, profile.audio_seconds, signal, t_frame)
    # a window cut to an exact sample count (HTF's test rule) is cut from the counted decode
    return None if window.take is not None else window


@dataclasses.dataclass(frozen=True)
class _Plan:
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


def _decode(
    path: str, plan: _Plan, cid: str, out: Path
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
        proc = ffmpeg.run(_ffmpeg_args(path, plan, raw_path, stats_path), what=cid)
        frames = frame_stage.parse_ppm_stream(proc.stdout)
        times = _read_times(stats_path)
        raw = np.fromfile(raw_path, dtype="<i2")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if len(times) < len(frames):
        times += [None] * (len(frames) - len(times))
    return frames, times, raw


def _ffmpeg_args(path: str, plan: _Plan, raw_path: str, stats_path: str) -> list[str]:
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


def _cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _read_times(path: str) -> list[float | None]:
    """Frame times (s) from ffmpeg's ``-stats_enc_pre`` lines ``<pts> <num>/<den>``."""
    times: list[float | None] = []
    for parts in ffmpeg.stats_rows(path):
        try:
            times.append(round(ffmpeg.pts_seconds(parts[0], parts[1]), 6))
        except (ValueError, IndexError, ZeroDivisionError):
            times.append(None)
    return times


def _nearest(times: list[float | None], t: float) -> int:
    best, best_d = 0, float("inf")
    for i, x in enumerate(times):
        if x is not None and abs(x - t) < best_d:
            best, best_d = i, abs(x - t)
    return best


# -- inputs -------------------------------------------------------------------
def find_sources(in_path: str | os.PathLike) -> tuple[list[ClipSource], list[ClipRecord]]:
    """The videos to extract, and failed records for inputs that cannot be used.

    ``in_path`` is a download folder with ``manifest.jsonl`` (its ``ok``
    clips), such a manifest file itself, or a folder of videos (the file stem
    is the clip id). Unsafe ids are refused with a failed record.
    """
    p = Path(in_path)
    if p.is_file() and p.suffix == ".jsonl":
        return _from_manifest(p)
    if not p.is_dir():
        raise InputError(f"--in {p}: no such folder or manifest")
    if (p / MANIFEST_NAME).is_file():
        return _from_manifest(p / MANIFEST_NAME)
    sources: list[ClipSource] = []
    rejected: list[ClipRecord] = []
    seen: set[str] = set()
    for f in sorted(p.iterdir()):
        if f.name.startswith(TMP_PREFIX) or f.suffix.lower() not in VIDEO_SUFFIXES:
            continue
        if not f.is_file():
            continue
        try:
            cid = check_id(f.stem)
        except HostileIdError as exc:
            rejected.append(ClipRecord(clip_id=_safe_label(f.stem), status=FAILED, error=str(exc)))
            continue
        if cid in seen:
            log.warning("%s: another file already has clip id %s; skipped", f.name, cid)
            continue
        seen.add(cid)
        sources.append(ClipSource(cid, os.fspath(f)))
    if not sources and not rejected:
        raise InputError(f"--in {p}: no videos ({', '.join(VIDEO_SUFFIXES)}) and no manifest")
    return sources, rejected


def _safe_label(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:100] or "_"


def _from_manifest(path: Path) -> tuple[list[ClipSource], list[ClipRecord]]:
    root = path.parent
    # The download manifest: last record per clip wins, torn lines are ignored.
    last = {rec.clip_id: dataclasses.asdict(rec) for rec in Manifest(path).records()}
    sources: list[ClipSource] = []
    rejected: list[ClipRecord] = []
    for cid, d in last.items():
        if d.get("status") != OK:
            continue
        try:
            check_id(cid)
        except HostileIdError as exc:
            rejected.append(ClipRecord(clip_id=_safe_label(cid), status=FAILED, error=str(exc)))
            continue
        video = _video_path(root, cid, d)
        if video is None:
            rejected.append(
                ClipRecord(
                    clip_id=cid, status=FAILED, error=f"{cid}: downloaded file not found in {root}"
                )
            )
            continue
        sources.append(ClipSource(cid, os.fspath(video)))
    return sources, rejected


def _video_path(root: Path, cid: str, d: dict) -> Path | None:
    outputs = d.get("outputs") if isinstance(d.get("outputs"), dict) else {}
    meta = d.get("meta") if isinstance(d.get("meta"), dict) else {}
    for cand in (
        d.get("path"),
        outputs.get("path"),
        outputs.get("video"),
        outputs.get("file"),
        meta.get("path"),
    ):
        if isinstance(cand, str) and cand:
            q = Path(cand)
            q = q if q.is_absolute() else root / q
            # the path must stay inside the download folder
            try:
                q.resolve().relative_to(root.resolve())
            except ValueError:
                continue
            if q.is_file():
                return q
    for suffix in VIDEO_SUFFIXES:
        q = root / f"{cid}{suffix}"
        if q.is_file():
            return q
    return None


# -- many clips ---------------------------------------------------------------
@dataclasses.dataclass
class ExtractSummary:
    """What a run did (the CLI prints it)."""

    total: int
    already_done: int
    ok: int
    failed: int
    seconds: float
    reasons: list[tuple[str, int]]
    out_dir: str

    def text(self) -> str:
        done = self.ok + self.failed
        rate = done / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"extract: {self.total} clip(s) in {self.out_dir}",
            f"  already done (skipped) {self.already_done:>7}",
            f"  extracted now          {self.ok:>7}",
            f"  failed                 {self.failed:>7}",
            f"  time                   {self.seconds:>7.1f} s ({rate:.2f} clips/s)",
        ]
        if self.reasons:
            lines.append("  top failure reasons:")
            lines += [f"    {n:>5}  {r[:150]}" for r, n in self.reasons]
        return "\n".join(lines)


class _ExtractOne:
    """Picklable worker: extract one :class:`ClipSource` (loky and Dask ship it)."""

    def __init__(self, out_dir: str, profile: Profile) -> None:
        self.out_dir = out_dir
        self.profile = profile

    def __call__(self, source: ClipSource) -> ClipRecord:
        return extract_clip(source, self.out_dir, self.profile)


def tool_versions() -> dict[str, str]:
    import cv2
    import scipy

    from avprep import __version__

    return {
        "avprep": __version__,
        "ffmpeg": ffmpeg.ffmpeg_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "scipy": scipy.__version__,
    }


def run_extract(
    in_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    profile: Profile,
    **kw: Any,
) -> ExtractSummary:
    """Extract every clip of ``in_path`` into ``out_dir``; resume what is done.

    The manifest header records ``profile`` and ``profile_params``; a rerun
    with different parameters into the same folder is refused (its files
    would mix two preprocessings). One run per folder at a time: the folder's
    lock (``OUT/.extract.lock``) is taken before the header is read. Options
    (``jobs``, ``backend``, ``scheduler``, ``limit``, ``progress``, ``times``): see
    :func:`_run_extract_locked`.
    """
    out = Path(out_dir)
    with folder_lock(out, "extract"):
        swept = cleanup_temps(out, dirs=True)  # what a killed run left in OUT itself
        if swept:
            log.info("removed %d temporary entries left by an interrupted run", swept)
        return _run_extract_locked(in_path, out_dir, profile, **kw)


def _run_extract_locked(
    in_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    profile: Profile,
    *,
    jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    limit: int | None = None,
    progress: bool = True,
    times: str | os.PathLike | None = None,
) -> ExtractSummary:
    """The body of :func:`run_extract`, under the folder lock.

    ``times``: a CSV of clips at annotated times/frames of the videos
    (:mod:`avprep.stages.times`, one decode per video).
    """
    t0 = time.perf_counter()
    timed = None
    if times is not None:
        from avprep.stages.times import read_times

        if frame_at_value(profile.frame_at)[0] == "fps":
            raise ConfigError(
                "--times takes one annotated frame a clip; --frame-at fps:N does not apply"
            )
        timed = read_times(times)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sources, rejected = find_sources(in_path)
    if limit is not None:
        if limit < 0:
            raise ConfigError(f"--limit must be >= 0, got {limit}")
        if timed is not None:
            timed = timed[:limit]
        else:
            sources = sources[:limit]
    manifest = Manifest(out / MANIFEST_NAME)
    params = json.loads(json.dumps(profile.params()))
    old = manifest.header.get("profile_params")
    if old is not None and old != params:
        diff = sorted(k for k in set(old) | set(params) if old.get(k) != params.get(k))
        raise ConfigError(
            f"{out} was extracted with other parameters ({', '.join(diff)} differ: "
            f"{ {k: old.get(k) for k in diff} }); use another --out or the same options"
        )
    if old is None:
        manifest.write_header(profile=profile.name, profile_params=params, tools=tool_versions())
    for sub in ("frames", "audio", "flow", "flow/flow_x", "flow/flow_y"):
        if (out / sub).is_dir():
            cleanup_temps(out / sub)
    if profile.spectrogram and (out / "spectrograms" / profile.spectrogram).is_dir():
        cleanup_temps(out / "spectrograms" / profile.spectrogram)

    if timed is not None:
        return _run_times(timed, sources, rejected, manifest, out, profile, t0, jobs=jobs,
                          backend=backend, scheduler=scheduler, progress=progress)  # fmt: skip
    for rec in rejected:
        if not is_done(manifest.get(rec.clip_id), out):
            manifest.append(rec)
    todo = [s for s in sources if not is_done(manifest.get(s.clip_id), out)]
    already = len(sources) - len(todo)
    log.info("extract: %d clip(s), %d already done, %d to do", len(sources), already, len(todo))
    counts: Counter = Counter()
    reasons: Counter = Counter()
    worker = _ExtractOne(os.fspath(out), profile)
    for rec in map_clips(
        worker,
        todo,
        jobs=jobs,
        backend=backend,
        scheduler=scheduler,
        manifest=manifest,
        desc="extract",
        progress=progress,
    ):
        counts[rec.status] += 1
        if not rec.ok and rec.error:
            reasons[_reason(rec.error)] += 1
    for rec in rejected:
        reasons[_reason(rec.error or "")] += 1
    return ExtractSummary(
        total=len(sources) + len(rejected),
        already_done=already,
        ok=counts[OK],
        failed=counts[FAILED] + len(rejected),
        seconds=time.perf_counter() - t0,
        reasons=reasons.most_common(5),
        out_dir=os.fspath(out),
    )


def _reason(error: str) -> str:
    # "<clip id>: reason" -> "reason", so the same failure groups across clips
    head, sep, tail = error.partition(": ")
    return tail if sep and " " not in head else error


def _run_times(timed, sources, rejected, manifest, out, profile, t0, **kw) -> ExtractSummary:
    """``--times``: clips at annotated times, one decode per source video."""
    from avprep.stages.times import run_times

    for rec in rejected:
        log.warning("%s", rec.error)
    videos = {s.clip_id: s.path for s in sources}
    counts, reasons, already = run_times(
        videos, timed, manifest, out, profile, is_done=is_done, **kw
    )
    return ExtractSummary(
        total=len(timed),
        already_done=already,
        ok=counts[OK],
        failed=counts[FAILED],
        seconds=time.perf_counter() - t0,
        reasons=reasons.most_common(5),
        out_dir=os.fspath(out),
    )
