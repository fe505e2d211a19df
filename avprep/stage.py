"""The one shape of a stage run: a :class:`Stage` declaration and :func:`run_stage`.

A stage (download, extract, synth, pack-h5) is a per-clip function
``step(item, config) -> ClipRecord`` plus a small declaration of what its
folder looks like. :func:`run_stage` owns everything around the step, in
this order, so no stage repeats it:

1. the folder's lock (:func:`avprep.lock.folder_lock`, ``OUT/.<name>.lock``),
   held until the last write;
2. the sweep of temporaries a killed run left (``.tmp-*`` in the declared
   folders);
3. the manifest (``OUT/manifest.jsonl``) and its header: parameters recorded
   by an earlier run must equal this run's (else a one-line
   :class:`~avprep.errors.ConfigError`: one folder never mixes two runs'
   parameters);
4. skip-if-done: :func:`avprep.manifest.is_done` unless the stage declares a
   stricter rule; a failed clip is redone unless the stage keeps failures
   (download, without ``--retry-failed``);
5. the map over clips (:func:`avprep.runner.map_clips`: loky | dask | serial),
   records appended as they arrive, progress on a terminal;
6. the report (:class:`StageReport`: counts, this run's records, failure
   reasons), and ``finish`` (files written from all records, still under the
   lock).

The selection of clips may need the lock (it reads the output folder): pass a
callable ``select(manifest) -> Work`` and it runs after step 3's manifest is
opened. A stage whose unit of work holds several clips (extract ``--times``:
one decode per source video) selects its units from the clips' own records
and keys them by a name no clip id can take (``video:<name>``); its step
returns one record per clip. ``ingest`` (it streams an archive) takes steps
1-3 from :func:`open_stage` and maps on its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from avprep.atomic import cleanup_temps
from avprep.diskfull import RETRYABLE
from avprep.errors import ConfigError
from avprep.lock import folder_lock
from avprep.manifest import FAILED, MANIFEST_NAME, OK, ClipRecord, Manifest, is_done
from avprep.runner import _default_key, map_clips

log = logging.getLogger(__name__)


class Step(Protocol):
    """A stage's per-clip work: a module-level (picklable) function of the item and
    the run's config. It returns a failed record for an expected failure; an
    exception becomes a failed record too (:mod:`avprep.runner`). An item that
    is a unit of several clips gives a list of records (extract ``--times``:
    every clip of one source video from one decode)."""

    def __call__(self, item: Any, config: Any, /) -> ClipRecord | list[ClipRecord]: ...


def _mismatch(out: Path, changed: list[str], old: Mapping[str, Any]) -> str:
    return (
        f"{out} was written with other parameters ({', '.join(changed)} differ); "
        "use another --out or the same options"
    )


@dataclasses.dataclass(frozen=True)
class Stage:
    """What a stage declares; :func:`run_stage` does the rest.

    ``name``: the lock (``.<name>.lock``). ``desc``/``unit``: the progress
    bar's label and unit. ``header``: facts written to the manifest header;
    with ``params_key`` they are written once and ``header[params_key]`` must
    equal the recorded value on a rerun (``mismatch`` words the refusal);
    without it they are written on every run that has work (download's tool
    versions). ``keeps_manifest``: False for a stage whose units have no
    records (pack's shards: done is the plan hash inside each shard).
    ``done``: the "is it done?" rule (default :func:`avprep.manifest.is_done`).
    ``redo_failed``: False keeps failed records (download's default).
    ``sweep``: ``(sub-folder, folders too?)`` pairs swept before the run;
    ``sweep_after``: swept again when the map ends (download: a worker stopped
    by Ctrl-C between its mkdtemp and its cleanup).
    """

    name: str
    step: Step
    config: Any
    out: Path
    desc: str | None = None
    unit: str = "clip"
    key: Callable[[Any], str] = _default_key
    keeps_manifest: bool = True
    header: Mapping[str, Any] | None = None
    params_key: str | None = None
    mismatch: Callable[[Path, list[str], Mapping[str, Any]], str] = _mismatch
    done: Callable[[ClipRecord | None, Path], bool] = is_done
    redo_failed: bool = True
    sweep: tuple[tuple[str, bool], ...] = (("", True),)
    sweep_after: bool = False
    before_map: Callable[[Sequence[Any]], None] | None = None


@dataclasses.dataclass
class Work:
    """What a run is asked to do: the items, and inputs refused before any work
    (failed records, appended to the manifest unless that clip is done)."""

    items: Sequence[Any]
    rejected: list[ClipRecord] = dataclasses.field(default_factory=list)
    #: the steps' config when it is known only once the inputs are read (pack: the
    #: layout, made from the selected clips); None: the stage's own
    config: Any = None


@dataclasses.dataclass
class StageReport:
    """What one :func:`run_stage` did."""

    out: Path
    items: list[Any]
    already_done: int
    not_retried: int
    records: list[ClipRecord]  # this run's, in completion order
    rejected: list[ClipRecord]
    swept: int
    manifest: Manifest | None
    seconds: float

    def counts(self) -> Counter:
        """Statuses of the clips attempted in this run."""
        return Counter(r.status for r in self.records)

    @property
    def ok(self) -> int:
        return sum(1 for r in self.records if r.status == OK)

    @property
    def failed(self) -> int:
        """Failed now, plus inputs refused before any work."""
        return sum(1 for r in self.records if r.status == FAILED) + len(self.rejected)

    def reasons(self, top: int = 5, *, rejected_first: bool = False) -> list[tuple[str, int]]:
        """The most common failure reasons (a clip's own id stripped, so they group);
        ties in the order counted: this run's records, then the refused inputs
        (``rejected_first``: the other way, extract ``--times``' order)."""
        reasons: Counter = Counter()
        failed = [rec for rec in self.records if not rec.ok and rec.error]
        refused = list(self.rejected)
        for rec in refused + failed if rejected_first else failed + refused:
            reasons[failure_reason(rec.error or "")] += 1
        return reasons.most_common(top)


def failure_reason(error: str) -> str:
    """``"<clip id>: reason"`` -> ``"reason"``, so the same failure groups across clips."""
    head, sep, tail = error.partition(": ")
    return tail if sep and " " not in head else error


def sweep(out: Path, where: Sequence[tuple[str, bool]]) -> int:
    """Remove the ``.tmp-*`` entries killed runs left in ``where`` (existing folders only)."""
    removed = 0
    for sub, dirs in where:
        folder = out / sub if sub else out
        if folder.is_dir():
            removed += cleanup_temps(folder, dirs=dirs)
    return removed


def check_header(stage: Stage, manifest: Manifest) -> None:
    """Write the stage's header on a first run; refuse other parameters on a rerun."""
    if stage.params_key is None or stage.header is None:
        return
    params = json.loads(json.dumps(stage.header[stage.params_key], default=str))
    old = manifest.header.get(stage.params_key)
    if old is None:
        manifest.write_header(**stage.header)
    elif old != params:
        changed = sorted(k for k in set(old) | set(params) if old.get(k) != params.get(k))
        raise ConfigError(stage.mismatch(stage.out, changed, old))


@dataclasses.dataclass
class OpenStage:
    """A stage's folder, locked and swept, with its manifest (steps 1-3)."""

    stage: Stage
    manifest: Manifest | None
    swept: int


@contextlib.contextmanager
def open_stage(stage: Stage) -> Iterator[OpenStage]:
    """Lock ``stage.out``, sweep it and open its manifest; the header is checked by the caller
    (:func:`check_header`) once it knows its inputs are usable."""
    with folder_lock(stage.out, stage.name):
        swept = sweep(stage.out, stage.sweep)
        if swept:
            log.info("removed %d temporary entries left by an interrupted run", swept)
        manifest = Manifest(stage.out / MANIFEST_NAME) if stage.keeps_manifest else None
        yield OpenStage(stage, manifest, swept)


def _partition(
    stage: Stage, manifest: Manifest | None, items: Sequence[Any]
) -> tuple[list[Any], int, int]:
    """(to do, already done, failures kept) by the stage's done rule."""
    if manifest is None:
        return list(items), 0, 0
    todo: list[Any] = []
    done = kept = 0
    for item in items:
        key = stage.key(item)
        rec = manifest.get(key)
        if stage.done(rec, stage.out):
            done += 1
        elif (
            rec is not None and not rec.ok and not stage.redo_failed and not rec.meta.get(RETRYABLE)
        ):
            kept += 1
        else:
            if rec is not None and rec.ok:
                log.warning("%s: recorded ok but its outputs are gone; doing it again", key)
            todo.append(item)
    return todo, done, kept


class _Bound:
    """Picklable ``item -> record`` for the runner: the step with the run's config."""

    def __init__(self, step: Step, config: Any) -> None:
        self.step = step
        self.config = config

    def __call__(self, item: Any) -> ClipRecord:
        return self.step(item, self.config)


def run_stage(
    stage: Stage,
    select: Sequence[Any] | Work | Callable[[Manifest | None], Work | Sequence[Any]],
    *,
    jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    progress: bool = True,
    finish: Callable[[StageReport], Any] | None = None,
) -> Any:
    """Run ``stage`` over the items ``select`` gives (see the module docstring).

    Returns the :class:`StageReport`, or what ``finish(report)`` returns
    (``finish`` runs under the lock: files made from all records).
    """
    t0 = time.perf_counter()
    with open_stage(stage) as folder:
        manifest = folder.manifest
        work = select(manifest) if callable(select) else select
        if not isinstance(work, Work):
            work = Work(list(work))
        if manifest is not None:
            check_header(stage, manifest)
            for rec in work.rejected:
                if not stage.done(manifest.get(rec.clip_id), stage.out):
                    manifest.append(rec)
        todo, done, kept = _partition(stage, manifest, work.items)
        log.info(
            "%s: %d %s(s), %d already done, %d to do",
            stage.name, len(work.items), stage.unit, done, len(todo),
        )  # fmt: skip
        records: list[ClipRecord] = []
        if todo:
            if stage.before_map is not None:
                stage.before_map(todo)
            if manifest is not None and stage.header is not None and stage.params_key is None:
                manifest.write_header(**stage.header)
            try:
                records.extend(
                    map_clips(
                        _Bound(stage.step, stage.config if work.config is None else work.config),
                        todo,
                        jobs=max(1, min(jobs, len(todo))),  # no idle worker processes to start
                        backend=backend,
                        scheduler=scheduler,
                        manifest=manifest,
                        desc=stage.desc or stage.name,
                        key=stage.key,
                        progress=progress,
                        unit=stage.unit,
                    )
                )
            finally:
                if stage.sweep_after:
                    sweep(stage.out, stage.sweep)
        report = StageReport(
            out=stage.out,
            items=list(work.items),
            already_done=done,
            not_retried=kept,
            records=records,
            rejected=list(work.rejected),
            swept=folder.swept,
            manifest=manifest,
            seconds=time.perf_counter() - t0,
        )
        return finish(report) if finish is not None else report
