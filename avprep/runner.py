"""Parallel map over clips: joblib (loky) on one machine, Dask on many.

Workers run ``fn(item) -> ClipRecord`` and must not raise for expected
failures (they return a failed record instead). The parent process appends
each record to the manifest as soon as it arrives, so Ctrl-C or a crash loses
no finished clip. Unexpected exceptions inside ``fn`` are turned into failed
records with the exception text, so one bad clip never stops a run. A full
disk is the exception: the clip gets a failed record marked retryable
(``meta["retryable"]``) and the run stops with a :class:`DiskFullError`
("disk full at PATH"); the next run redoes that clip.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from tqdm.auto import tqdm

from avprep.atomic import TMP_PREFIX
from avprep.diskfull import FULL_ERRNOS, RETRYABLE, disk_full_error, disk_full_path
from avprep.errors import AvprepError, ConfigError, DiskFullError
from avprep.manifest import FAILED, ClipRecord, Manifest

log = logging.getLogger(__name__)

BACKENDS = ("loky", "dask", "serial")


class _Guarded:
    """Picklable wrapper turning exceptions into failed records."""

    def __init__(self, fn: Callable[[Any], ClipRecord], key: Callable[[Any], str]) -> None:
        self.fn = fn
        self.key = key

    def __call__(self, item: Any) -> ClipRecord:
        try:
            return self.fn(item)
        except Exception as exc:  # noqa: BLE001 - sorted out below
            where = disk_full_path(exc)
            if where is None:
                return self._failed(item, exc)
            rec = retryable_record(self.key(item), where)
            if isinstance(exc, DiskFullError):
                rec.meta["message"] = str(exc)
            return rec

    def _failed(self, item: Any, exc: Exception) -> ClipRecord:
        # one bad clip must not stop the run
        error = str(exc) if isinstance(exc, AvprepError) else f"{type(exc).__name__}: {exc}"
        return ClipRecord(clip_id=self.key(item), status=FAILED, error=error)


class _InCallersFolder:
    """Runs ``fn`` in the caller's working directory.

    loky reuses its worker processes across runs, and a worker keeps the
    directory it was started in: without this, a relative ``--out`` given after
    the caller changed directory would resolve against the old one (seen when
    two runs in one process use different working directories).
    """

    def __init__(self, fn: Callable[[Any], ClipRecord]) -> None:
        self.fn = fn
        self.cwd = os.getcwd()

    def __call__(self, item: Any) -> ClipRecord:
        try:
            here = os.getcwd()
        except FileNotFoundError:  # the worker's old folder was deleted since
            here = None
        if here != self.cwd:
            os.chdir(self.cwd)
        return self.fn(item)


def retryable_record(clip_id: str, where: str) -> ClipRecord:
    """The record of a clip stopped by a full disk: failed now, redone by the next run."""
    return ClipRecord(
        clip_id=clip_id,
        status=FAILED,
        error=f"disk full at {where or 'the output folder'} (retryable: the next run redoes it)",
        meta={RETRYABLE: True, "disk_full": where},
    )


def _default_key(item: Any) -> str:
    return item if isinstance(item, str) else getattr(item, "clip_id", None) or item["clip_id"]


def map_clips(
    fn: Callable[[Any], ClipRecord],
    items: Sequence[Any],
    *,
    jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    manifest: Manifest | None = None,
    desc: str = "clips",
    key: Callable[[Any], str] = _default_key,
    progress: bool = True,
    unit: str = "clip",
) -> Iterator[ClipRecord]:
    """Run ``fn`` over ``items`` and yield records in completion order.

    ``fn`` returns one record, or a list of records when its item is a unit of
    several clips (extract ``--times``: every clip of one source video, one
    decode); each is appended and yielded, and the progress bar counts items.

    ``backend``: ``loky`` (joblib processes, ``jobs`` of them), ``dask``
    (dask.distributed; ``scheduler`` is an address such as
    ``tcp://host:8786``, or None for a local cluster with ``jobs`` workers),
    or ``serial`` (in this process, for debugging).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    guarded = _Guarded(fn, key)
    # disable=None: no bar when stderr is not a terminal (a log file gets no carriage returns)
    bar = tqdm(total=len(items), desc=desc, unit=unit, disable=None if progress and items else True)
    scratch = None
    try:
        # loky's memory-mapping folder inside the output folder's temp area (swept by the
        # next run under the folder's lock) rather than /dev/shm, where a kill -9 of the
        # whole process group leaves it behind (docs/reliability.md)
        scratch = None if manifest is None else str(manifest.path.parent / f"{TMP_PREFIX}joblib")
        for done in _dispatch(
            guarded, items, jobs=jobs, backend=backend, scheduler=scheduler, temp_folder=scratch
        ):
            # a unit of several clips (extract --times: one source video) gives a list
            for rec in done if isinstance(done, list) else (done,):
                _record(rec, manifest)
                if not rec.ok:
                    bar.set_postfix_str(f"last failure: {rec.clip_id}", refresh=False)
                yield rec
            bar.update(1)
    finally:
        bar.close()
        if scratch is not None:
            with contextlib.suppress(OSError):
                os.rmdir(scratch)  # empty once joblib is done with it


def _record(rec: ClipRecord, manifest: Manifest | None) -> None:
    """Append ``rec``; a full disk (while appending, or the record's own) stops the run."""
    if manifest is not None:
        try:
            manifest.append(rec)
        except OSError as exc:
            if exc.errno in FULL_ERRNOS:
                raise disk_full_error(manifest.path) from None
            raise
    if rec.meta.get(RETRYABLE):
        if rec.meta.get("message"):
            raise DiskFullError(rec.meta["message"])
        where = rec.meta.get("disk_full") or ("?" if manifest is None else manifest.path.parent)
        raise disk_full_error(where)


def _dispatch(
    fn: Callable[[Any], ClipRecord],
    items: Sequence[Any],
    *,
    jobs: int,
    backend: str,
    scheduler: str | None,
    temp_folder: str | None = None,
) -> Iterable[ClipRecord]:
    if not items:
        return
    if backend == "serial" or (backend == "loky" and jobs <= 1):
        for item in items:
            yield fn(item)
        return
    if backend == "loky":
        from joblib import Parallel, delayed

        par = Parallel(
            n_jobs=jobs, backend="loky", return_as="generator_unordered", temp_folder=temp_folder
        )
        in_folder = _InCallersFolder(fn)
        yield from par(delayed(in_folder)(item) for item in items)
        return
    yield from _dispatch_dask(fn, items, jobs=jobs, scheduler=scheduler)


def _dispatch_dask(
    fn: Callable[[Any], ClipRecord], items: Sequence[Any], *, jobs: int, scheduler: str | None
) -> Iterable[ClipRecord]:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(
            "the dask backend needs dask.distributed: pip install 'avprep[dask]'"
        ) from exc
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=max(jobs, 1), threads_per_worker=1, processes=True)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        futures = client.map(fn, list(items), pure=False)
        for fut in as_completed(futures):
            yield fut.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
