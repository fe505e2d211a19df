"""The training loop every method shares (``avmodels train``).

One loop for all methods: it builds the method by name, feeds it batches
from its own sample transform, optimises ``training_losses(batch)["loss"]``
(the method's ``losses`` of its ``encode``), validates with
``evaluation_step`` (``maps`` and ``validation_losses`` of one ``encode``)
and ``avmodels.metrics``, keeps the best
model, stops early when validation stops improving, and checkpoints so that
``--resume`` continues exactly where it stopped (same next batch, same
optimiser state, same RNG streams).

This module settles a run (config, run record, seeds, method, data) and
returns its :class:`TrainResult`; the loop itself is
:class:`avmodels.engine.trainer.Trainer` over one ``TrainState``.

Run directory::

    RUN/run.json            method, data, validation source, versions
    RUN/config.yaml         the resolved config (defaults + YAML + --set)
    RUN/checkpoints/last.pt full training state (see engine.checkpoint)
    RUN/best.pt             model file of the best validation (when validating)
    RUN/final.pt            model file at the end of training
    RUN/train_log.csv, val_log.csv, tensorboard/, plots/*.png, summary.json

An existing run directory is never deleted: training into one refuses unless
``--resume`` (continue) or ``--overwrite`` (write over its files).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avmodels import __version__
from avmodels.data import (
    MethodDataset,
    Sources,
    feature_tables,
    open_sources,
    split_validation,
)
from avmodels.engine import amp as amp_mod
from avmodels.engine import runfolder
from avmodels.engine.config import (
    apply_overrides,
    load_yaml,
    method_defaults,
    parse_set,
    resolve_config,
)
from avmodels.engine.config_sections import RunConfig, typed
from avmodels.engine.distributed import DistEnv, barrier, init_distributed, shutdown
from avmodels.engine.evaluate import load_annotations
from avmodels.engine.replicas import replica_plan, state_sha256
from avmodels.engine.selection import SELECT_HIGHER, apply_selection, update_selection
from avmodels.engine.store_check import check_store_inputs
from avmodels.engine.trainer import Trainer, TrainingError, TrainState
from avprep.errors import ConfigError, InputError

# names other modules import from here (the loop itself lives in engine.trainer)
__all__ = [
    "SELECT_HIGHER",
    "TrainRequest",
    "TrainResult",
    "TrainState",
    "Trainer",
    "TrainingError",
    "state_sha256",
    "train",
    "update_selection",
]

log = logging.getLogger(__name__)


@dataclass
class TrainRequest:
    """Everything ``avmodels train`` was asked to do."""

    method: str | None
    data: list[str]
    out: str
    val: list[str] | None = None
    val_fraction: float | None = None
    select_on_test: list[str] | None = None
    annotations: str | None = None
    benchmark: str | None = None
    config_file: str | None = None
    sets: list[str] = field(default_factory=list)
    resume: bool = False
    overwrite: bool = False
    progress: bool = True


@dataclass
class TrainResult:
    run_dir: Path
    method: str
    epochs_done: int
    steps: int
    best_score: float | None
    best_epoch: int | None
    select: str | None
    stopped_early: bool
    model_file: Path
    last_val: dict[str, Any] | None


# -- run directory ---------------------------------------------------------------
def _prepare_run(req: TrainRequest) -> tuple[str, RunConfig, dict[str, Any]]:
    """(method name, resolved and validated config, run record) for a new or resumed run.

    Every choice in the config is checked here (:func:`config_sections.typed`),
    before any data is opened or the run folder is made.
    """
    run = Path(req.out)
    if req.resume:
        info_path = run / "run.json"
        if not info_path.is_file() or not (run / "config.yaml").is_file():
            raise InputError(f"{run} is not a run directory to resume (no run.json/config.yaml)")
        info = json.loads(info_path.read_text())
        if req.method and req.method != info["method"]:
            raise ConfigError(f"{run} trains {info['method']}, not {req.method}")
        cfg = load_yaml(run / "config.yaml")
        cfg = apply_overrides(method_defaults(info["method"]), cfg, str(run / "config.yaml"))
        if req.sets:
            log.warning("resuming with overrides %s", req.sets)
            cfg = apply_overrides(cfg, parse_set(req.sets), "--set")
        return info["method"], typed(cfg), info
    if not req.method:
        raise ConfigError("name the method to train (see `avmodels methods`)")
    if not req.data:
        raise ConfigError("--data is required")
    if runfolder.has_files(run) and not req.overwrite:
        raise ConfigError(
            f"run directory {run} exists and is not empty: use --resume to continue it or "
            "--overwrite to write into it (nothing is deleted), or pick another --out"
        )
    overrides: dict[str, Any] = {}
    if req.val_fraction is not None:
        overrides.setdefault("data", {})["val_fraction"] = req.val_fraction
    if req.benchmark is not None:
        overrides.setdefault("eval", {})["benchmark"] = req.benchmark
    cfg = resolve_config(req.method, req.config_file, req.sets)
    if overrides:
        cfg = apply_overrides(cfg, overrides, "command line")
    rc = typed(cfg)
    sources = [x for x in (req.val, req.select_on_test) if x]
    if len(sources) > 1 or (sources and rc.data.val_fraction):
        raise ConfigError("give one of --val, --val-fraction, --select-on-test")
    info = {
        "method": req.method,
        "data": [str(Path(p).resolve()) for p in req.data],
        "val": [str(Path(p).resolve()) for p in req.val] if req.val else None,
        "select_on_test": [str(Path(p).resolve()) for p in req.select_on_test]
        if req.select_on_test
        else None,
        "annotations": str(Path(req.annotations).resolve()) if req.annotations else None,
        "avmodels_version": __version__,
        "torch_version": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    return req.method, rc, info


# -- data ------------------------------------------------------------------------
@dataclass
class _Data:
    train: MethodDataset
    val: MethodDataset | None
    annotations: dict[str, Any] | None
    source: str
    input: str = "cpu"  # train.input resolved: where the training frames are finished


def _build_data(
    method: Any, cfg: RunConfig, info: dict, env: DistEnv, progress: bool = True
) -> _Data:
    specs = method.feature_caches()
    # the keyword only when caches exist: methods without caches may take no argument
    modalities = method.required_inputs(cached=True) if specs else method.required_inputs()
    seed = cfg.train.seed
    stores = [*info["data"], *(info.get("val") or []), *(info.get("select_on_test") or [])]
    check_store_inputs(stores, modalities)  # from the indexes: before any shard is opened
    sources = open_sources(info["data"], modalities)
    train_rows: list[int] | None = None
    val_sources: Sources | None = None
    val_rows: list[int] | None = None
    frac = cfg.data.val_fraction
    if info.get("val"):
        val_sources, what = open_sources(info["val"], modalities), "--val"
    elif frac:
        train_rows, val_rows = split_validation(sources.ids, frac, seed)
        val_sources, what = sources, f"{len(val_rows)} clips held out of --data ({frac:.0%})"
    elif info.get("select_on_test"):
        warnings.warn(
            "--select-on-test: the model is selected on the test set, as the original "
            "papers did; the scores it reports are optimistic",
            stacklevel=2,
        )
        val_sources, what = open_sources(info["select_on_test"], modalities), "the TEST set"
    else:
        what = "none"
        if cfg.eval.every > 0:
            log.warning("no validation split: the final model is the last epoch's")
    if val_sources is not None and train_rows is None:
        overlap = set(sources.ids) & set(val_sources.ids)
        if overlap:
            log.warning(
                "%d clips are in both the training data and the validation data", len(overlap)
            )

    def tables(src: Sources | None) -> list:
        if src is None or not specs:
            return []
        cache_dir, bs = cfg.data.feature_cache_dir, cfg.data.cache_batch_size
        if env.is_main:
            workers = cfg.train.num_workers
            feature_tables(specs, src, cache_dir, env.device, batch_size=bs,
                           num_workers=workers, progress=progress)  # fmt: skip
        barrier(env)
        return feature_tables(specs, src, cache_dir, env.device, build=False)

    train_tables = tables(sources)
    val_tables = train_tables if val_sources is sources else tables(val_sources)
    augment = cfg.train.augment
    train_tf = method.sample_transform(train=True)
    from avmodels.engine.loaders import input_mode
    from avmodels.methods.batch_augment import batched

    has_batched = augment == "batch" and batched(train_tf) is not None
    mode = input_mode(cfg.train.input, env.device, augment, has_batched, sources.can_defer_frames())
    train_ds = MethodDataset(
        sources, train_tf, train_rows, seed, train_tables, augment, defer_frames=mode == "gpu"
    )
    val_ds = (
        MethodDataset(val_sources, method.sample_transform(train=False), val_rows, seed, val_tables)
        if val_sources is not None
        else None
    )
    anns = None
    bench = cfg.eval.benchmark
    if val_ds is not None and info.get("annotations"):
        if not bench:
            raise ConfigError("--annotations needs --benchmark (or eval.benchmark)")
        all_anns = load_annotations(info["annotations"], bench)
        anns = {c: all_anns[c] for c in val_ds.ids if c in all_anns}
        if not anns:
            log.warning("no validation clip has an annotation: validation loss only")
            anns = None
        elif len(anns) < len(val_ds):
            log.warning("%d of %d validation clips are annotated", len(anns), len(val_ds))
    return _Data(train_ds, val_ds, anns, what, mode)


# -- the run -------------------------------------------------------------------
def train(req: TrainRequest) -> TrainResult:
    """Run (or resume) one training run; see the module docstring."""
    method_name, cfg, info = _prepare_run(req)
    env = init_distributed(cfg.train.device)
    try:
        if env.is_main and Path(req.out).is_dir():
            runfolder.lock(Path(req.out))  # refuse a second run on a live one at once
        return _train(req, method_name, cfg, info, env)
    finally:
        runfolder.release(Path(req.out))
        shutdown()


def _train(req: TrainRequest, name: str, cfg: RunConfig, info: dict, env: DistEnv) -> TrainResult:
    """Settle the run (selection, replicas, seeds, method, data), then the Trainer's loop."""
    from avmodels.methods import METHODS

    amp = amp_mod.check_amp(cfg.train.amp, env.device)
    # which model is kept and how replicas relate: settled here, recorded in run.json
    cfg, info = apply_selection(name, cfg, info)
    plan = replica_plan(cfg.train, env)
    info = {**info, "world_size": env.world_size, "device": str(env.device)}
    info["replicas"] = dataclasses.asdict(plan)

    seed = cfg.train.seed
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    import random

    random.seed(seed)
    method = METHODS.get(name)(cfg.raw).to(env.device)
    if env.is_main and getattr(method, "run_notes", None):  # e.g. mssl's pseudo-label source
        info = {**info, "notes": list(method.run_notes)}
        for note in info["notes"]:
            log.warning(note)
        # run.json (with the notes) is written when the run folder is made (Trainer.run)
    if cfg.train.channels_last:
        method = method.to(memory_format=torch.channels_last)
    data = _build_data(method, cfg, info, env, progress=req.progress)
    if env.is_main:
        log.info("validation: %s", data.source)
    trainer = Trainer(req, name, cfg, info, env, plan=plan, method=method, data=data, amp=amp)
    state = trainer.run()
    run, best_file = Path(req.out), Path(req.out) / "best.pt"
    return TrainResult(
        run_dir=run,
        method=name,
        epochs_done=int(state.epoch),
        steps=int(state.step),
        best_score=state.best,
        best_epoch=state.best_epoch,
        select=trainer.select,
        stopped_early=bool(state.stopped_early),
        model_file=best_file if best_file.is_file() else run / "final.pt",
        last_val=state.last_val,
    )
