"""Download stage: fetch clips with yt-dlp's Python API into one folder.

Each clip becomes ``OUT/<clip_id>.<ext>`` and one record in
``OUT/manifest.jsonl``. How the pieces fit:

* **Sections.** A clip with a start time (VGGSound: ``<ytid>_<start>``) is
  fetched as a section only (``download_ranges``: ffmpeg reads just
  ``[start, start + section]``, 10 s by default); clips without one (Flickr
  SoundNet URLs, plain http(s) URLs) are fetched whole.
* **Atomic files.** Every attempt works in its own ``OUT/.tmp-<clip_id>-*``
  folder; the file is verified (``avprep.ffmpeg.probe`` plus a decode of the
  last second, which catches truncated files whose header looks fine) and only
  then renamed onto its final name. A killed run leaves only ``.tmp-*``
  entries, which the next run sweeps before it starts.
* **Errors.** ``unavailable`` (404/410, private, removed, age-gated, no media)
  is never retried; ``failed`` (timeouts, 5xx, 429, truncated or undecodable
  files, throttling) is retried with exponential back-off and jitter.
* **Rate limit.** All workers take start slots from one file
  (``OUT/.ratelimit``) under an exclusive ``flock``: each attempt reserves the
  next free slot (slots are ``60 / N`` seconds apart for ``N``/min) and sleeps
  until it. This needs no extra process and holds for every worker process on
  one machine (loky); on a Dask cluster the limit holds per machine when OUT
  is on a local disk (``flock`` over NFS is not reliable).
* **Secrets.** The proxy URL and the cookies file (path and cookie values) are
  scrubbed from every message that reaches a log or the manifest. Cookies are
  loaded into yt-dlp's cookie jar directly, so yt-dlp never writes the user's
  cookies file back.
* **Resume.** A rerun skips clips whose ``ok`` record still has its file (of
  the recorded size); ``retry_failed`` retries ``failed``, ``unavailable`` and
  ``skipped`` ones. One run at a time per folder (``OUT/.download.lock``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import random
import re
import shutil
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from avprep import ffmpeg
from avprep.atomic import TMP_PREFIX, cleanup_temps
from avprep.diskfull import RETRYABLE, disk_full_path
from avprep.errors import (
    AvprepError,
    ConfigError,
    DownloadError,
    HostileIdError,
    InputError,
    MediaError,
    UnavailableError,
)
from avprep.ids import check_id, split_vggsound_id
from avprep.lock import folder_lock, lock_name
from avprep.manifest import (
    FAILED,
    MANIFEST_NAME,
    OK,
    SKIPPED,
    UNAVAILABLE,
    ClipRecord,
    Manifest,
    is_done,
)
from avprep.runner import retryable_record
from avprep.stages.mediainfo import decodable_duration, mp4_cut_short

log = logging.getLogger(__name__)

LOCK_NAME = lock_name("download")
RATE_NAME = ".ratelimit"
#: VGGSound clips are 10 s from their start time.
DEFAULT_SECTION = 10.0
#: Small files suffice for 224-256 px frames; fall back to whatever exists.
DEFAULT_FORMAT = "bv*[height<=480]+ba/b[height<=480]/bv*+ba/b"
YOUTUBE_URL = "https://www.youtube.com/watch?v={}"
_EXT = re.compile(r"^[A-Za-z0-9]{1,8}$")
_LEFTOVER = (".part", ".ytdl", ".temp", ".tmp")


# --------------------------------------------------------------------------- config


@dataclasses.dataclass(frozen=True)
class DownloadConfig:
    """Options of one download run (the same for every clip).

    ``section``: length in seconds of the section fetched for clips with a
    start time; ``None`` keeps a clip's own ``end`` or else 10 s.
    ``rate_limit``: attempts started per minute, shared by all workers.
    ``proxy`` and ``cookies`` are never shown in ``repr`` or logs.
    """

    out: Path
    section: float | None = None
    retries: int = 3
    backoff: float = 2.0
    backoff_cap: float = 60.0
    timeout: float = 30.0
    rate_limit: float | None = None
    format: str = DEFAULT_FORMAT
    exact_cuts: bool = False
    proxy: str | None = dataclasses.field(default=None, repr=False)
    cookies: str | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        if self.section is not None and not (0 < self.section <= 24 * 3600):
            raise ConfigError(f"--section must be a positive number of seconds, not {self.section}")
        if self.retries < 0:
            raise ConfigError(f"--retries must be >= 0, not {self.retries}")
        if self.timeout <= 0:
            raise ConfigError(f"--timeout must be > 0 seconds, not {self.timeout}")
        if self.backoff < 0 or self.backoff_cap < 0:
            raise ConfigError("--backoff must be >= 0 seconds")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ConfigError(f"--rate-limit must be > 0 per minute, not {self.rate_limit}")
        if self.proxy is not None:
            parts = urllib.parse.urlsplit(self.proxy)
            if parts.scheme not in ("http", "https", "socks4", "socks4a", "socks5", "socks5h"):
                raise ConfigError(
                    "--proxy must be a URL such as http://host:port or socks5://host:port"
                )
        if self.cookies is not None:
            path = Path(self.cookies).expanduser()
            if not path.is_file():
                # The path itself may be sensitive: do not echo it.
                raise ConfigError("the --cookies file does not exist or is not a file")
            object.__setattr__(self, "cookies", str(path.resolve()))

    def public(self) -> dict[str, Any]:
        """What the manifest header records: no proxy, no cookies path."""
        return {
            "section": self.section,
            "retries": self.retries,
            "backoff": self.backoff,
            "timeout": self.timeout,
            "rate_limit_per_min": self.rate_limit,
            "format": self.format,
            "exact_cuts": self.exact_cuts,
            "proxy": self.proxy is not None,
            "cookies": self.cookies is not None,
        }


def parse_rate(text: str | float | None) -> float | None:
    """``"30"``, ``"30/min"``, ``"0.5/s"``, ``"600/h"`` -> attempts per minute."""
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)):
        return float(text)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|m|min|h|hour))?\s*", text)
    if not m:
        raise ConfigError(f"bad --rate-limit {text!r}: use N/min, N/s or N/h (e.g. 30/min)")
    per = {"s": 60.0, "sec": 60.0, None: 1.0, "m": 1.0, "min": 1.0, "h": 1 / 60, "hour": 1 / 60}
    value = float(m.group(1)) * per[m.group(2)]
    if value <= 0:
        raise ConfigError("--rate-limit must be more than 0")
    return value


# --------------------------------------------------------------------------- secrets


class Scrubber:
    """Removes proxy credentials and cookie facts from text before it is shown."""

    _USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a URL is removed before the password inside it.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)

    @classmethod
    def for_config(cls, cfg: DownloadConfig) -> Scrubber:
        secrets: list[str] = []
        if cfg.proxy:
            secrets.append(cfg.proxy)
            parts = urllib.parse.urlsplit(cfg.proxy)
            if parts.username:
                secrets.append(parts.username)
                secrets.append(urllib.parse.unquote(parts.username))
            if parts.password:
                secrets.append(parts.password)
                secrets.append(urllib.parse.unquote(parts.password))
            if "@" in parts.netloc:
                secrets.append(parts.netloc.rsplit("@", 1)[0])
        if cfg.cookies:
            secrets += [cfg.cookies, os.path.basename(cfg.cookies)]
            secrets += _cookie_values(cfg.cookies)
        return cls(secrets)

    def __call__(self, text: object) -> str:
        text = self._USERINFO.sub(r"\1***@", str(text))
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def _cookie_values(path: str) -> list[str]:
    """Names and values of a Netscape cookies file (to scrub them from messages)."""
    out: list[str] = []
    with contextlib.suppress(OSError):
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                line = line.strip()
                if line.startswith("#HttpOnly_"):
                    line = line[len("#HttpOnly_") :]
                if not line or line.startswith("#"):
                    continue
                fields = line.split("\t")
                if len(fields) >= 7:
                    out.append(fields[6])
    return [v for v in out if len(v) >= 4]


def scrub_url(url: str) -> str:
    """The URL without user:password (safe to log and record)."""
    return Scrubber()(url)


# --------------------------------------------------------------------------- clips


class Clip(NamedTuple):
    """One clip to fetch: where from and which part."""

    clip_id: str
    url: str | None
    start: float | None = None
    end: float | None = None
    label: str | None = None
    split: str | None = None
    source: str | None = None


@dataclasses.dataclass
class Prepared:
    """Result of :func:`prepare_clips`: valid clips and what was dropped."""

    clips: list[Clip]
    duplicates: int = 0
    rejected: list[str] = dataclasses.field(default_factory=list)


def _num(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InputError(f"not a number: {value!r}") from None
    if math.isnan(f):
        return None
    if not math.isfinite(f) or f < 0:
        raise InputError(f"not a time in seconds: {value!r}")
    return f


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    value = str(value).strip()
    return value or None


_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f\s]")
_PLAIN_URL = re.compile(
    r"^https?://[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::(\d{1,5}))?(?:[/?#][\x21-\x7e]*)?$"
)


def check_url(url: str) -> str:
    """Return ``url`` if it is a plain http(s) URL, else raise :class:`InputError`."""
    m = _PLAIN_URL.match(url)
    if m and (m.group(1) is None or int(m.group(1)) <= 65535):
        return url  # the common shape, without urlsplit's cost (200k-row lists)
    if _BAD_URL_CHARS.search(url):
        raise InputError(f"malformed URL (spaces or control characters): {scrub_url(url)!r}")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InputError(f"malformed URL: {scrub_url(url)!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"not an http(s) URL: {scrub_url(url)!r}")
    return url


def _to_clip(row: Mapping[str, Any]) -> Clip:
    clip_id = check_id(_text(row.get("clip_id")) or "")
    url = _text(row.get("url"))
    start, end = _num(row.get("start")), _num(row.get("end"))
    if url is not None:
        check_url(url)
    else:
        with contextlib.suppress(HostileIdError):
            ytid, id_start = split_vggsound_id(clip_id)
            url = YOUTUBE_URL.format(ytid)
            start = id_start if start is None else start
    if start is not None and end is not None and end <= start:
        raise InputError(f"{clip_id}: end {end} is not after start {start}")
    return Clip(
        clip_id=clip_id,
        url=url,
        start=start,
        end=end,
        label=_text(row.get("label")),
        split=_text(row.get("split")),
        source=_text(row.get("source")),
    )


def _iter_rows(rows: Any) -> Iterable[Mapping[str, Any]]:
    if hasattr(rows, "columns"):  # a DataFrame: column lists are much faster than to_dict
        names = list(rows.columns)
        for values in zip(*(rows[c].tolist() for c in names)):
            yield dict(zip(names, values))
    else:
        yield from rows


def prepare_clips(rows: Any, *, skip_bad: bool = False, limit: int | None = None) -> Prepared:
    """Validate and deduplicate clip rows (dicts or a pandas DataFrame).

    Rows need ``clip_id`` and usually ``url``, ``start``, ``end``. A clip id
    that could escape the output folder, a non-http(s) or malformed URL, or a
    bad time is an :class:`InputError` listing the problems, unless
    ``skip_bad`` (then they are dropped and listed in ``rejected``). Repeated
    clip ids keep their first row. ``limit`` stops after that many clips
    (rows after them are not read).
    """
    clips: list[Clip] = []
    seen: set[str] = set()
    duplicates = 0
    rejected: list[str] = []
    for n, row in enumerate(_iter_rows(rows), 1):
        if limit is not None and len(clips) >= limit:
            break
        try:
            clip = _to_clip(row)
        except InputError as exc:
            rejected.append(f"row {n}: {exc}")
            continue
        if clip.clip_id in seen:
            duplicates += 1
            continue
        seen.add(clip.clip_id)
        clips.append(clip)
    if rejected and not skip_bad:
        shown = "\n  ".join(rejected[:10])
        more = f"\n  ... and {len(rejected) - 10} more" if len(rejected) > 10 else ""
        raise InputError(
            f"{len(rejected)} bad clip row(s); fix them or pass --skip-bad:\n  {shown}{more}"
        )
    if duplicates:
        log.warning("dropped %d duplicate clip id(s) (first row kept)", duplicates)
    if rejected:
        log.warning("skipped %d bad clip row(s) (--skip-bad)", len(rejected))
    return Prepared(clips=clips, duplicates=duplicates, rejected=rejected)


# --------------------------------------------------------------------------- rate, back-off


class RateLimiter:
    """Start slots shared by every process that uses the same file.

    :meth:`acquire` reserves the next free slot under an exclusive ``flock``,
    releases the lock, and sleeps until the slot; slots are ``60 / per_minute``
    seconds apart whatever the number of workers.
    """

    def __init__(self, path: str | os.PathLike, per_minute: float) -> None:
        self.path = Path(path)
        self.interval = 60.0 / per_minute

    def reset(self) -> None:
        with open(self.path, "w", encoding="ascii") as fh:
            fh.write("0")

    def reserve(self) -> float:
        """Reserve and return the next slot (a ``time.time()`` value)."""
        import fcntl

        with open(self.path, "a+", encoding="ascii") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.seek(0)
                try:
                    nxt = float(fh.read().strip() or 0)
                except ValueError:
                    nxt = 0.0
                now = time.time()
                # A slot far ahead can only come from a clock jump: start afresh.
                slot = now if nxt > now + 3600 else max(now, nxt)
                fh.seek(0)
                fh.truncate()
                fh.write(repr(slot + self.interval))
                fh.flush()
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return slot

    def acquire(self) -> float:
        slot = self.reserve()
        wait = slot - time.time()
        if wait > 0:
            time.sleep(wait)
        return slot


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based).

    Exponential (``base * 2**(attempt-1)``, at most ``cap``) with "equal
    jitter": half of it fixed, half random, so workers that failed together do
    not retry together.
    """
    rng = rng or random
    delay = min(cap, base * 2 ** max(attempt - 1, 0))
    return delay / 2 + rng.uniform(0, delay / 2)


