"""An id list into a download folder: the library call behind ``avprep download``.

The command (``avprep/commands/download.py``) and the recipe step
(``avprep/steps.py``) both call :func:`download_ids` with the command's options
and differ only in what they print; :func:`check_strict` is ``--strict``.
"""

from __future__ import annotations

from avprep.errors import DownloadError
from avprep.stages.download import (
    DEFAULT_FORMAT,
    DownloadConfig,
    DownloadReport,
    download_clips,
    parse_rate,
)


def download_ids(
    *,
    ids: str,
    out: str,
    dataset: str | None = None,
    split: str | None = None,
    id_format: str = "auto",
    urls_from: str | None = None,
    skip_bad: bool = False,
    limit: int | None = None,
    section: float | None = None,
    exact_cuts: bool = False,
    rate_limit: str | None = None,
    retries: int = 3,
    backoff: float = 2.0,
    timeout: float = 30.0,
    cookies: str | None = None,
    proxy: str | None = None,
    video_format: str | None = None,
    jobs: int = 4,
    backend: str = "loky",
    scheduler: str | None = None,
    retry_failed: bool = False,
    progress: bool = True,
) -> tuple[DownloadConfig, DownloadReport]:
    """Download the clips of ``ids`` (a file, a registry name; see ``avprep metadata``)
    into ``out``; returns the run's checked options and its report.

    The options are checked before the list is read. The report counts the
    duplicates and (with ``skip_bad``) the bad lines the list reader dropped.
    """
    from avprep.recipes import load_clips

    cfg = DownloadConfig(
        out=out,
        section=section,
        retries=retries,
        backoff=backoff,
        timeout=timeout,
        rate_limit=parse_rate(rate_limit),
        format=video_format or DEFAULT_FORMAT,
        exact_cuts=exact_cuts,
        proxy=proxy,
        cookies=cookies,
    )
    rows = load_clips(ids, fmt=id_format, dataset=dataset, split=split, skip_bad=skip_bad)
    if urls_from:
        from avprep.recipes.flickr import attach_soundnet_urls

        rows = attach_soundnet_urls(rows, urls_from)
    report = download_clips(
        rows, cfg, jobs=jobs, backend=backend, scheduler=scheduler, retry_failed=retry_failed,
        skip_bad=skip_bad, limit=limit, progress=progress,
    )  # fmt: skip
    report.duplicates += int(rows.attrs.get("duplicates", 0) or 0)
    report.rejected[:0] = [reason for _, reason in rows.attrs.get("bad_lines", [])]
    return cfg, report


def check_strict(report: DownloadReport) -> None:
    """``--strict``: a :class:`DownloadError` unless every clip of the list is ``ok``."""
    bad = sum(
        1
        for clip_id in report.clip_ids
        if (rec := report.manifest.get(clip_id)) is None or not rec.ok
    )
    if bad:
        raise DownloadError(f"--strict: {bad} of {report.requested} clip(s) are not ok")
