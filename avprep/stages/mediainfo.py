"""Container facts without starting a process: a small MP4/MOV box reader.

Extraction must know a clip's duration before it can seek to the middle.
Asking ``ffmpeg -i`` costs a process start (about 20 ms of CPU, a quarter of
the whole per-clip budget for a video with 2 s keyframe spacing), so for
MP4/MOV/M4V files — what yt-dlp and the Flickr mirrors deliver — the header
boxes are read here directly (``moov/mvhd``, ``trak/tkhd``, ``mdia/mdhd``,
``hdlr``, ``stsd``, ``stts``, ``edts/elst``). Anything else, or a file whose boxes do not
parse, goes to :func:`avprep.ffmpeg.probe`. :func:`verify_media` uses these facts to
refuse a fetched file that is damaged or cut short (download and ingest).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import struct
from pathlib import Path

from avprep import ffmpeg
from avprep.errors import MediaError
from avprep.ffmpeg import MediaInfo, probe

log = logging.getLogger(__name__)

_MP4_SUFFIXES = {".mp4", ".m4v", ".mov", ".m4a", ".3gp"}
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}
_MAX_MOOV = 256 << 20


@dataclasses.dataclass(frozen=True)
class ClipInfo:
    """What extraction needs to know about a source file."""

    media: MediaInfo
    audio_duration: float | None = None
    video_duration: float | None = None
    frames: int | None = None
    via: str = "mp4"  # "mp4" (box reader) or "ffmpeg" (probe)
    # Length of the audio the decoder delivers (s): the track's edit list with the
    # encoder's priming and padding left out. None: unknown until decoded.
    audio_signal_duration: float | None = None
    # Samples of encoder priming the edit list skips (in the track's timescale, s).
    audio_priming: float | None = None


def clip_info(path: str | os.PathLike) -> ClipInfo:
    """Facts about ``path``: the box reader for MP4/MOV, ``ffmpeg -i`` otherwise.

    Raises :class:`avprep.errors.MediaError` (from probe) for a missing or
    undecodable file.
    """
    path = Path(path)
    if path.suffix.lower() in _MP4_SUFFIXES and path.is_file():
        try:
            info = _read_mp4(path)
        except (OSError, ValueError, struct.error, IndexError) as exc:
            log.debug("%s: box reader failed (%s); asking ffmpeg", path, exc)
            info = None
        if info is not None:
            return info
    media = probe(path)
    return ClipInfo(media=media, audio_duration=None, frames=None, via="ffmpeg")


# -- the box reader -----------------------------------------------------------
def _boxes(buf: bytes, start: int, end: int):
    """Yield (type, payload_start, payload_end) of the boxes in buf[start:end]."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, pos)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", buf, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError(f"bad box {kind!r} at {pos}")
        yield kind, pos + header, pos + size
        pos += size


def _find_moov(path: Path) -> bytes | None:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        file_size = fh.tell()
        pos = 0
        while pos + 8 <= file_size:
            fh.seek(pos)
            head = fh.read(16)
            if len(head) < 8:
                return None
            size, kind = struct.unpack_from(">I4s", head)
            header = 8
            if size == 1:
                if len(head) < 16:
                    return None
                (size,) = struct.unpack_from(">Q", head, 8)
                header = 16
            elif size == 0:
                size = file_size - pos
            if size < header:
                return None
            if kind == b"moov":
                if size > _MAX_MOOV or pos + size > file_size:
                    return None
                fh.seek(pos + header)
                return fh.read(size - header)
            pos += size
    return None


