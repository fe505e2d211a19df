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

Rooms: the clip record and the row checks in :mod:`avprep.clip`, one yt-dlp
attempt and its error classes in :mod:`avprep.stages.ytdlp`, secrets in
:mod:`avprep.scrub`, start slots and back-off in :mod:`avprep.stages.ratelimit`,
the media check in :mod:`avprep.stages.mediainfo`; the run's skeleton (lock,
sweep, manifest, skip-if-done, map, report) is :func:`avprep.stage.run_stage`.
This module holds the stage: its config, one clip's attempts, and the run.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import shutil
import tempfile
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

from avprep import ffmpeg
from avprep.atomic import TMP_PREFIX
from avprep.clip import Clip, Prepared, check_url, prepare_clips
from avprep.diskfull import disk_full_path
from avprep.errors import AvprepError, ConfigError, MediaError
from avprep.lock import lock_name
from avprep.manifest import FAILED, MANIFEST_NAME, OK, SKIPPED, UNAVAILABLE, ClipRecord, Manifest
from avprep.manifest import is_done as _record_done
from avprep.runner import retryable_record
from avprep.scrub import Scrubber, scrub_url
from avprep.stage import Stage, StageReport, run_stage
from avprep.stages.mediainfo import verify_media
from avprep.stages.ratelimit import RateLimiter, backoff_delay
from avprep.stages.ytdlp import DEFAULT_SECTION, classify_error, clean_reason, fetch
from avprep.stages.ytdlp import section as _section
from avprep.stages.ytdlp import ydl_options as _ydl_options

log = logging.getLogger(__name__)

# names this module has always offered (tests and callers import them from here)
__all__ = [
    "DEFAULT_FORMAT", "DEFAULT_SECTION", "LOCK_NAME", "Clip", "DownloadConfig",
    "DownloadReport", "Prepared", "RateLimiter", "Scrubber", "backoff_delay", "check_url",
    "classify_error", "clean_reason", "download_clip", "download_clips", "downloaded",
    "parse_rate", "prepare_clips", "scrub_url", "tool_versions", "verify_media",
]  # fmt: skip
_COMPAT = (_ydl_options,)  # private names a test reaches through this module

LOCK_NAME = lock_name("download")
RATE_NAME = ".ratelimit"
#: Small files suffice for 224-256 px frames; fall back to whatever exists.
DEFAULT_FORMAT = "bv*[height<=480]+ba/b[height<=480]/bv*+ba/b"
_EXT = re.compile(r"^[A-Za-z0-9]{1,8}$")


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


# --------------------------------------------------------------------------- one clip


def _record_meta(clip: Clip, cfg: DownloadConfig, scrub: Scrubber) -> dict[str, Any]:
    meta: dict[str, Any] = {"url": scrub(clip.url) if clip.url else None}
    section = _section(clip, cfg)
    if section is not None:
        meta["section"] = [section[0], section[1]]
    for key in ("label", "split", "source"):
        if getattr(clip, key) is not None:
            meta[key] = getattr(clip, key)
    return meta


def _no_url(clip: Clip, meta: dict[str, Any]) -> ClipRecord:
    hint = (
        " (a bare Flickr id gets one from --urls-from soundnet/urls-public)"
        if clip.source == "flickr"
        else ""
    )
    return ClipRecord(
        clip.clip_id, SKIPPED, error=f"no download URL for this id{hint}", meta=meta, attempts=0
    )


