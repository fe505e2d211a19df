"""Extraction of one clip, and of a folder of clips, in one ffmpeg pass each.

Per clip (:func:`extract_clip`):

1. container facts from the MP4 boxes (no process) or ``ffmpeg -i``;
2. ONE ffmpeg process (:mod:`avprep.stages.one_pass`) with the file opened twice: input 0 seeks (``-ss``
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
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from avprep import ffmpeg
from avprep.atomic import TMP_PREFIX
from avprep.clip import VIDEO_SUFFIXES, Clip, video_of
from avprep.errors import ConfigError, HostileIdError, InputError, MediaError
from avprep.ids import check_id
from avprep.manifest import FAILED, MANIFEST_NAME, OK, ClipRecord, Manifest, is_done
from avprep.profiles import Profile, frame_at_value
from avprep.spectrogram import compute as compute_spectrogram
from avprep.stage import Stage, StageReport, Work, run_stage
from avprep.stages import audio as audio_stage
from avprep.stages import flow as flow_stage
from avprep.stages import frames as frame_stage
from avprep.stages.audio_window import AudioWindow, SignalFacts, plan_window
from avprep.stages.flow import write_npy
from avprep.stages.mediainfo import clip_info, mp4_cut_short
from avprep.stages.one_pass import PassPlan, cpu_seconds, decode_pass, nearest

log = logging.getLogger(__name__)

# extra audio asked of ffmpeg so resampler rounding never leaves the window short
_AUDIO_MARGIN = 0.05


# -- one clip -----------------------------------------------------------------
def extract_clip(
    source: Clip | str | os.PathLike,
    out_dir: str | os.PathLike,
    profile: Profile,
    *,
    clip_id: str | None = None,
) -> ClipRecord:
    """Extract one clip into ``out_dir`` as ``profile`` says; return its record.

    Raises :class:`MediaError` (no audio/video stream, zero duration,
    undecodable) — :func:`run_extract` records those as failed clips.
    """
    if not isinstance(source, Clip):
        p = Path(source)
        source = Clip(clip_id or p.stem, path=os.fspath(p))
    cid = check_id(source.clip_id)
    out = Path(out_dir)
    clock = _Clock()
    info = clip_info(source.path)
    _check_media(cid, source.path, info)
    media = info.media
    plan, window = _plan_pass(cid, profile, info)
    frames, times, raw = decode_pass(source.path, plan, cid, out)
    frames, times, raw, key_index = _key_frame(source.path, plan, cid, out, frames, times, raw)
    if window is None:
        window, raw = _cut_window(profile, plan, raw)
    clock.lap("decode")
    # check everything before writing anything, so a failed clip leaves no files
    _check_decoded(cid, profile, plan, frames, raw, key_index)

    outputs: dict[str, str] = {}
    meta: dict[str, Any] = {}
    key_small = _write_frames(out, cid, profile, plan, frames, times, key_index, outputs, meta)
    clock.lap("frames")
    nxt = frames[key_index + 1] if key_index + 1 < len(frames) and plan.kind != "fps" else None
    if profile.flow and nxt is not None:
        _write_flow(out, cid, profile, key_small, nxt, outputs)
    clock.lap("flow")
    n = int(round(profile.audio_seconds * plan.rate))
    samples = audio_stage.fit_length(raw, n, profile.short_audio)
    audio_stage.write_wav(out / "audio" / f"{cid}.wav", samples, plan.rate)
    outputs["audio"] = f"audio/{cid}.wav"
    clock.lap("audio")
    if profile.spectrogram:
        spec = compute_spectrogram(profile.spectrogram, samples, plan.rate)
        write_npy(out / "spectrograms" / profile.spectrogram / f"{cid}.npy", spec)
        outputs["spectrogram"] = f"spectrograms/{profile.spectrogram}/{cid}.npy"
        meta["spectrogram_shape"] = list(spec.shape)
    clock.lap("spectrogram")

    src_h, src_w = frames[key_index].shape[:2]
    meta.update(
        {
            "frame_time": times[key_index],
            "next_frame_time": times[key_index + 1] if key_index + 1 < len(times) else None,
            "audio_start": round(window.start_seconds, 6),
            # the window's first sample in the decoded signal, and where its length came from
            "audio_start_sample": int(window.start),
            "audio_signal_source": (
                "edit-list" if info.audio_signal_duration is not None else "decoded"
            ),
            "audio_seconds": profile.audio_seconds,
            "sample_rate": int(plan.rate),
            "width": int(key_small.shape[1]),
            "height": int(key_small.shape[0]),
            "src_width": int(src_w),
            "src_height": int(src_h),
            "fps": media.fps,
            "duration": media.duration,
            "source": os.fspath(source.path),
            "rotation": media.rotation,
            "audio_short": bool(raw.size < n),
            "timings": clock.timings(),
        }
    )
    return ClipRecord(clip_id=cid, status=OK, outputs=outputs, meta=meta)


def _cut_window(
    profile: Profile, plan: PassPlan, raw: np.ndarray
) -> tuple[AudioWindow, np.ndarray]:
    """No edit list told the decoded length: the whole track was decoded; count it and cut
    the window from it."""
    signal = SignalFacts(samples=int(raw.size), rate=plan.rate, source="decoded")
    window = plan_window(profile.audio_window, profile.audio_seconds, signal, plan.t_frame)
    end = None if window.take is None else window.start + window.take
    return window, raw[window.start : end]


def _check_decoded(cid, profile, plan, frames, raw, key_index) -> None:
    """A :class:`MediaError` when the pass gave no frame, no audio or no frame for the flow."""
    if not frames:
        raise MediaError(f"{cid}: no video frame could be decoded at {plan.t_frame:.3f} s")
    if raw.size == 0:
        raise MediaError(f"{cid}: the audio stream decoded to no samples")
    if profile.flow and plan.kind != "fps" and key_index + 1 >= len(frames):
        raise MediaError(f"{cid}: no frame after the key frame, so no optical flow")


class _Clock:
    """Seconds per part of one clip's extraction, and the CPU it took (with ffmpeg's)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.cpu = cpu_seconds()
        self.parts: dict[str, float] = {}

    def lap(self, part: str) -> None:
        now = time.perf_counter()
        self.parts[part] = round(now - self.last, 5)
        self.last = now

    def timings(self) -> dict[str, float]:
        # CPU of this process and its finished children (ffmpeg) for the clip
        return {**self.parts, "cpu": round(cpu_seconds() - self.cpu, 5)}