# --------------------------------------------------------------------------- errors

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


# --------------------------------------------------------------------------- one clip


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


def _section(clip: Clip, cfg: DownloadConfig) -> tuple[float, float] | None:
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


def _ydl_options(clip: Clip, cfg: DownloadConfig, workdir: Path, scrub: Scrubber) -> dict[str, Any]:
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
    section = _section(clip, cfg)
    if section is not None:
        from yt_dlp.utils import download_range_func

        opts["download_ranges"] = download_range_func(None, [section])
        opts["force_keyframes_at_cuts"] = cfg.exact_cuts
    return opts


def _fetch(clip: Clip, cfg: DownloadConfig, workdir: Path, scrub: Scrubber) -> tuple[Path, dict]:
    """One yt-dlp attempt into ``workdir``; return the file and yt-dlp's info."""
    import yt_dlp

    opts = _ydl_options(clip, cfg, workdir, scrub)
    section = _section(clip, cfg)
    beyond: list[str] = []

    def section_exists(info: dict, *, incomplete: bool = False) -> str | None:
        # A start time past the end of the video: nothing to fetch, ever.
        length = info.get("duration")
        if section and isinstance(length, (int, float)) and 0 < length <= section[0]:
            beyond.append(f"section starts at {section[0]:g} s but the video is {length:g} s long")
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