def _read_mp4(path: Path) -> ClipInfo | None:
    moov = _find_moov(path)
    if moov is None:
        return None
    movie_duration = None
    movie_timescale = None
    tracks: list[dict] = []
    for kind, s, e in _boxes(moov, 0, len(moov)):
        if kind == b"mvhd":
            version = moov[s]
            if version == 1:
                timescale, duration = struct.unpack_from(">IQ", moov, s + 20)
            else:
                timescale, duration = struct.unpack_from(">II", moov, s + 12)
            if timescale and duration not in (0, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
                movie_duration = duration / timescale
            movie_timescale = timescale or None
        elif kind == b"mvex":
            return None  # fragmented MP4: durations live in the fragments
        elif kind == b"trak":
            tracks.append(_read_trak(moov, s, e))
    video = next((t for t in tracks if t.get("handler") == b"vide"), None)
    audio = next((t for t in tracks if t.get("handler") == b"soun"), None)
    durations = [t["duration"] for t in tracks if t.get("duration")]
    duration = movie_duration or (max(durations) if durations else None)
    if not duration and not any(t.get("samples") for t in tracks):
        # a complete header that holds nothing (e.g. an encode cut at 0 s)
        return ClipInfo(media=MediaInfo(duration=0.0), via="mp4")
    if (video is None and audio is None) or not duration:
        return None
    width = height = None
    fps = None
    rotation = 0.0
    frames = None
    if video is not None:
        width, height = video.get("width"), video.get("height")
        if not width or not height:
            return None  # let ffmpeg tell
        rotation = video.get("rotation", 0.0)
        frames = video.get("samples")
        if frames and video.get("duration"):
            fps = round(frames / video["duration"], 3)
    media = MediaInfo(
        duration=duration,
        width=width,
        height=height,
        fps=fps,
        rotation=rotation,
        has_video=video is not None,
        has_audio=audio is not None,
        sample_rate=audio.get("sample_rate") if audio else None,
        audio_channels=audio.get("channels") if audio else None,
    )
    signal = priming = None
    if audio is not None:
        signal, priming = _audio_signal(audio, movie_timescale)
    return ClipInfo(
        media=media,
        audio_duration=audio.get("duration") if audio else None,
        video_duration=video.get("duration") if video else None,
        frames=frames,
        via="mp4",
        audio_signal_duration=signal,
        audio_priming=priming,
    )


def _audio_signal(track: dict, movie_timescale: int | None) -> tuple[float | None, float | None]:
    """(decoded length, priming) in s from the audio track's edit list, or (None, None).

    The track's ``mdhd`` duration counts every coded sample, the encoder's
    priming (1024 samples for AAC, Opus's pre-skip) and end padding included;
    the decoder (ffmpeg applies the edit list) delivers only the presented
    part: one edit of ``segment_duration`` (movie timescale) starting at
    ``media_time`` (track timescale). Only that plain case is trusted: no edit
    list, several edits, an empty edit (a delay) or a rate other than 1 give
    (None, None), and extraction then measures the decoded length instead.
    """
    edits = track.get("edits")
    timescale = track.get("timescale")
    if not edits or len(edits) != 1 or not timescale or not movie_timescale:
        return None, None
    segment, media_time, rate = edits[0]
    if media_time < 0 or rate != 1.0:
        return None, None
    coded = track.get("duration")
    priming = media_time / timescale
    if segment > 0:
        signal = segment / movie_timescale
    elif coded is not None:
        signal = coded - priming  # a zero segment duration means "to the end of the media"
    else:
        return None, None
    if coded is not None and signal > coded - priming + 1e-6:
        return None, None  # an edit past the media's end: trust the decoder, not the box
    return signal, priming


def _read_trak(buf: bytes, start: int, end: int) -> dict:
    out: dict = {}
    stack = [(start, end)]
    while stack:
        s0, e0 = stack.pop()
        for kind, s, e in _boxes(buf, s0, e0):
            if kind in _CONTAINERS:
                stack.append((s, e))
            elif kind == b"tkhd":
                version = buf[s]
                off = s + (4 + 8 + 8 + 4 + 4 + 8 if version == 1 else 4 + 4 + 4 + 4 + 4 + 4)
                off += 8 + 2 + 2 + 2 + 2  # reserved, layer, alternate group, volume, reserved
                a, b, _u, c, d = struct.unpack_from(">iiiii", buf, off)
                if (a, b, c, d) != (0, 0, 0, 0):
                    # sign as ffmpeg reports it ("rotation of -90 degrees")
                    out["rotation"] = round(-math.degrees(math.atan2(b, a)), 2) + 0.0
            elif kind == b"mdhd":
                version = buf[s]
                if version == 1:
                    timescale, duration = struct.unpack_from(">IQ", buf, s + 20)
                else:
                    timescale, duration = struct.unpack_from(">II", buf, s + 12)
                if timescale:
                    out["timescale"] = timescale
                    out["duration"] = duration / timescale
            elif kind == b"hdlr":
                out["handler"] = bytes(buf[s + 8 : s + 12])
            elif kind == b"stsd":
                entry = s + 8  # version/flags, entry count
                etype = bytes(buf[entry + 4 : entry + 8])
                body = entry + 8 + 6 + 2  # reserved, data reference index
                if out.get("handler") == b"vide" or etype in (b"avc1", b"hev1", b"hvc1", b"av01"):
                    w, h = struct.unpack_from(">HH", buf, body + 16)
                    out["width"], out["height"] = w, h
                else:
                    channels = struct.unpack_from(">H", buf, body + 8)[0]
                    rate = struct.unpack_from(">I", buf, body + 16)[0] >> 16
                    out["channels"], out["sample_rate"] = channels, rate
            elif kind == b"elst":
                version = buf[s]
                (count,) = struct.unpack_from(">I", buf, s + 4)
                edits = []
                pos = s + 8
                for _ in range(min(count, 64)):
                    if version == 1:
                        seg, mtime = struct.unpack_from(">Qq", buf, pos)
                        pos += 16
                    else:
                        seg, mtime = struct.unpack_from(">Ii", buf, pos)
                        pos += 8
                    rate_int, rate_frac = struct.unpack_from(">hH", buf, pos)
                    pos += 4
                    edits.append((seg, mtime, rate_int + rate_frac / 65536.0))
                out["edits"] = edits
            elif kind == b"stts":
                (count,) = struct.unpack_from(">I", buf, s + 4)
                total = 0
                for i in range(count):
                    n, _delta = struct.unpack_from(">II", buf, s + 8 + 8 * i)
                    total += n
                out["samples"] = total
    return out


# -- truncated files ------------------------------------------------------------
def mp4_cut_short(path: str | os.PathLike) -> str | None:
    """Why an MP4/MOV file is cut short, or None (no process: top-level boxes only).

    A download or copy cut off inside the media data keeps an intact header
    when ``moov`` comes first ("faststart"), so the declared duration looks
    fine; the last top-level box (``mdat``) then claims more bytes than the
    file has. Files of other containers return None.
    """
    path = Path(path)
    if path.suffix.lower() not in _MP4_SUFFIXES:
        return None
    with open(path, "rb") as fh:
        file_size = fh.seek(0, os.SEEK_END)
        pos = 0
        while pos + 8 <= file_size:
            fh.seek(pos)
            head = fh.read(16)
            size, kind = struct.unpack_from(">I4s", head)
            header = 8
            if size == 1 and len(head) >= 16:
                (size,) = struct.unpack_from(">Q", head, 8)
                header = 16
            elif size == 0:
                return None  # "to the end of the file": nothing to compare
            if size < header:
                return None  # not a box structure we understand: let ffmpeg judge
            if pos + size > file_size:
                name = kind.decode("latin-1")
                return (
                    f"file cut short: its {name!r} box ends at byte {pos + size}, "
                    f"the file has {file_size} bytes"
                )
            pos += size
    return None


def decodable_duration(path: str | os.PathLike, timeout: float = 120) -> float | None:
    """Seconds of media that can actually be read from ``path`` (a demux pass, no decode).

    The time of the last packet ffmpeg can read, every stream copied to the
    null muxer; compare it with the duration the header declares to catch a
    file cut short whose header is intact. None if ffmpeg reports no time.
    """
    from avprep import ffmpeg

    proc = ffmpeg.run(
        ["-nostats", "-i", path, "-map", "0", "-c", "copy", "-f", "null", "-",
         "-progress", "pipe:1"],
        timeout=timeout,
        what="demux pass (truncated file?)",
    )  # fmt: skip
    last = None
    for line in proc.stdout.decode("ascii", "replace").splitlines():
        if line.startswith("out_time_us="):
            value = line.split("=", 1)[1].strip()
            if value.lstrip("-").isdigit():
                last = int(value) / 1e6
    return last


def verify_media(path: Path, timeout: float = 120) -> ffmpeg.MediaInfo:
    """Probe ``path`` and decode its last second; raise MediaError if it is damaged."""
    if path.stat().st_size == 0:
        raise MediaError("downloaded file is empty")
    try:
        info = ffmpeg.probe(path, timeout=timeout)
    except MediaError as exc:
        detail = str(exc).split(": ", 1)[-1]  # drop the temporary file name
        raise MediaError(f"downloaded file is not decodable media: {detail}") from None
    if not (info.has_video or info.has_audio):
        raise MediaError("downloaded file has neither a video nor an audio stream")
    if not info.duration or info.duration <= 0:
        raise MediaError("downloaded file has zero duration")
    # A file cut short can keep an intact header (moov first): its declared duration
    # then looks fine, so compare it with what can be read, and decode the end.
    cut = mp4_cut_short(path)
    if cut:
        raise MediaError(f"truncated download: {cut}")
    readable = decodable_duration(path, timeout=timeout)
    if readable is not None and readable < info.duration - max(0.5, 0.05 * info.duration):
        raise MediaError(
            f"truncated download: {readable:.2f} s of media readable of the "
            f"{info.duration:.2f} s its header declares"
        )
    ffmpeg.run(
        ["-xerror", "-sseof", "-1", "-i", path, "-f", "null", "-"],
        timeout=timeout,
        what="verify (decode of the last second; truncated download?)",
    )
    return info
