"""The training loop every method shares (``avmodels train``).

One loop for all methods: it builds the method by name, feeds it batches
from its own sample transform, optimises ``training_losses(batch)["loss"]``,
validates with ``evaluation_step`` and ``avmodels.metrics``, keeps the best
model, stops early when validation stops improving, and checkpoints so that
``--resume`` continues exactly where it stopped (same next batch, same
optimiser state, same RNG streams).

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
import hashlib
import json
import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from avmodels import __version__
from avmodels.data import (
    EpochSampler,
    MethodDataset,
    Sources,
    feature_tables,
    make_loader,
    open_sources,
    split_validation,
)
from avmodels.engine import amp as amp_mod
from avmodels.engine import runfolder
from avmodels.engine.checkpoint import (
    load_checkpoint,
    save_checkpoint,
    save_model,
    set_rng_state,
)
from avmodels.engine.config import (
    apply_overrides,
    load_yaml,
    parse_set,
    resolve_config,
    save_config,
)
from avmodels.engine.distributed import (
    DistEnv,
    all_reduce_mean,
    barrier,
    broadcast_object,
    gather_objects,
    init_distributed,
    shutdown,
)
from avmodels.engine.evaluate import load_annotations, predict_maps, score_maps
from avmodels.engine.replicas import batchnorm_sha256, prepare_model, replica_plan
from avmodels.engine.replicas import describe as describe_replicas
from avmodels.engine.runlog import EpochTalk, RunLog
from avmodels.engine.selection import apply_selection, evaluate_before_training
from avprep.atomic import write_json
from avprep.errors import AvprepError, ConfigError, InputError

log = logging.getLogger(__name__)

SELECT_HIGHER = {"ciou": True, "auc": True, "pointing": True, "mean_iou": True, "loss": False}


class TrainingError(AvprepError):
    """Training cannot go on (e.g. the loss became NaN or infinite)."""


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
def _prepare_run(req: TrainRequest) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(method name, resolved config, run record) for a new or resumed run."""
    run = Path(req.out)
    if req.resume:
        info_path = run / "run.json"
        if not info_path.is_file() or not (run / "config.yaml").is_file():
            raise InputError(f"{run} is not a run directory to resume (no run.json/config.yaml)")
        info = json.loads(info_path.read_text())
        if req.method and req.method != info["method"]:
            raise ConfigError(f"{run} trains {info['method']}, not {req.method}")
        cfg = load_yaml(run / "config.yaml")
        from avmodels.engine.config import method_defaults

        cfg = apply_overrides(method_defaults(info["method"]), cfg, str(run / "config.yaml"))
        if req.sets:
            log.warning("resuming with overrides %s", req.sets)
            cfg = apply_overrides(cfg, parse_set(req.sets), "--set")
        return info["method"], cfg, info
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
    sources = [x for x in (req.val, req.select_on_test) if x]
    if len(sources) > 1 or (sources and cfg["data"]["val_fraction"]):
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
    return req.method, cfg, info


# -- data ------------------------------------------------------------------------
@dataclass
class _Data:
    train: MethodDataset
    val: MethodDataset | None
    annotations: dict[str, Any] | None
    source: str
    input: str = "cpu"  # train.input resolved: where the training frames are finished