def _check_media(cid: str, path: str, info: Any) -> None:
    """A :class:`MediaError` for a file cut short, without duration, video or audio."""
    media = info.media
    cut = mp4_cut_short(path) if info.via == "mp4" else None
    if cut:
        raise MediaError(f"{cid}: {cut} (declared {media.duration or 0:.2f} s); re-download it")
    if not media.duration or media.duration <= 0:
        raise MediaError(f"{cid}: zero duration (nothing to extract)")
    if not media.has_video:
        raise MediaError(f"{cid}: no video stream")
    if not media.has_audio:
        raise MediaError(f"{cid}: no audio stream")


def _plan_pass(cid: str, profile: Profile, info: Any) -> tuple[PassPlan, AudioWindow | None]:
    """What the one ffmpeg pass decodes, and the audio window when it is known before it."""
    media = info.media
    kind, fps_n = frame_at_value(profile.frame_at)
    need_next = profile.flow is not None
    video_duration = info.video_duration or media.duration
    t_frame = frame_stage.frame_time(profile, video_duration, media.fps, need_next)
    rate = profile.sample_rate or media.sample_rate
    if not rate:
        raise MediaError(f"{cid}: the audio sample rate is unknown; pass --sample-rate")
    rate = int(rate)
    window = _known_window(profile, info, rate, t_frame)
    whole = window is None or window.whole
    plan = PassPlan(
        kind=kind,
        fps_n=fps_n,
        t_frame=t_frame,
        # start 1.5 frames early: the frame shown at t_frame may start before it
        t_seek=max(0.0, t_frame - 1.5 / (media.fps or 25.0)),
        n_frames=2 + int(need_next),
        keyframe=profile.seek == "keyframe",
        a_start=window.start_seconds if window is not None else 0.0,
        a_seconds=None if whole else profile.audio_seconds + _AUDIO_MARGIN,
        rate=int(rate),
        video_duration=video_duration,
    )
    return plan, window