def _check_length(media: ffmpeg.MediaInfo, info: dict, section: tuple[float, float] | None) -> None:
    """A section or file much shorter than the source says it should be was cut off."""
    source = info.get("duration")
    if not isinstance(source, (int, float)) or source <= 0 or media.duration is None:
        return
    want = (min(section[1], source) - section[0]) if section else source
    if want > 2 and media.duration < 0.8 * want:
        raise MediaError(f"truncated: got {media.duration:.1f} s of {want:.1f} s")


def download_clip(clip: Clip, cfg: DownloadConfig, scrub: Scrubber | None = None) -> ClipRecord:
    """Fetch one clip with retries; always return a record (never raises for expected errors)."""
    scrub = scrub or Scrubber.for_config(cfg)
    section = _section(clip, cfg)
    meta: dict[str, Any] = {"url": scrub(clip.url) if clip.url else None}
    if section is not None:
        meta["section"] = [section[0], section[1]]
    for key in ("label", "split", "source"):
        if getattr(clip, key) is not None:
            meta[key] = getattr(clip, key)
    if clip.url is None:
        hint = (
            " (a bare Flickr id gets one from --urls-from soundnet/urls-public)"
            if clip.source == "flickr"
            else ""
        )
        return ClipRecord(
            clip.clip_id, SKIPPED, error=f"no download URL for this id{hint}", meta=meta, attempts=0
        )
    limiter = RateLimiter(cfg.out / RATE_NAME, cfg.rate_limit) if cfg.rate_limit else None
    attempt = 0
    while True:
        attempt += 1
        if limiter is not None:
            limiter.acquire()
        workdir = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{clip.clip_id}-", dir=cfg.out))
        try:
            path, info = _fetch(clip, cfg, workdir, scrub)
            media = verify_media(path)
            _check_length(media, info, section)
            ext = path.suffix.lstrip(".").lower()
            final = cfg.out / f"{clip.clip_id}.{ext if _EXT.match(ext) else 'bin'}"
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(path, final)
            meta.update(
                bytes=final.stat().st_size,
                duration=media.duration,
                has_video=media.has_video,
                has_audio=media.has_audio,
                width=media.width,
                height=media.height,
                fps=media.fps,
                sample_rate=media.sample_rate,
            )
            return ClipRecord(
                clip.clip_id, OK, outputs={"path": final.name}, meta=meta, attempts=attempt
            )
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a record
            where = disk_full_path(exc)
            if where is not None:  # the machine's problem, not the clip's: redo it next run
                return retryable_record(clip.clip_id, scrub(where))
            status, reason = classify_error(exc)
            reason = scrub(reason)
            log.debug("%s: attempt %d: %s: %s", clip.clip_id, attempt, status, reason)
            if status == UNAVAILABLE or attempt > cfg.retries:
                return ClipRecord(clip.clip_id, status, error=reason, meta=meta, attempts=attempt)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        time.sleep(backoff_delay(attempt, cfg.backoff, cfg.backoff_cap))


