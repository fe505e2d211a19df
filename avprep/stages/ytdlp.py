"""One yt-dlp attempt: its options, its messages, and what its errors mean.

:func:`fetch` runs yt-dlp's Python API into a work folder (a section only
for clips with a start time); :func:`classify_error` sorts a failure into
``unavailable`` (never retried) or ``failed`` (retried) with one readable
reason. yt-dlp's own messages go to our log, scrubbed of secrets.
"""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avprep import ffmpeg
from avprep.clip import Clip
from avprep.errors import DownloadError, MediaError, UnavailableError
from avprep.manifest import FAILED, UNAVAILABLE
from avprep.scrub import Scrubber

if TYPE_CHECKING:
    from avprep.stages.download import DownloadConfig

log = logging.getLogger("avprep.stages.download")

#: VGGSound clips are 10 s from their start time.
DEFAULT_SECTION = 10.0
_LEFTOVER = (".part", ".ytdl", ".temp", ".tmp")


_UNAVAILABLE = re.compile(
    r"HTTP Error (?:404|410)\b|\b(?:404|410)\b[^\n]*not found|video unavailable|"
    r"private video|has been removed|been terminated|no longer available|"
    r"is not available|isn't available|is unavailable|does not exist|copyright|"
    r"members[- ]only|join this channel|confirm your age|age[- ]restricted|inappropriate|"
    r"unsupported url|not made this video available|"
    r"premieres in|live event will begin|blocked it in your country",
    re.IGNORECASE,
)
_NOISE = re.compile(r"\x1b\[[0-9;]*m|\r|^ERROR:\s*|\[download\] Got error:\s*", re.MULTILINE)
_REPORT = re.compile(r";?\s*please report this issue.*$", re.IGNORECASE | re.DOTALL)
_CAUSED = re.compile(r"\s*\(caused by <[^>]*>\)")


def _http_status(exc: BaseException | None) -> int | None:
    """The HTTP status of the first HTTP error in ``exc``'s chain, if any."""
    seen = 0
    while exc is not None and seen < 10:
        seen += 1
        status = getattr(exc, "status", None) or getattr(exc, "code", None)
        if isinstance(status, int) and 100 <= status < 600:
            return status
        info = getattr(exc, "exc_info", None)
        nxt = getattr(exc, "cause", None) or (info[1] if info else None)
        exc = nxt or exc.__cause__ or exc.__context__
    return None


def clean_reason(text: str) -> str:
    """One readable line from a yt-dlp message."""
    text = _CAUSED.sub("", _REPORT.sub("", _NOISE.sub("", text)))
    text = " ".join(text.split())
    return text[:300] or "unknown error"


def classify_error(exc: BaseException) -> tuple[str, str]:
    """``(status, reason)`` for a failed attempt: ``unavailable`` or ``failed``."""
    if isinstance(exc, UnavailableError):
        return UNAVAILABLE, str(exc)
    if isinstance(exc, MediaError):
        return FAILED, str(exc)
    text = clean_reason(str(exc))
    status = _http_status(exc)
    if status in (404, 410):
        return UNAVAILABLE, text
    if status is not None and (status == 429 or status >= 500 or status in (401, 403, 408)):
        return FAILED, text
    if "unable to connect to proxy" in text.lower():
        m = re.search(r"\[Errno -?\d+\] ([^\"'()]+)", text)
        return FAILED, "cannot connect to the --proxy" + (f": {m.group(1).strip()}" if m else "")
    if re.search(r"bytes read, \d+ more expected", text):
        return FAILED, f"truncated download ({text})"
    if "timed out" in text.lower():
        return FAILED, f"timeout: {text}"
    m = re.search(r"ffmpeg exited with code (-?\d+)", text)
    if m:
        return FAILED, (
            f"section download failed (ffmpeg exit {m.group(1)}): "
            "network error, timeout or truncated stream"
        )
    if re.search(r"requested format is not available|no video formats found", text, re.I):
        # Usually YouTube withholding formats (throttling, tokens) or an outdated
        # yt-dlp, not a removed video: worth retrying later.
        return FAILED, text + " (no playable format offered: throttled, or update yt-dlp)"
    if "confirm you" in text.lower() and "bot" in text.lower():
        return FAILED, text + " (throttled: slow down with --rate-limit, or pass --cookies)"
    if _UNAVAILABLE.search(text):
        return UNAVAILABLE, text
    return FAILED, text


