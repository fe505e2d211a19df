"""A released test folder (frames + audio files, no videos) as pack-h5 input.

The Flickr-SoundNet test set circulates as the 5k annotated clips' files:
``5k_labeled/Data/frames/<id>.jpg`` and ``5k_labeled/Data/audio/<id>.wav``
(or ``.mp3``/``.flac``). SSPL scores exactly those files: it opens the JPEG
itself (``Image.open``, then its test transform: Resize(224, bicubic) and
CenterCrop(224), aspect kept) and loads the WAV with ``librosa.load(sr=16000,
mono=True)``, centre 3 s, tiled when shorter, min-max normalised.

:func:`released_to_extraction` turns such a folder into an ``avprep
extract``-style folder that ``pack-h5`` packs like any other: the frame's
bytes are kept as released (no re-encoding, native size), the audio is decoded
by ffmpeg to mono at the profile's rate (libswresample instead of librosa's
resampler), cut to the profile's window and stored as WAV with its
spectrogram. ``avprep pack-h5 --in <released folder>`` calls it on its own
(into ``<out>/.released-input/``, resumable).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from avprep import ffmpeg
from avprep.atomic import write_bytes
from avprep.errors import HostileIdError, InputError
from avprep.ids import check_id
from avprep.manifest import FAILED, MANIFEST_NAME, OK, ClipRecord, Manifest, is_done
from avprep.profiles import get_profile
from avprep.spectrogram import compute as compute_spectrogram
from avprep.stages import audio as audio_stage
from avprep.stages.audio_window import SignalFacts, plan_window
from avprep.stages.flow import write_npy

log = logging.getLogger(__name__)

FRAME_SUFFIXES = (".jpg", ".jpeg")
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac")


def find_released(folder: str | os.PathLike) -> tuple[Path, Path] | None:
    """``(frames dir, audio dir)`` of a released folder (``.`` or ``Data/``), else None."""
    root = Path(folder)
    if (root / MANIFEST_NAME).is_file():
        return None
    for base in (root, root / "Data"):
        if (base / "frames").is_dir() and (base / "audio").is_dir():
            return base / "frames", base / "audio"
    return None


def _by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith("."):
            out.setdefault(p.stem, p)
    return out


def _decode_audio(path: Path, rate: int) -> np.ndarray:
    proc = ffmpeg.run(
        ["-i", os.fspath(path), "-map", "0:a:0", "-ac", "1", "-ar", str(rate),
         "-c:a", "pcm_s16le", "-f", "s16le", "pipe:1"],
        what=path.name,
    )  # fmt: skip
    return np.frombuffer(proc.stdout, dtype="<i2")


def released_to_extraction(
    folder: str | os.PathLike, out_dir: str | os.PathLike, *, profile: str = "sspl"
) -> tuple[Path, int, int]:
    """Write the extraction folder of a released folder; ``(out, ok, failed)``.

    A frame without audio (or the reverse), an unsafe id, or audio that does
    not decode is a failed record with the reason. Clips already done are kept.
    """
    found = find_released(folder)
    if found is None:
        raise InputError(f"{folder}: not a released folder (frames/ and audio/, or Data/...)")
    frames_dir, audio_dir = found
    prof = get_profile(profile)
    rate = int(prof.sample_rate or 0)
    if not rate:
        raise InputError(f"profile {profile!r} keeps the native rate; pick one with a fixed rate")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out / MANIFEST_NAME)
    params = {**prof.params(), "resize": "none (released frame bytes kept)"}
    if not manifest.header:
        manifest.write_header(
            profile=f"released+{prof.name}",
            profile_params=params,
            source=os.fspath(Path(folder).resolve()),
        )
    frames = _by_stem(frames_dir, FRAME_SUFFIXES)
    audios = _by_stem(audio_dir, AUDIO_SUFFIXES)
    ok = failed = 0
    for stem in sorted(set(frames) | set(audios)):
        try:
            cid = check_id(stem)
        except HostileIdError as exc:
            log.warning("%s", exc)
            failed += 1
            continue
        if is_done(manifest.get(cid), out):
            ok += 1
            continue
        if cid not in frames or cid not in audios:
            what = "audio" if cid not in audios else "frame"
            manifest.append(ClipRecord(cid, FAILED, error=f"{cid}: no {what} file"))
            failed += 1
            continue
        try:
            rec = _one(cid, frames[cid], audios[cid], out, prof, rate)
        except (InputError, OSError) as exc:
            rec = ClipRecord(cid, FAILED, error=f"{cid}: {exc}")
        except Exception as exc:  # noqa: BLE001 - e.g. MediaError from ffmpeg; one clip only
            rec = ClipRecord(cid, FAILED, error=f"{cid}: {exc}")
        manifest.append(rec)
        ok += rec.ok
        failed += not rec.ok
    return out, ok, failed


def _one(cid: str, frame: Path, audio: Path, out: Path, prof, rate: int) -> ClipRecord:
    data = frame.read_bytes()
    if data[:2] != b"\xff\xd8":
        raise InputError(f"{frame.name} is not a JPEG")
    raw = _decode_audio(audio, rate)
    if raw.size == 0:
        raise InputError(f"{audio.name} decoded to no samples")
    signal = SignalFacts(samples=int(raw.size), rate=rate, source="decoded")
    w = plan_window(prof.audio_window, prof.audio_seconds, signal, None)
    n = int(round(prof.audio_seconds * rate))
    samples = audio_stage.fit_length(raw[w.start :], n, prof.short_audio)
    write_bytes(out / "frames" / f"{cid}.jpg", data)
    audio_stage.write_wav(out / "audio" / f"{cid}.wav", samples, rate)
    outputs = {"frame": f"frames/{cid}.jpg", "audio": f"audio/{cid}.wav"}
    meta = {
        "source": os.fspath(frame),
        "audio_source": os.fspath(audio),
        "sample_rate": rate,
        "audio_start": round(w.start_seconds, 6),
        "audio_seconds": prof.audio_seconds,
    }
    if prof.spectrogram:
        spec = compute_spectrogram(prof.spectrogram, samples, rate)
        write_npy(out / "spectrograms" / prof.spectrogram / f"{cid}.npy", spec)
        outputs["spectrogram"] = f"spectrograms/{prof.spectrogram}/{cid}.npy"
    return ClipRecord(cid, OK, outputs=outputs, meta=meta)
