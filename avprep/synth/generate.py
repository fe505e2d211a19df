"""Write a SynthAV set: videos, ground truth, splits and metadata.

Layout of ``OUT``::

    videos/<clip_id>.mp4          H.264 (yuv420p) + AAC mono, one per clip
    annotations/vggss.json        VGG-SS style boxes of the sounding objects
    annotations/xml/<clip_id>.xml Flickr style boxes, three annotators
    splits/{train,val,test}.txt   clip ids, one a line
    synthav.json                  parameters, classes, per-clip facts
    manifest.jsonl                one record per generated clip

Every file is written atomically. A rerun with the same parameters skips
the videos that are done (an ok record whose video exists: the one rule of
:func:`avprep.manifest.is_done`; a video is written atomically) and
rewrites the small files; a rerun with other parameters into the same
folder is refused, so one folder never mixes two sets.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import soundfile as sf

from avprep import ffmpeg
from avprep.atomic import atomic_path, write_bytes, write_json, write_text
from avprep.errors import InputError
from avprep.manifest import OK, ClipRecord
from avprep.stage import Stage, StageReport, run_stage
from avprep.synth.classes import CLASSES
from avprep.synth.groundtruth import (
    ANNOTATORS,
    FLICKR_SIDE,
    JITTER_PX,
    clip_metadata,
    flickr_xml,
    split_lines,
    vggss_entry,
)
from avprep.synth.render import render_frames
from avprep.synth.sound import clip_audio
from avprep.synth.spec import (
    GENERATOR,
    PLACEMENT_TRIES,
    VERSION,
    ClipSpec,
    SynthConfig,
    assign_splits,
    clip_spec,
)

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
GT_RULE = (
    "boxes are those of the key frame: the frame shown at half the duration, "
    "key_frame = n_frames // 2 at key_time = key_frame / fps (what avprep extract takes "
    "for 'middle', and the originals' middle frame); moving objects "
    "oscillate about their key-frame place, place + A*u*sin(2*pi*f*(t - key_time)), so the "
    "key-frame box is exact and one frame either side it is at most max_speed_px_per_frame "
    "pixels away"
)


@dataclasses.dataclass
class SynthResult:
    """What :func:`generate` did."""

    out: Path
    generated: int
    skipped: int
    failed: dict[str, str]
    seconds: float
    splits: dict[str, int]

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclasses.dataclass(frozen=True)
class _SynthRun:
    """What every clip of a run shares: the set's config and the videos folder."""

    cfg: SynthConfig
    videos: str


def render_step(spec: ClipSpec, run: _SynthRun) -> ClipRecord:
    """The stage's per-clip step: render and encode one clip into ``videos``."""
    cv2.setNumThreads(1)  # the workers are the parallelism; OpenCV threads would oversubscribe
    start = time.perf_counter()
    path = Path(run.videos) / f"{spec.clip_id}.mp4"
    write_clip(run.cfg, spec, path)
    return ClipRecord(
        clip_id=spec.clip_id,
        status=OK,
        outputs={"video": f"videos/{path.name}"},
        meta={"seconds": round(time.perf_counter() - start, 3)},
    )


def write_clip(cfg: SynthConfig, spec: ClipSpec, path: str | Path) -> Path:
    """Render ``spec`` and encode it to ``path`` (H.264 + AAC) atomically."""
    frames = render_frames(cfg, spec)
    audio = clip_audio(cfg, spec)
    w, h = cfg.size
    # hand ffmpeg 4:2:0 planes: OpenCV's I420 is the BT.601 limited range that
    # decoders assume, and converting here is cheaper than in ffmpeg's scaler
    plane = w * h * 3 // 2
    yuv = np.empty(len(frames) * plane, np.uint8)
    for i, rgb in enumerate(frames):
        yuv[i * plane : (i + 1) * plane] = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).ravel()
    # the WAV goes to a .tmp-* folder beside the video (swept by the next run if killed)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    work = tempfile.TemporaryDirectory(prefix=".tmp-synthav-", dir=Path(path).parent)
    with work as tmp, atomic_path(path) as out:
        wav = Path(tmp) / "audio.wav"
        sf.write(wav, (audio * 32767).round().astype(np.int16), cfg.sample_rate, subtype="PCM_16")
        # video arrives as raw I420 on stdin, audio from the WAV; one thread per encoder
        # keeps the bytes reproducible and lets --jobs use the cores
        ffmpeg.run(
            [
                "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{w}x{h}",
                "-framerate", str(cfg.fps), "-i", "pipe:0",
                "-i", str(wav),
                "-map", "0:v:0", "-map", "1:a:0",
                "-c:v", "libx264", "-preset", "veryfast", "-crf", "18",
                "-pix_fmt", "yuv420p", "-g", str(cfg.fps), "-threads", "1",
                "-c:a", "aac", "-b:a", "96k", "-ac", "1", "-ar", str(cfg.sample_rate),
                "-map_metadata", "-1", "-fflags", "+bitexact",
                "-flags:v", "+bitexact", "-flags:a", "+bitexact",
                "-movflags", "+faststart", str(out),
            ],
            input_bytes=yuv.tobytes(),
            what=spec.clip_id,
        )  # fmt: skip
    return Path(path)