def _key_frame(path: str, plan: PassPlan, cid: str, out: Path, frames, times, raw):
    """(frames, times, audio, the key frame's index): the frame shown at ``t_frame``;
    a variable frame rate may need a second, wider decode."""
    if plan.kind == "fps":
        return frames, times, raw, nearest(times, plan.video_duration / 2.0)
    if plan.keyframe:
        return frames, times, raw, 0
    found = frame_stage.shown_at(times, plan.t_frame)
    if found is None and plan.t_seek > 0:
        # variable frame rate: the frame shown at t_frame starts earlier still
        wide = dataclasses.replace(plan, t_seek=max(0.0, plan.t_frame - 2.0), n_frames=None)
        frames, times, raw = decode_pass(path, wide, cid, out)
        found = frame_stage.shown_at(times, plan.t_frame)
    return frames, times, raw, found or 0


def _write_frames(out, cid, profile, plan, frames, times, key_index, outputs, meta) -> np.ndarray:
    """The key frame's JPEG (and every frame's with ``fps:N``); return the resized key frame."""
    if plan.kind == "fps":
        sub = f"frames/{cid}"
        for i, rgb in enumerate(frames):
            frame_stage.write_jpeg(
                out / sub / f"{i:04d}.jpg", frame_stage.resize(rgb, profile), profile.jpeg_quality
            )
        outputs["frames"] = sub
        meta["frame_times"] = times
    key_small = frame_stage.resize(frames[key_index], profile)
    frame_stage.write_jpeg(out / "frames" / f"{cid}.jpg", key_small, profile.jpeg_quality)
    outputs["frame"] = f"frames/{cid}.jpg"
    return key_small


def _write_flow(out, cid, profile, key_small, nxt, outputs) -> None:
    flow = flow_stage.compute_flow(profile.flow, key_small, frame_stage.resize(nxt, profile))
    write_npy(out / "flow" / f"{cid}.npy", flow_stage.to_stored(flow))
    outputs["flow"] = f"flow/{cid}.npy"
    if profile.flow_legacy_htf:
        flow_stage.write_legacy_htf(out / "flow", cid, flow)
        outputs["flow_legacy_x"] = f"flow/flow_x/{cid}.jpg"
        outputs["flow_legacy_y"] = f"flow/flow_y/{cid}.jpg"


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


