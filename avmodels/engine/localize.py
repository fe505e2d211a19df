"""Run a trained model on any video: ``avmodels localize``.

A user's video is prepared exactly as the model's training data was:

- *which extraction*: the training stores' extraction profile and every
  parameter of it (frame choice and size, audio window, sample rate,
  spectrogram front end, flow), as ``avmodels train`` records it in each
  model file (``meta["extraction"]``, see :func:`training_extraction`). A
  model file written before that record existed is looked up through the
  ``run.json`` beside it (the stores it names, if they are still there);
  with neither (an imported paper checkpoint) the method's own profile
  (``Method.profile``) is used, which is what the originals trained on.
  A record localize cannot reproduce (two training stores extracted
  differently, a parameter or front end this avprep does not know, a
  modality the profile does not produce) is a :class:`ConfigError`, never a
  silently different input.
- *how it was read back*: a native store holds spectrograms and flow as
  float16 and frames as JPEG decoded by its reader, SSPL's layout holds
  256-px float frames and min-max normalised audio; the sample is built the
  same way (with the store's own functions), so the model sees the values
  the training loader gave it. The method's ``sample_transform(train=False)``
  then does the rest (config-level resizing, ``data.spectrogram=audio``
  front ends, tiling to ``data.audio_seconds``) as in training.

``--at T`` takes the frame at T seconds and the audio window centred on it;
without it, the recorded profile's own choice (e.g. the middle frame and the
centre of the track). The map is drawn over the frame the model saw, resized
back to the video's aspect ratio.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate
from tqdm.auto import tqdm

from avprep.atomic import atomic_path
from avprep.errors import AvprepError, ConfigError, InputError, MediaError
from avprep.store.layouts import sample_layout

log = logging.getLogger(__name__)


@dataclass
class Localization:
    time: float | None
    frame: np.ndarray  # RGB uint8 as the model saw it, resized to the source aspect
    map: np.ndarray  # (h, w) float32, the model's raw map


@dataclass(frozen=True)
class TrainingInput:
    """How a model's inputs were prepared: the extraction profile and the store layout."""

    profile: Any  # avprep.profiles.Profile
    layout: str  # native | sspl | "" (unknown: the extraction's files as they are)
    source: str  # where this was learnt (for messages)


# -- what the training data was ---------------------------------------------------
def dataset_extraction(ds: Any) -> dict[str, Any]:
    """``{"layout", "profile", "params"}`` of one opened store (``params`` None if unknown);
    the store's layout knows where it records them (``avprep.store.layouts``)."""
    from avprep.store.layouts import layout_of_dataset

    return layout_of_dataset(getattr(ds, "attrs", None) or {}).recorded_extraction(ds)


def training_extraction(sources: Any) -> list[dict[str, Any]]:
    """The distinct extractions of the training stores (``avmodels.data.Sources``).

    ``avmodels train`` stores this list in every model file's
    ``meta["extraction"]`` so that ``localize`` prepares a video as the
    training data was prepared.
    """
    out: list[dict[str, Any]] = []
    for ds in getattr(sources, "datasets", [sources]):
        rec = dataset_extraction(ds)
        if rec not in out:
            out.append(rec)
    return out