class _Worker:
    """Picklable ``fn(clip) -> ClipRecord`` for :func:`avprep.runner.map_clips`."""

    def __init__(self, cfg: DownloadConfig) -> None:
        self.cfg = cfg
        self._scrub: Scrubber | None = None

    def __getstate__(self) -> dict:
        return {"cfg": self.cfg}

    def __setstate__(self, state: dict) -> None:
        self.cfg, self._scrub = state["cfg"], None

    def __call__(self, clip: Clip) -> ClipRecord:
        if self._scrub is None:
            self._scrub = Scrubber.for_config(self.cfg)
        try:
            return download_clip(clip, self.cfg, self._scrub)
        except AvprepError as exc:
            return ClipRecord(clip.clip_id, FAILED, error=self._scrub(str(exc)))


# --------------------------------------------------------------------------- a run


@dataclasses.dataclass
class DownloadReport:
    """What one :func:`download_clips` run did."""

    requested: int
    duplicates: int
    rejected: list[str]
    already_done: int
    not_retried: int
    records: list[ClipRecord]
    manifest: Manifest
    swept: int = 0
    clip_ids: list[str] = dataclasses.field(default_factory=list)

    def counts(self) -> Counter:
        """Statuses of the clips attempted in this run."""
        return Counter(r.status for r in self.records)

    @property
    def without_audio(self) -> int:
        return sum(1 for r in self.records if r.ok and r.meta.get("has_audio") is False)