def _build_data(method: Any, cfg: dict, info: dict, env: DistEnv) -> _Data:
    specs = method.feature_caches()
    # the keyword only when caches exist: methods without caches may take no argument
    modalities = method.required_inputs(cached=True) if specs else method.required_inputs()
    seed = int(cfg["train"]["seed"])
    sources = open_sources(info["data"], modalities)
    train_rows: list[int] | None = None
    val_sources: Sources | None = None
    val_rows: list[int] | None = None
    frac = cfg["data"]["val_fraction"]
    if info.get("val"):
        val_sources, what = open_sources(info["val"], modalities), "--val"
    elif frac:
        train_rows, val_rows = split_validation(sources.ids, float(frac), seed)
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
        if int(cfg["eval"]["every"]) > 0:
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
        cache_dir = cfg["data"]["feature_cache_dir"]
        bs = int(cfg["data"]["cache_batch_size"])
        if env.is_main:
            workers = int(cfg["train"]["num_workers"])
            feature_tables(specs, src, cache_dir, env.device, batch_size=bs, num_workers=workers)
        barrier(env)
        return feature_tables(specs, src, cache_dir, env.device, build=False)

    train_tables = tables(sources)
    val_tables = train_tables if val_sources is sources else tables(val_sources)
    augment = str(cfg["train"].get("augment", "batch"))
    train_tf = method.sample_transform(train=True)
    from avmodels.engine.loaders import input_mode
    from avmodels.methods.batch_augment import batched

    has_batched = augment == "batch" and batched(train_tf) is not None
    mode = input_mode(
        cfg["train"].get("input"), env.device, augment, has_batched, sources.can_defer_frames()
    )
    train_ds = MethodDataset(
        sources, train_tf, train_rows, seed, train_tables, augment, defer_frames=mode == "gpu"
    )
    val_ds = (
        MethodDataset(val_sources, method.sample_transform(train=False), val_rows, seed, val_tables)
        if val_sources is not None
        else None
    )
    anns = None
    bench = cfg["eval"]["benchmark"]
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