# -- inputs -------------------------------------------------------------------
def find_sources(in_path: str | os.PathLike) -> tuple[list[Clip], list[ClipRecord]]:
    """The videos to extract (clips with a ``path``), and failed records for inputs that
    cannot be used.

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
    sources: list[Clip] = []
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
        sources.append(Clip(cid, path=os.fspath(f)))
    if not sources and not rejected:
        raise InputError(f"--in {p}: no videos ({', '.join(VIDEO_SUFFIXES)}) and no manifest")
    return sources, rejected


def _safe_label(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:100] or "_"


def _from_manifest(path: Path) -> tuple[list[Clip], list[ClipRecord]]:
    """The ok clips of a download (or ingest, or synth) manifest, last record per clip."""
    root = path.parent
    sources: list[Clip] = []
    rejected: list[ClipRecord] = []
    for rec in Manifest(path).records():
        cid = rec.clip_id
        if not rec.ok:
            continue
        try:
            check_id(cid)
        except HostileIdError as exc:
            rejected.append(ClipRecord(clip_id=_safe_label(cid), status=FAILED, error=str(exc)))
            continue
        video = video_of(root, cid, rec.outputs if isinstance(rec.outputs, dict) else {})
        if video is None:
            error = f"{cid}: downloaded file not found in {root}"
            rejected.append(ClipRecord(clip_id=cid, status=FAILED, error=error))
            continue
        sources.append(Clip(cid, path=os.fspath(video)))
    return sources, rejected


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


@dataclasses.dataclass(frozen=True)
class ExtractConfig:
    """What every clip of a run shares: the output folder and the profile."""

    out: str
    profile: Profile


def extract_step(clip: Clip, cfg: ExtractConfig) -> ClipRecord:
    """The stage's per-clip step (:func:`extract_clip` on the clip's video)."""
    return extract_clip(clip, cfg.out, cfg.profile)


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


def _mismatch(out: Path, diff: list[str], old: Mapping[str, Any]) -> str:
    return (
        f"{out} was extracted with other parameters ({', '.join(diff)} differ: "
        f"{ {k: old.get(k) for k in diff} }); use another --out or the same options"
    )


def extract_stage(out_dir: str | os.PathLike, profile: Profile) -> Stage:
    """The extract stage's declaration: the profile's parameters are the folder's
    (a rerun with others is refused); temporaries swept in OUT and its file folders."""
    out = Path(out_dir)
    files = ("frames", "audio", "flow", "flow/flow_x", "flow/flow_y")
    if profile.spectrogram:
        files += (f"spectrograms/{profile.spectrogram}",)
    params = json.loads(json.dumps(profile.params()))
    return Stage(
        name="extract",
        step=extract_step,
        config=ExtractConfig(os.fspath(out), profile),
        out=out,
        header={"profile": profile.name, "profile_params": params, "tools": tool_versions()},
        params_key="profile_params",
        mismatch=_mismatch,
        sweep=(("", True), *((sub, False) for sub in files)),
    )


def run_extract(
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
    """Extract every clip of ``in_path`` into ``out_dir``; resume what is done.

    The manifest header records ``profile`` and ``profile_params``; a rerun
    with different parameters into the same folder is refused (its files
    would mix two preprocessings). One run per folder at a time: the folder's
    lock (``OUT/.extract.lock``) is taken before the header is read
    (:func:`avprep.stage.run_stage`). ``times``: a CSV of clips at annotated
    times/frames of the videos (:mod:`avprep.stages.times`, one decode per video).
    """
    t0 = time.perf_counter()
    if limit is not None and limit < 0:
        limit_error = ConfigError(f"--limit must be >= 0, got {limit}")
    else:
        limit_error = None
    stage = extract_stage(out_dir, profile)
    if times is not None:
        return _run_times(in_path, stage, profile, times, limit, limit_error, t0, jobs=jobs,
                          backend=backend, scheduler=scheduler, progress=progress)  # fmt: skip

    def select(manifest: Manifest | None) -> Work:
        sources, rejected = find_sources(in_path)
        if limit_error is not None:
            raise limit_error
        return Work(sources[:limit] if limit is not None else sources, rejected)

    run: StageReport = run_stage(
        stage, select, jobs=jobs, backend=backend, scheduler=scheduler, progress=progress
    )
    return ExtractSummary(
        total=len(run.items) + len(run.rejected),
        already_done=run.already_done,
        ok=run.ok,
        failed=run.failed,
        seconds=time.perf_counter() - t0,
        reasons=run.reasons(),
        out_dir=os.fspath(stage.out),
    )


def _run_times(in_path, stage, profile, times, limit, limit_error, t0, **kw) -> ExtractSummary:
    """``--times``: clips at annotated times on :func:`run_stage`, a source video
    the unit of work (one decode per video, :mod:`avprep.stages.times`)."""
    from avprep.stages.times import read_times, select_videos, times_stage

    timed: list = []
    already = 0

    def select(manifest: Manifest | None) -> Work:
        nonlocal timed, already
        if frame_at_value(profile.frame_at)[0] == "fps":
            raise ConfigError(
                "--times takes one annotated frame a clip; --frame-at fps:N does not apply"
            )
        timed = read_times(times)
        sources, rejected = find_sources(in_path)
        if limit_error is not None:
            raise limit_error
        if limit is not None:
            timed = timed[:limit]
        for rec in rejected:
            log.warning("%s", rec.error)
        videos = {s.clip_id: s.path for s in sources}
        work, already = select_videos(timed, videos, manifest, stage.out, is_done)
        return work

    run: StageReport = run_stage(times_stage(stage), select, **kw)
    return ExtractSummary(
        total=len(timed),
        already_done=already,
        ok=run.ok,
        failed=run.failed,
        seconds=time.perf_counter() - t0,
        reasons=run.reasons(rejected_first=True),
        out_dir=os.fspath(stage.out),
    )