def _sweep(out: Path) -> int:
    """Remove what killed runs left behind (``.tmp-*`` files and folders)."""
    return cleanup_temps(out, dirs=True)


def _is_done(rec: ClipRecord | None, out: Path) -> bool:
    """:func:`avprep.manifest.is_done`, and stricter, because a download is one file a
    manifest might misname or a killed transfer might cut short: its ``path`` must be a
    plain file name in ``out`` and the file must still have the recorded size."""
    if rec is None or not rec.ok:
        return False
    name = rec.outputs.get("path")
    if not name or "/" in name or name.startswith(".") or not is_done(rec, out):
        return False
    path = out / name
    size = rec.meta.get("bytes")
    return path.is_file() and (size is None or path.stat().st_size == size)


def tool_versions() -> dict[str, str]:
    from yt_dlp.version import __version__ as ytdlp_version

    from avprep import __version__

    return {"yt_dlp": ytdlp_version, "ffmpeg": ffmpeg.ffmpeg_version(), "avprep": __version__}


def download_clips(
    rows: Any,
    cfg: DownloadConfig,
    *,
    jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    retry_failed: bool = False,
    skip_bad: bool = False,
    limit: int | None = None,
    progress: bool = True,
) -> DownloadReport:
    """Download every clip of ``rows`` into ``cfg.out`` and record it in the manifest.

    ``backend``: ``loky`` (``jobs`` processes here), ``dask`` (a local cluster
    of ``jobs`` workers, or the cluster at ``scheduler``; its workers must see
    ``cfg.out`` at the same path), or ``serial``.

    ``rows``: clip dicts or a DataFrame with ``clip_id``, ``url``, ``start``,
    ``end`` (+ optional ``label``, ``split``, ``source``), e.g. from
    :func:`avprep.recipes.load_clips`. ``limit`` keeps the first N clips after
    deduplication. Returns a :class:`DownloadReport`; the manifest holds the
    per-clip records.
    """
    from avprep.runner import map_clips

    if limit is not None and limit < 0:
        raise ConfigError(f"--limit must be >= 0, not {limit}")
    prepared = prepare_clips(rows, skip_bad=skip_bad, limit=limit)
    clips = prepared.clips
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, "download"):
        swept = _sweep(out)
        if swept:
            log.info("removed %d temporary entries left by an interrupted run", swept)
        manifest = Manifest(out / MANIFEST_NAME)
        todo: list[Clip] = []
        done = not_retried = 0
        for clip in clips:
            rec = manifest.get(clip.clip_id)
            if _is_done(rec, out):
                done += 1
            elif (
                rec is not None and not rec.ok and not retry_failed and not rec.meta.get(RETRYABLE)
            ):
                not_retried += 1
            else:
                if rec is not None and rec.ok:
                    log.warning(
                        "%s: recorded ok but its file is gone; fetching again", clip.clip_id
                    )
                todo.append(clip)
        records: list[ClipRecord] = []
        if todo:
            if cfg.rate_limit:
                RateLimiter(out / RATE_NAME, cfg.rate_limit).reset()
            manifest.write_header(stage="download", **tool_versions(), options=cfg.public())
            worker = _Worker(cfg)
            try:
                for rec in map_clips(
                    worker,
                    todo,
                    jobs=max(1, min(jobs, len(todo))),  # no idle worker processes to start
                    backend=backend,
                    scheduler=scheduler,
                    manifest=manifest,
                    desc="download",
                    progress=progress,
                ):
                    records.append(rec)
            finally:
                # Ctrl-C can stop a worker between mkdtemp and its own cleanup: the
                # lock is still ours, so whatever .tmp-* is left now is a leftover
                _sweep(out)
    return DownloadReport(
        requested=len(clips),
        duplicates=prepared.duplicates,
        rejected=prepared.rejected,
        already_done=done,
        not_retried=not_retried,
        records=records,
        manifest=manifest,
        swept=swept,
        clip_ids=[c.clip_id for c in clips],
    )


def downloaded(out: str | os.PathLike) -> dict[str, Path]:
    """``clip_id -> file`` for every clip of a download folder that is ``ok`` on disk."""
    out = Path(out)
    manifest = Manifest(out / MANIFEST_NAME)
    return {r.clip_id: out / r.outputs["path"] for r in manifest.records() if _is_done(r, out)}