def _mismatch(out: Path, changed: list[str], old: Mapping[str, Any]) -> str:
    return (
        f"{out} already holds a SynthAV set made with other parameters "
        f"({', '.join(changed)} differ); choose another --out or delete the folder"
    )


def synth_stage(cfg: SynthConfig, out: Path) -> Stage:
    """The synth stage's declaration: the generation parameters are the folder's."""
    return Stage(
        name="synth",
        step=render_step,
        config=_SynthRun(cfg, str(out / "videos")),
        out=out,
        desc="synthav",
        header={"synth": cfg.generation_params()},
        params_key="synth",
        mismatch=_mismatch,
        sweep=(("videos", True),),
    )


def generate(
    cfg: SynthConfig,
    out: str | Path,
    *,
    jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    progress: bool = True,
) -> SynthResult:
    """Write the SynthAV set ``cfg`` into ``out`` (resumable; see the module docstring).

    One run per folder at a time (``OUT/.synth.lock``, taken before the
    manifest header is read; :func:`avprep.stage.run_stage`).
    """
    cfg.validate()
    start = time.perf_counter()
    out = Path(out)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    specs = [clip_spec(cfg, i) for i in range(cfg.clips)]

    def finish(run: StageReport) -> SynthResult:
        failed: dict[str, str] = {}
        for rec in run.records:
            if not rec.ok:
                failed[rec.clip_id] = rec.error or "failed"
                log.warning("%s: %s", rec.clip_id, rec.error)
        splits = write_groundtruth(cfg, specs, out)
        return SynthResult(
            out=out,
            generated=len(run.records) - len(failed),
            skipped=run.already_done,
            failed=failed,
            seconds=time.perf_counter() - start,
            splits={k: len(v) for k, v in splits.items()},
        )

    return run_stage(
        synth_stage(cfg, out), specs, jobs=jobs, backend=backend, scheduler=scheduler,
        progress=progress, finish=finish,
    )  # fmt: skip


def write_groundtruth(cfg: SynthConfig, specs: list[ClipSpec], out: Path) -> dict[str, list[str]]:
    """Write annotations, split lists and ``synthav.json``; return the ids per split."""
    split_of: dict[int, str] = {}
    by_split = assign_splits(cfg)
    for name, indices in by_split.items():
        for i in indices:
            split_of[i] = name
    ids = {name: [cfg.clip_id(i) for i in by_split[name]] for name in SPLITS}

    write_json(out / "annotations" / "vggss.json", [vggss_entry(cfg, s) for s in specs])
    xml_dir = out / "annotations" / "xml"
    xml_dir.mkdir(parents=True, exist_ok=True)
    for s in specs:
        data = flickr_xml(cfg, s)
        path = xml_dir / f"{s.clip_id}.xml"
        if not path.is_file() or path.read_bytes() != data:  # resume: skip unchanged files
            write_bytes(path, data)
    for name in SPLITS:
        write_text(out / "splits" / f"{name}.txt", split_lines(ids[name]))

    max_speed = max((o.motion.max_speed_px_per_s for s in specs for o in s.objects), default=0.0)
    sounding = Counter(name for s in specs for name in (o.class_name for o in s.sounding))
    meta = {
        "generator": GENERATOR,
        "version": VERSION,
        "config": cfg.to_dict(),
        "classes": [c.to_dict() for c in CLASSES[: cfg.classes]],
        "n_frames": cfg.n_frames,
        "key_frame": cfg.key_frame,
        "key_time": cfg.key_time,
        "n_samples": cfg.n_samples,
        "gt_rule": GT_RULE,
        "max_speed_px_per_frame": round(max_speed / cfg.fps, 3),
        "placement_tries": PLACEMENT_TRIES,
        "flickr_xml": {"side": FLICKR_SIDE, "annotators": ANNOTATORS, "jitter_px": JITTER_PX},
        "splits": {k: len(v) for k, v in ids.items()},
        "sounding_counts": dict(sorted(sounding.items())),
        "clips": [clip_metadata(cfg, s, split_of[s.index]) for s in specs],
    }
    write_json(out / "synthav.json", meta)
    return ids


def load_metadata(out: str | Path) -> dict:
    """Read ``OUT/synthav.json``."""
    path = Path(out) / "synthav.json"
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise InputError(f"{path} not found: is {out} a SynthAV folder (avprep synth)?") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot be read ({exc})") from None