class _YdlLogger:
    """yt-dlp's messages go to our log, scrubbed; errors are recorded by us instead."""

    def __init__(self, scrub: Scrubber) -> None:
        self.scrub = scrub

    def debug(self, msg: str) -> None:
        if log.isEnabledFor(logging.DEBUG) and not msg.startswith("[debug] "):
            log.debug("yt-dlp: %s", self.scrub(msg))

    info = debug

    def warning(self, msg: str) -> None:
        log.info("yt-dlp: %s", self.scrub(msg))

    def error(self, msg: str) -> None:
        log.debug("yt-dlp: %s", self.scrub(msg))


def section(clip: Clip, cfg: DownloadConfig) -> tuple[float, float] | None:
    """``(start, end)`` in seconds of the part to fetch; None for a whole file."""
    if clip.start is None:
        return None
    if cfg.section is not None:
        return clip.start, clip.start + cfg.section
    return clip.start, clip.end if clip.end is not None else clip.start + DEFAULT_SECTION


def _use_ffmpeg(binary: str) -> None:
    # yt-dlp's Python API honours ``ffmpeg_location`` for post-processing but
    # its ffmpeg *downloader* (needed for sections) only looks at a context
    # variable that yt-dlp's own CLI sets; set it too.
    with contextlib.suppress(Exception):
        from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor

        FFmpegPostProcessor._ffmpeg_location.set(binary)


def ydl_options(clip: Clip, cfg: DownloadConfig, workdir: Path, scrub: Scrubber) -> dict[str, Any]:
    binary = ffmpeg.ffmpeg_binary()
    _use_ffmpeg(binary)
    opts: dict[str, Any] = {
        "outtmpl": {"default": str(workdir / "media.%(ext)s")},
        "format": cfg.format,
        "merge_output_format": "mp4/mkv",
        "noplaylist": True,
        "playlist_items": "1",
        # Our loop owns retries (back-off, rate limit, attempt count in the manifest).
        "retries": 0,
        "extractor_retries": 0,
        "file_access_retries": 0,
        "fragment_retries": 3,
        "socket_timeout": cfg.timeout,
        "ffmpeg_location": binary,
        "external_downloader_args": {
            # ffmpeg (section downloads) would otherwise wait forever on a
            # stalled server, and keep going on a cut-off stream.
            "ffmpeg_i": ["-rw_timeout", str(int(cfg.timeout * 1_000_000))],
            "ffmpeg_o": ["-xerror"],
        },
        "quiet": True,
        "no_warnings": False,
        "noprogress": True,
        "color": {"stdout": "no_color", "stderr": "no_color"},
        "logger": _YdlLogger(scrub),
        "cachedir": False,
        "overwrites": True,
        "continuedl": False,
        "updatetime": False,
    }
    if cfg.proxy:
        opts["proxy"] = cfg.proxy
    span = section(clip, cfg)
    if span is not None:
        from yt_dlp.utils import download_range_func

        opts["download_ranges"] = download_range_func(None, [span])
        opts["force_keyframes_at_cuts"] = cfg.exact_cuts
    return opts


def fetch(clip: Clip, cfg: DownloadConfig, workdir: Path, scrub: Scrubber) -> tuple[Path, dict]:
    """One yt-dlp attempt into ``workdir``; return the file and yt-dlp's info."""
    import yt_dlp

    opts = ydl_options(clip, cfg, workdir, scrub)
    span = section(clip, cfg)
    beyond: list[str] = []

    def section_exists(info: dict, *, incomplete: bool = False) -> str | None:
        # A start time past the end of the video: nothing to fetch, ever.
        length = info.get("duration")
        if span and isinstance(length, (int, float)) and 0 < length <= span[0]:
            beyond.append(f"section starts at {span[0]:g} s but the video is {length:g} s long")
            return beyond[-1]
        return None

    opts["match_filter"] = section_exists
    with yt_dlp.YoutubeDL(opts) as ydl:
        if cfg.cookies:
            # Loaded here rather than via ``cookiefile`` so yt-dlp never saves
            # the jar back over the user's file (many workers would race on it).
            ydl.cookiejar.load(cfg.cookies, ignore_discard=True, ignore_expires=True)
        info = ydl.extract_info(clip.url, download=True) or {}
    if beyond:
        raise UnavailableError(beyond[0])
    if info.get("entries"):
        info = next(iter(info["entries"]), None) or {}
    paths = [
        Path(d["filepath"]) for d in info.get("requested_downloads") or [] if d.get("filepath")
    ]
    paths = [p for p in paths if p.is_file()]
    if not paths:
        paths = sorted(
            (p for p in workdir.iterdir() if p.is_file() and p.suffix not in _LEFTOVER),
            key=lambda p: p.stat().st_size,
            reverse=True,
        )
    if not paths:
        raise DownloadError("yt-dlp finished but wrote no file")
    return paths[0], info