# -- the loop --------------------------------------------------------------------
def _lr_row(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    row = {}
    for i, g in enumerate(optimizer.param_groups):
        row[f"lr_{g.get('name', i)}"] = float(g["lr"])
    return row


def _select_key(cfg: dict, has_anns: bool) -> str:
    key = str(cfg["eval"]["select"]).lower()
    if key == "auto":
        return "ciou" if has_anns else "loss"
    if key not in SELECT_HIGHER:
        raise ConfigError(f"eval.select must be auto or one of {', '.join(SELECT_HIGHER)}")
    if key != "loss" and not has_anns:
        raise ConfigError(f"eval.select={key} needs validation annotations (--annotations)")
    return key


def train(req: TrainRequest) -> TrainResult:
    """Run (or resume) one training run; see the module docstring."""
    method_name, cfg, info = _prepare_run(req)
    env = init_distributed(cfg["train"]["device"])
    try:
        if env.is_main and Path(req.out).is_dir():
            runfolder.lock(Path(req.out))  # refuse a second run on a live one at once
        return _train(req, method_name, cfg, info, env)
    finally:
        runfolder.release(Path(req.out))
        shutdown()


def _train(req: TrainRequest, name: str, cfg: dict, info: dict, env: DistEnv) -> TrainResult:
    from avmodels.methods import METHODS

    run = Path(req.out)
    tc = cfg["train"]
    amp = amp_mod.check_amp(tc["amp"], env.device)
    channels_last = bool(tc["channels_last"])
    # which model is kept and how replicas relate: settled here, recorded in run.json
    cfg, info = apply_selection(name, cfg, info)
    plan = replica_plan(cfg, env)
    info = {**info, "world_size": env.world_size, "device": str(env.device)}
    info["replicas"] = dataclasses.asdict(plan)

    seed = int(tc["seed"])
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    import random

    random.seed(seed)
    method = METHODS.get(name)(cfg).to(env.device)
    if env.is_main and getattr(method, "run_notes", None):  # e.g. mssl's pseudo-label source
        info = {**info, "notes": list(method.run_notes)}
        for note in info["notes"]:
            log.warning(note)
        # run.json (with the notes) is written when the run folder is made, below
    if channels_last:
        method = method.to(memory_format=torch.channels_last)
    data = _build_data(method, cfg, info, env)
    if env.is_main:
        log.info("validation: %s", data.source)
    from avmodels.engine.localize import training_extraction

    # model files say how their inputs were extracted, so `localize` prepares a video alike
    extraction = training_extraction(data.train.sources)

    batch = int(tc["batch_size"])
    sampler = EpochSampler(
        len(data.train),
        batch_size=batch,
        rank=plan.rank,
        world_size=plan.world_size,
        shuffle=bool(cfg["data"]["shuffle"]),
        seed=seed,
        drop_last=bool(cfg["data"]["drop_last"]),
    )
    steps_per_epoch = sampler.batches_per_epoch()
    if steps_per_epoch == 0:
        raise ConfigError(
            f"the training split has {len(data.train)} clips, fewer than one global batch "
            f"({batch} x {env.world_size} processes): lower train.batch_size"
        )
    workers = int(tc["num_workers"])
    loader = make_loader(
        data.train,
        batch_size=batch,
        sampler=sampler,
        num_workers=workers,
        pin_memory=env.device.type == "cuda",
        kind=str(tc["loader"]),
    )
    if data.input == "gpu":  # workers hand over JPEG bytes: decode and augment on the device
        from avmodels.engine.loaders import DeviceInput

        loader = DeviceInput(loader, data.train.finish, env.device)
    if env.is_main:
        log.info("training input: %s (augment=%s)", data.input, tc.get("augment", "batch"))
    model = prepare_model(method, plan, env, cfg)
    replica_line = describe_replicas(plan, len(data.train), batch, steps_per_epoch)
    if env.is_main:
        log.info("%s", replica_line)
    optimizer = method.build_optimizer()
    scheduler = method.build_scheduler(optimizer, steps_per_epoch)
    scaler = amp_mod.grad_scaler(amp, env.device)
    forward = torch.compile(model) if tc["compile"] else model
    select = _select_key(cfg, data.annotations is not None) if data.val is not None else None
    higher = SELECT_HIGHER.get(select or "loss", False)

    progress: dict[str, Any] = {
        "epoch": 0,
        "batch": 0,
        "step": 0,
        "best": None,
        "best_epoch": None,
        "bad_validations": 0,
        "stopped_early": False,
        "last_val": None,
    }
    # everything is validated: only now the run folder is made (avmodels.engine.runfolder)
    if env.is_main:
        runfolder.lock(run)
        (run / "checkpoints").mkdir(exist_ok=True)
        save_config(cfg, run / "config.yaml")
        write_json(run / "run.json", info)
    barrier(env)
    ckpt_path = run / "checkpoints" / "last.pt"
    runlog = RunLog(run, enabled=env.is_main)
    scratch = req.resume and runfolder.resume_from_scratch(run, ckpt_path)
    if req.resume and not scratch:
        ckpt = load_checkpoint(ckpt_path)
        method.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt["scheduler"] is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt["scaler"] is not None:
            scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        progress.update(ckpt["progress"])
        runlog.resume_at(progress["step"])
        if env.is_main:
            log.info("resumed at epoch %d, batch %d", progress["epoch"], progress["batch"])
    elif env.is_main and (req.overwrite or scratch):
        for f in (runlog.train.path, runlog.val.path):
            if f.exists():
                f.write_text("")  # start the logs afresh (the folder itself is kept)
        runlog = RunLog(run, enabled=True)

    saved: list[str] = [""]

    def checkpoint() -> None:
        state = json.dumps(progress, sort_keys=True, default=str)
        if state == saved[0]:
            return  # nothing changed since the last save
        if env.is_main:
            save_checkpoint(
                ckpt_path,
                method=name,
                model=method,
                optimizer=optimizer,
                scheduler=scheduler,
                scaler=scaler,
                progress=progress,
            )
        saved[0] = state  # only once written: a Ctrl-C mid-save saves again

    epochs = int(tc["epochs"])
    max_steps = tc["max_steps"]
    log_every = max(1, int(tc["log_every"]))
    ckpt_every = int(tc["checkpoint_every"] or 0)
    eval_every = int(cfg["eval"]["every"])
    patience = cfg["eval"]["patience"]
    eval_bs = int(cfg["eval"]["batch_size"] or batch)
    stop = progress["stopped_early"] or (max_steps is not None and progress["step"] >= max_steps)
    window: dict[str, float] = {}
    window_n, window_t, window_samples = 0, time.perf_counter(), 0

    def validate() -> dict[str, Any]:
        if plan.independent and env.distributed:
            # SSPL: only rank 0 evaluates, its own replica (the one it saves)
            row = None
            if env.is_main:
                row = _validate(method, data, DistEnv(device=env.device), cfg, eval_bs, amp,
                                channels_last, req.progress, progress)  # fmt: skip
            return broadcast_object(row, env)
        return _validate(
            method, data, env, cfg, eval_bs, amp, channels_last, req.progress, progress
        )

    if data.val is not None and evaluate_before_training(info, req.resume and not scratch):
        runlog.log_val(validate())  # the original's evaluation at epoch 0: logged, not kept
    talk = EpochTalk(epochs, env, env.is_main)
    try:
        while progress["epoch"] < epochs and not stop:
            epoch = int(progress["epoch"])
            sampler.set_epoch(epoch, skip_batches=int(progress["batch"]))
            method.on_epoch_start(epoch)
            talk.start()
            model.train()
            bar = tqdm(
                loader,
                total=steps_per_epoch - int(progress["batch"]),
                desc=f"epoch {epoch + 1}/{epochs}",
                unit="batch",
                disable=not (req.progress and env.is_main),
            )
            for batch_data in bar:
                n_local = len(batch_data["clip_id"])
                batch_data = method.batch_to_device(batch_data, env.device, channels_last)
                with amp_mod.autocast(amp, env.device):
                    losses = forward(batch_data)
                loss = losses["loss"]
                if not torch.isfinite(loss.detach()).all():
                    raise TrainingError(
                        f"the loss is {float(loss)} at step {progress['step'] + 1} "
                        f"(epoch {epoch + 1}); lower the learning rates or use train.amp=none"
                    )
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    if tc["grad_clip"]:
                        scaler.unscale_(optimizer)
                        torch.nn.utils.clip_grad_norm_(method.parameters(), float(tc["grad_clip"]))
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    if tc["grad_clip"]:
                        torch.nn.utils.clip_grad_norm_(method.parameters(), float(tc["grad_clip"]))
                    optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                progress["step"] += 1
                progress["batch"] += 1
                method.after_optimizer_step(int(progress["step"]))
                for k, v in losses.items():
                    window[k] = window.get(k, 0.0) + float(v.detach().float())
                window_n += 1
                window_samples += n_local * env.world_size
                talk.step(float(loss.detach().float()))
                last_of_epoch = progress["batch"] == steps_per_epoch
                if progress["step"] % log_every == 0 or last_of_epoch:
                    dt = max(time.perf_counter() - window_t, 1e-9)
                    row = {
                        "step": progress["step"],
                        "epoch": epoch + progress["batch"] / steps_per_epoch,
                    }
                    for k, v in window.items():
                        row[k] = all_reduce_mean(v / window_n, env)
                    row.update(_lr_row(optimizer))
                    row["samples_per_s"] = window_samples / dt
                    runlog.log_train(row)
                    bar.set_postfix(loss=f"{row['loss']:.4f}")
                    window, window_n, window_samples = {}, 0, 0
                    window_t = time.perf_counter()
                if ckpt_every and progress["step"] % ckpt_every == 0:
                    checkpoint()
                if max_steps is not None and progress["step"] >= max_steps:
                    stop = True
                    break
            bar.close()
            if progress["batch"] < steps_per_epoch:
                break  # stopped by max_steps inside the epoch: resume continues it
            progress["epoch"] = epoch + 1
            progress["batch"] = 0
            row, improved = None, False
            if data.val is not None and eval_every > 0 and (epoch + 1) % eval_every == 0:
                row = validate()
                runlog.log_val(row)
                progress["last_val"] = row
                score = row.get("val_loss" if select == "loss" else select)
                improved = update_selection(
                    progress,
                    score,
                    epoch + 1,
                    higher=higher,
                    min_delta=float(cfg["eval"]["min_delta"]),
                    patience=patience,
                )
                if improved and env.is_main:
                    meta = {"epoch": epoch + 1, "select": select, "score": score}
                    meta["extraction"] = extraction
                    save_model(run / "best.pt", method, cfg, meta=meta)
                if progress["stopped_early"]:
                    log.info("early stop: %s validations without improvement", patience)
                    stop = True
            talk.end(epoch + 1, progress, row, improved, select)
            checkpoint()
    except KeyboardInterrupt:
        checkpoint()  # finished steps are kept; --resume continues from here
        raise
    checkpoint()
    replicas = gather_objects(state_sha256(method), env)
    if len(set(replicas)) > 1 and not plan.independent:
        log.error("model replicas differ between processes: %s", replicas)
    bn_hashes = gather_objects(batchnorm_sha256(method), env) if plan.independent else None
    final = run / "final.pt"
    if env.is_main:
        meta = {"epoch": progress["epoch"], "step": progress["step"], "extraction": extraction}
        save_model(final, method, cfg, meta=meta)
        runlog.close()
        runlog.plot()
        result = {
            "method": name,
            "epochs_done": progress["epoch"],
            "steps": progress["step"],
            "select": select,
            "best_score": progress["best"],
            "best_epoch": progress["best_epoch"],
            "stopped_early": progress["stopped_early"],
            "last_val": progress["last_val"],
            "train_loss": progress.get("train_loss"),
            "validation": data.source,
            "world_size": env.world_size,
            "replica_sha256": replicas,
            "replicas": replica_line,
            "replica_batchnorm_sha256": bn_hashes,
            "selection": info["selection"],
        }
        write_json(run / "summary.json", result)
    barrier(env)
    best_file = run / "best.pt"
    return TrainResult(
        run_dir=run,
        method=name,
        epochs_done=int(progress["epoch"]),
        steps=int(progress["step"]),
        best_score=progress["best"],
        best_epoch=progress["best_epoch"],
        select=select,
        stopped_early=bool(progress["stopped_early"]),
        model_file=best_file if best_file.is_file() else final,
        last_val=progress["last_val"],
    )


def update_selection(
    progress: dict[str, Any],
    score: float | None,
    epoch: int,
    *,
    higher: bool,
    min_delta: float = 0.0,
    patience: int | None = None,
) -> bool:
    """Record one validation score; True if it is the new best.

    A missing or NaN score counts as no improvement. After ``patience``
    validations in a row without improvement, ``progress["stopped_early"]``
    is set.
    """
    best = progress.get("best")
    ok = score is not None and not math.isnan(score)
    better = ok and (
        best is None or (score > best + min_delta if higher else score < best - min_delta)
    )
    if better:
        progress.update(best=score, best_epoch=epoch, bad_validations=0)
        return True
    progress["bad_validations"] = int(progress.get("bad_validations", 0)) + 1
    if patience is not None and progress["bad_validations"] >= int(patience):
        progress["stopped_early"] = True
    return False


def _validate(
    method: Any,
    data: _Data,
    env: DistEnv,
    cfg: dict,
    batch_size: int,
    amp: str,
    channels_last: bool,
    show: bool,
    progress: dict,
) -> dict[str, Any]:
    maps, vloss = predict_maps(
        method,
        data.val,
        env=env,
        batch_size=batch_size,
        amp=amp,
        channels_last=channels_last,
        with_loss=bool(cfg["eval"]["loss"]),
        progress=show and env.is_main,
    )
    row: dict[str, Any] = {
        "step": progress["step"],
        "epoch": progress["epoch"],
        "val_loss": float("nan") if vloss is None else vloss,
    }
    if data.annotations:
        res = score_maps(maps, data.annotations, cfg["eval"]["preset"], allow_missing=True)
        row.update(ciou=res.ciou, auc=res.auc, mean_iou=res.mean_iou, pointing=res.pointing)
    if env.is_main:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("step", "epoch"))
        log.info("validation after epoch %d: %s", progress["epoch"], shown)
    return row


def state_sha256(module: torch.nn.Module) -> str:
    """A hash of every parameter and buffer: equal on all processes iff replicas agree."""
    h = hashlib.sha256()
    for key, value in module.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
