"""One clip -> several (frame, its own audio) pairs: AVE / AudioSet-instrument's 1 fps pairs.

Multi-Source trains and evaluates on AVE and AudioSet-instrument with every
1 fps frame of a 10 s clip paired with its own second of audio (frame ``i``
with audio ``[i, i + 1)`` s). ``avprep extract --frame-at fps:1`` writes the
frames (``frames/<id>/NNNN.jpg`` with their times); :func:`split_pairs` turns
such an extraction into a new extraction folder where every pair is a clip of
its own, ``<id>.tNN`` (NN = the frame's index, which is its second at 1 fps),
so ``avprep pack-h5``, the readers and the engine take the pairs unchanged.

The audio window of frame ``i`` at time ``t_i`` starts at ``floor(t_i)``
seconds (the original's per-second segmentation; ``--window centred`` takes
``t_i - s/2`` instead) and lasts ``seconds``. It is cut from the clip's stored
audio, so extract with ``--audio-window start --audio-seconds`` covering the clip
(10 for AVE).
A window that leaves the stored audio fails that pair with its reason; it is
never padded or shifted. The spectrogram of the extraction's profile is
recomputed on each window. Resumable: pairs already written are kept.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from avprep.atomic import atomic_path
from avprep.errors import ConfigError, InputError
from avprep.manifest import FAILED, MANIFEST_NAME, OK, ClipRecord, Manifest
from avprep.stages.audio import read_wav, write_wav

log = logging.getLogger(__name__)

WINDOWS = ("aligned", "centred")


def pair_id(clip_id: str, index: int) -> str:
    return f"{clip_id}.t{index:02d}"


def split_pair_id(pid: str) -> tuple[str, int] | None:
    """``(clip id, frame index)`` of a ``<id>.tNN`` pair id; None for any other id."""
    clip, sep, index = pid.rpartition(".t")
    if not sep or not clip or not index.isdigit():
        return None
    return clip, int(index)


def window_start(t: float, seconds: float, window: str) -> float:
    if window == "aligned":
        return float(math.floor(t + 1e-6))
    if window == "centred":
        return t - seconds / 2.0
    raise ConfigError(f"window {window!r}; valid: {', '.join(WINDOWS)}")


def _pairs_of(
    src: Path, out: Path, rec: ClipRecord, seconds: float, window: str, spectrogram: str | None
) -> list[ClipRecord]:
    cid, meta, outputs = rec.clip_id, rec.meta, rec.outputs
    times = meta.get("frame_times")
    if not outputs.get("frames") or not isinstance(times, list):
        raise InputError(f"{cid}: no sampled frames (extract with --frame-at fps:1)")
    if not outputs.get("audio"):
        raise InputError(f"{cid}: no audio output")
    frames = sorted((src / outputs["frames"]).glob("*.jpg"))
    if len(frames) != len(times):
        raise InputError(f"{cid}: {len(frames)} frame files but {len(times)} frame times")
    samples, rate = read_wav(src / outputs["audio"])
    a0 = float(meta.get("audio_start", 0.0))
    n = int(round(seconds * rate))
    usable = samples.shape[0]
    if meta.get("duration"):  # a short track was tiled or padded to the window: not real audio
        usable = min(usable, int(math.floor((float(meta["duration"]) - a0) * rate)))
    out_recs = []
    for i, (frame, t) in enumerate(zip(frames, times)):
        pid = pair_id(cid, i)
        start = window_start(float(t), seconds, window)
        s0 = int(round((start - a0) * rate))
        if s0 < 0 or s0 + n > usable:
            have = f"{a0:.2f}-{a0 + usable / rate:.2f} s"
            out_recs.append(
                ClipRecord(
                    pid,
                    FAILED,
                    error=f"audio window {start:.2f}-{start + seconds:.2f} s is outside the stored "
                    f"audio ({have}); extract with a longer --audio-seconds",
                )
            )
            continue
        piece = samples[s0 : s0 + n]
        outs = {"frame": f"frames/{pid}.jpg", "audio": f"audio/{pid}.wav"}
        with atomic_path(out / outs["frame"]) as tmp:
            shutil.copyfile(frame, tmp)
        write_wav(out / outs["audio"], piece, rate)
        pmeta: dict[str, Any] = {
            "frame_time": float(t),
            "audio_start": round(start, 6),
            "audio_seconds": seconds,
            "sample_rate": int(rate),
            "parent": cid,
            "pair_index": i,
            **{k: meta[k] for k in ("width", "height", "src_width", "src_height") if k in meta},
        }
        if spectrogram:
            from avprep.spectrogram import compute
            from avprep.stages.flow import write_npy

            spec = compute(spectrogram, piece, rate)
            outs["spectrogram"] = f"spectrograms/{spectrogram}/{pid}.npy"
            write_npy(out / outs["spectrogram"], spec)
            pmeta["spectrogram_shape"] = list(spec.shape)
        out_recs.append(ClipRecord(pid, OK, outputs=outs, meta=pmeta))
    return out_recs


def split_pairs(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    seconds: float = 1.0,
    window: str = "aligned",
    progress: bool = True,
    ids: Sequence[str] | None = None,
) -> dict[str, int]:
    """Write the pairs of every clip of ``in_dir`` into ``out_dir``; returns counts.

    ``ids``: only these clips (e.g. AVE's ``trainSet.txt``: one pairs folder per
    split); ``counts["not_extracted"]`` says how many of them the extraction lacks.
    """
    from tqdm import tqdm

    src, out = Path(in_dir), Path(out_dir)
    if src.resolve() == out.resolve():
        raise ConfigError("--out must be another folder than --in")
    if seconds <= 0:
        raise ConfigError(f"--seconds must be > 0, got {seconds}")
    window_start(0.0, seconds, window)  # validates the name
    if not (src / MANIFEST_NAME).is_file():
        raise InputError(f"{src} is not an extraction folder (no {MANIFEST_NAME})")
    source = Manifest(src / MANIFEST_NAME)
    header = source.header
    params = dict(header.get("profile_params") or {})
    spectrogram = params.get("spectrogram") or None
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out / MANIFEST_NAME)
    if not manifest.header:
        params.update(audio_seconds=seconds, frame_at="pairs", pair_window=window)
        manifest.write_header(
            profile=header.get("profile"),
            profile_params=params,
            tools=header.get("tools"),
            pairs_of=str(src.resolve()),
        )
    counts = {"clips": 0, "pairs": 0, "kept": 0, "failed": 0, "skipped_clips": 0}
    wanted = None if ids is None else set(ids)
    done_by_parent: dict[str, int] = {}
    for r in manifest.records():
        if r.status == OK and r.meta.get("parent"):
            done_by_parent[r.meta["parent"]] = done_by_parent.get(r.meta["parent"], 0) + 1
    records = [r for r in source.records() if wanted is None or r.clip_id in wanted]
    if wanted is not None:
        have = {r.clip_id for r in records if r.status == OK}
        counts["not_extracted"] = len(wanted - have)
    for rec in tqdm(records, unit="clip", disable=not progress):
        if rec.status != OK:
            continue
        counts["clips"] += 1
        first = manifest.get(pair_id(rec.clip_id, 0))
        if first is not None and first.status == OK and (out / first.outputs["frame"]).is_file():
            counts["kept"] += done_by_parent.get(rec.clip_id, 0)
            continue
        try:
            made = _pairs_of(src, out, rec, seconds, window, spectrogram)
        except InputError as exc:
            log.warning("%s", exc)
            counts["skipped_clips"] += 1
            manifest.append(ClipRecord(rec.clip_id, FAILED, error=str(exc)))
            continue
        for r in made:
            manifest.append(r)
            counts["pairs" if r.status == OK else "failed"] += 1
    return counts