def _attempt(clip: Clip, cfg: DownloadConfig, scrub: Scrubber, meta: dict[str, Any]) -> Path:
    """One fetch into a ``.tmp-<id>-*`` folder, checked, renamed onto ``OUT/<id>.<ext>``;
    ``meta`` gets the file's facts."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{clip.clip_id}-", dir=cfg.out))
    try:
        path, info = fetch(clip, cfg, workdir, scrub)
        media = verify_media(path)
        _check_length(media, info, _section(clip, cfg))
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
        return final
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


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
    meta = _record_meta(clip, cfg, scrub)
    if clip.url is None:
        return _no_url(clip, meta)
    limiter = RateLimiter(cfg.out / RATE_NAME, cfg.rate_limit) if cfg.rate_limit else None
    attempt = 0
    while True:
        attempt += 1
        if limiter is not None:
            limiter.acquire()
        try:
            final = _attempt(clip, cfg, scrub, meta)
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
        time.sleep(backoff_delay(attempt, cfg.backoff, cfg.backoff_cap))


@functools.lru_cache(maxsize=8)
def _scrubber(cfg: DownloadConfig) -> Scrubber:
    """One scrubber per config and process (it reads the cookies file once)."""
    return Scrubber.for_config(cfg)


def fetch_step(clip: Clip, cfg: DownloadConfig) -> ClipRecord:
    """The stage's per-clip step: :func:`download_clip`, an error's text scrubbed."""
    scrub = _scrubber(cfg)
    try:
        return download_clip(clip, cfg, scrub)
    except AvprepError as exc:
        return ClipRecord(clip.clip_id, FAILED, error=scrub(str(exc)))


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

    def not_ok(self) -> int:
        """How many clips of the list the manifest does not hold as ok (after this run)."""
        return sum(
            1
            for clip_id in self.clip_ids
            if (rec := self.manifest.get(clip_id)) is None or not rec.ok
        )


def is_done(rec: ClipRecord | None, out: Path) -> bool:
    """:func:`avprep.manifest.is_done`, and stricter, because a download is one file a
    manifest might misname or a killed transfer might cut short: its ``path`` must be a
    plain file name in ``out`` and the file must still have the recorded size."""
    if rec is None or not rec.ok:
        return False
    name = rec.outputs.get("path")
    if not name or "/" in name or name.startswith(".") or not _record_done(rec, out):
        return False
    path = out / name
    size = rec.meta.get("bytes")
    return path.is_file() and (size is None or path.stat().st_size == size)


_is_done = is_done  # the name a test uses


def tool_versions() -> dict[str, str]:
    from yt_dlp.version import __version__ as ytdlp_version

    from avprep import __version__

    return {"yt_dlp": ytdlp_version, "ffmpeg": ffmpeg.ffmpeg_version(), "avprep": __version__}


class _ResetRate:
    """Before the map: a fresh start-slot file for this run (picklable, not a closure)."""

    def __init__(self, cfg: DownloadConfig) -> None:
        self.cfg = cfg

    def __call__(self, todo: Any) -> None:
        if self.cfg.rate_limit:
            RateLimiter(self.cfg.out / RATE_NAME, self.cfg.rate_limit).reset()


def download_stage(cfg: DownloadConfig, *, retry_failed: bool = False) -> Stage:
    """The download stage's declaration: files in ``OUT``, a stricter done rule, failures
    kept unless ``retry_failed``, tool versions recorded by every run that fetches."""
    return Stage(
        name="download",
        step=fetch_step,
        config=cfg,
        out=cfg.out,
        header={"stage": "download", **tool_versions(), "options": cfg.public()},
        done=is_done,
        redo_failed=retry_failed,
        sweep_after=True,
        before_map=_ResetRate(cfg),
    )


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
    if limit is not None and limit < 0:
        raise ConfigError(f"--limit must be >= 0, not {limit}")
    prepared = prepare_clips(rows, skip_bad=skip_bad, limit=limit)
    stage = download_stage(cfg, retry_failed=retry_failed)
    run: StageReport = run_stage(
        stage, prepared.clips, jobs=jobs, backend=backend, scheduler=scheduler, progress=progress
    )
    return DownloadReport(
        requested=len(prepared.clips),
        duplicates=prepared.duplicates,
        rejected=prepared.rejected,
        already_done=run.already_done,
        not_retried=run.not_retried,
        records=run.records,
        manifest=run.manifest,
        swept=run.swept,
        clip_ids=[c.clip_id for c in prepared.clips],
    )


def download_list(
    ids: str | os.PathLike,
    cfg: DownloadConfig,
    *,
    dataset: str | None = None,
    split: str | None = None,
    id_format: str = "auto",
    urls_from: str | None = None,
    skip_bad: bool = False,
    **run: Any,
) -> DownloadReport:
    """Download the clips of an id list (``avprep download``): a file, a registry name or
    ``a,b,c``, read by :func:`avprep.recipes.load_clips` (``id_format``, ``dataset``,
    ``split``, ``skip_bad``); ``urls_from`` (a SoundNet URL list) gives bare Flickr ids
    their URLs. ``run`` goes to :func:`download_clips`. The report also counts the
    duplicates and (with ``skip_bad``) the bad lines the list reader dropped."""
    from avprep.recipes import load_clips

    rows = load_clips(ids, fmt=id_format, dataset=dataset, split=split, skip_bad=skip_bad)
    if urls_from:
        from avprep.recipes.flickr import attach_soundnet_urls

        rows = attach_soundnet_urls(rows, urls_from)
    report = download_clips(rows, cfg, skip_bad=skip_bad, **run)
    # load_clips already dropped its duplicates and (with skip_bad) bad lines
    report.duplicates += int(rows.attrs.get("duplicates", 0) or 0)
    report.rejected[:0] = [reason for _, reason in rows.attrs.get("bad_lines", [])]
    return report


def downloaded(out: str | os.PathLike) -> dict[str, Path]:
    """``clip_id -> file`` for every clip of a download folder that is ``ok`` on disk."""
    out = Path(out)
    manifest = Manifest(out / MANIFEST_NAME)
    return {r.clip_id: out / r.outputs["path"] for r in manifest.records() if is_done(r, out)}