def _from_run_json(model_file: Path, method: str) -> tuple[list[dict[str, Any]], str] | None:
    """Older model files: the extraction of the stores the ``run.json`` beside them names."""
    from avprep.store import open_dataset

    run_json = model_file.parent / "run.json"
    try:
        info = json.loads(run_json.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(info, dict) or info.get("method") != method or not info.get("data"):
        return None
    recs: list[dict[str, Any]] = []
    for path in info["data"]:
        try:
            rec = dataset_extraction(open_dataset(path))
        except (AvprepError, OSError) as exc:
            log.warning("%s: cannot read the training store %s (%s)", run_json, path, exc)
            continue
        if rec not in recs:
            recs.append(rec)
    return recs, f"the training stores named in {run_json}"


def _profile_of(params: dict[str, Any], where: str) -> Any:
    from avprep.profiles import Profile

    names = {f.name for f in dataclasses.fields(Profile)}
    unknown = sorted(set(params) - names)
    if unknown:
        raise ConfigError(
            f"{where}: the model was trained on data extracted with profile parameter(s) "
            f"{', '.join(unknown)} that this avprep does not know (upgrade avprep)"
        )
    try:
        return Profile(**{"name": "recorded", **params})
    except (AvprepError, TypeError) as exc:
        raise ConfigError(f"{where}: cannot reproduce the training extraction: {exc}") from exc


def _alike(rec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    params = {k: v for k, v in (rec.get("params") or {}).items() if k != "name"}
    return str(rec.get("layout") or ""), params


def training_input(model_file: str | os.PathLike, obj: dict[str, Any], model: Any) -> TrainingInput:
    """How to prepare a video for the model in ``model_file`` (``obj``: its content)."""
    from avprep.profiles import get_profile

    model_file = Path(model_file)
    meta = obj.get("meta") or {}
    recs, where = meta.get("extraction"), f"{model_file}"
    if recs is None:
        found = _from_run_json(model_file, str(obj.get("method")))
        recs, where = found if found is not None else ([], where)
    if not isinstance(recs, list) or not all(isinstance(r, dict) for r in recs):
        raise ConfigError(f"{model_file}: malformed extraction record {recs!r}")
    known: list[dict[str, Any]] = []
    for rec in recs:  # a profile's name changes nothing extracted: stores alike but for it agree
        if rec.get("params") and _alike(rec) not in [_alike(k) for k in known]:
            known.append(rec)
    if len(known) > 1:
        a, b = _alike(known[0])[1], _alike(known[1])[1]
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        raise ConfigError(
            f"{where}: the model was trained on stores extracted differently "
            f"(they differ in {', '.join(diff) or 'layout'}); localize cannot prepare a video "
            "like both"
        )
    if known:
        if any(not r.get("params") for r in recs):
            log.warning(
                "%s: some training stores record no extraction; using the one that does", where
            )
        rec = known[0]
        layout = str(rec.get("layout") or "")
        try:
            sample_layout(layout)  # native | sspl | "" (the extraction's files as they are)
        except ConfigError:
            raise ConfigError(f"{where}: unknown store layout {layout!r}") from None
        profile = _profile_of(dict(rec["params"]), where)
        info = TrainingInput(profile, layout, where)
    else:
        if not model.profile:
            raise ConfigError(
                f"{model_file}: the training extraction is not recorded and method "
                f"{obj.get('method')} names no extraction profile"
            )
        # an imported paper checkpoint was trained on the paper's preprocessing, which is
        # the method's profile; anything else should have said what it was trained on
        say = log.info if "imported_from" in meta and not recs else log.warning
        say(
            "%s: the training extraction is not recorded; preparing the video with "
            "method %s's profile %r",
            model_file,
            obj.get("method"),
            model.profile,
        )
        info = TrainingInput(get_profile(model.profile), "", f"method {obj.get('method')}")
    _check_modalities(info, model)
    return info


def _check_modalities(info: TrainingInput, model: Any) -> None:
    need = set(model.required_inputs())
    p = info.profile
    if "spectrogram" in need and p.spectrogram is None:
        raise ConfigError(
            f"{info.source}: the model reads a stored spectrogram but its training "
            "extraction computed none"
        )
    if "flow" in need and p.flow is None:
        raise ConfigError(
            f"{info.source}: the model reads optical flow but its training extraction computed none"
        )


# -- one sample, as the training loader gave it --------------------------------------
def _sample_from_record(record: Any, out: Path, layout: str = "") -> dict[str, Any]:
    import soundfile as sf

    stored = sample_layout(layout)  # how the training store's reader gave each part
    outputs = record.outputs
    frame_file = out / outputs["frame"]
    frame = stored.extracted_frame(frame_file)
    if frame is None:
        raise InputError(f"cannot decode the extracted frame {frame_file}")
    sample: dict[str, Any] = {
        "clip_id": record.clip_id,
        "index": 0,
        "frame": frame,
        "frame_time": record.meta.get("frame_time"),
    }
    if "audio" in outputs:
        pcm, rate = sf.read(str(out / outputs["audio"]), dtype="int16", always_2d=False)
        audio = pcm.astype(np.float32) / np.float32(32768.0)
        sample["audio"] = stored.stored_audio(audio)
        sample["sample_rate"] = int(rate)
    for key in ("spectrogram", "flow"):
        if key in outputs:
            arr = np.load(out / outputs[key], allow_pickle=False)
            sample[key] = stored.stored_array(arr).astype(np.float32)
    return sample


def localize_video(
    model_file: str | os.PathLike,
    video: str | os.PathLike,
    times: Sequence[float | None] = (None,),
    *,
    device: str = "auto",
    progress: bool = True,
    sets: Sequence[str] = (),
) -> list[Localization]:
    """Maps of the model in ``model_file`` at each time (None: the training profile's frame).

    ``sets``: ``--set key=value`` changes to the model file's config.
    """
    from avmodels.engine.checkpoint import build_model
    from avmodels.engine.distributed import pick_device
    from avprep.stages.extract import extract_clip

    video = Path(video)
    if not video.is_file():
        raise InputError(f"video not found: {video}")
    dev = pick_device(device)
    model, obj = build_model(model_file, dev, sets)
    prep = training_input(model_file, obj, model)
    need = set(model.required_inputs())
    # what the model does not read is not computed (it costs time, changes nothing)
    base = prep.profile.with_overrides(
        spectrogram=None if "spectrogram" in need else "none",
        flow=None if "flow" in need else "none",
    )
    log.info("preparing %s as %s (%s)", video.name, base.name, prep.source)
    transform = model.sample_transform(train=False)
    results = []
    with tempfile.TemporaryDirectory(prefix="avmodels-localize-") as tmp:
        for i, t in enumerate(tqdm(times, desc="localize", unit="frame", disable=not progress)):
            over = {} if t is None else {"frame_at": f"{float(t):.6f}", "audio_window": "at-frame"}
            profile = base.with_overrides(**over)
            work = Path(tmp) / f"t{i:05d}"
            try:
                record = extract_clip(video, work, profile, clip_id=f"frame{i:05d}")
            except MediaError as exc:  # name the video, not the internal clip id
                reason = str(exc).split(": ", 1)[-1]
                raise MediaError(f"{video}: {reason}") from None
            sample = _sample_from_record(record, work, prep.layout)
            batch = default_collate([transform(sample)])
            batch = model.batch_to_device(batch, dev, False)
            with torch.no_grad():
                m = model.localization_map(batch)[0].float().cpu().numpy()
            frame = sample["frame"]
            sw, sh = record.meta.get("src_width"), record.meta.get("src_height")
            if sw and sh and frame.shape[1] * sh != frame.shape[0] * sw:
                import cv2

                h = frame.shape[0]
                w = max(1, round(h * sw / sh))
                frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
            results.append(Localization(record.meta.get("frame_time"), frame, m))
    return results


def overlay(frame: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The map min-max normalised, bilinearly upsampled, JET-coloured and blended (RGB)."""
    import cv2

    h, w = frame.shape[:2]
    m = heat.astype(np.float32)
    lo, hi = float(m.min()), float(m.max())
    m = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
    m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(np.uint8(np.clip(m, 0, 1) * 255), cv2.COLORMAP_JET)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
    return np.uint8(np.clip((1 - alpha) * frame + alpha * colour, 0, 255))


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    import cv2

    with atomic_path(path, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise InputError(f"cannot write {path}")
    return Path(path)


def write_mp4(
    path: str | os.PathLike,
    frames: Sequence[np.ndarray],
    fps: float,
    audio_from: str | os.PathLike | None = None,
    start: float = 0.0,
) -> Path:
    """An H.264 video of ``frames`` (with the source's audio from ``start`` when given)."""
    from avprep import ffmpeg

    if not frames:
        raise InputError("no frames to write")
    h, w = frames[0].shape[:2]
    w2, h2 = w - w % 2, h - h % 2  # yuv420p needs even sizes
    raw = b"".join(np.ascontiguousarray(f[:h2, :w2]).tobytes() for f in frames)
    with atomic_path(path, suffix=".mp4") as tmp:
        args = ["-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w2}x{h2}",
                "-framerate", f"{fps}", "-i", "pipe:0"]  # fmt: skip
        if audio_from is not None:
            args += ["-ss", f"{start:.6f}", "-i", str(audio_from), "-map", "0:v", "-map", "1:a?"]
            args += ["-c:a", "aac", "-shortest"]
        args += ["-c:v", "libx264", "-pix_fmt", "yuv420p", str(tmp)]
        ffmpeg.run(args, what=f"write {Path(path).name}", input_bytes=raw)
    return Path(path)
