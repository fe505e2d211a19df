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
    download_list,
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
    """:func:`~avprep.stages.download.download_list` with the command's options: the run's
    :class:`DownloadConfig` is built (and checked) from them before the list is read.
    Returns the config and the report.
    """
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
    report = download_list(
        ids, cfg, dataset=dataset, split=split, id_format=id_format, urls_from=urls_from,
        skip_bad=skip_bad, jobs=jobs, backend=backend, scheduler=scheduler,
        retry_failed=retry_failed, limit=limit, progress=progress,
    )  # fmt: skip
    return cfg, report


def check_strict(report: DownloadReport) -> None:
    """``--strict``: a :class:`DownloadError` unless every clip of the list is ``ok``."""
    if bad := report.not_ok():
        raise DownloadError(f"--strict: {bad} of {report.requested} clip(s) are not ok")
