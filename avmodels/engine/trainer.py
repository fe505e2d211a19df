"""The training loop: :class:`TrainState` (where a run is) and :class:`Trainer`.

``avmodels.engine.train.train`` settles the run (config, run record, method,
data) and hands them to a :class:`Trainer`, which builds the loader,
optimiser and scheduler, makes the run folder (last, once everything is
validated), restores ``--resume``'s checkpoint and runs the epochs:
:meth:`Trainer.step` per batch, :meth:`Trainer.end_epoch` (validation,
selection, early stopping), :meth:`Trainer.validate` and
:meth:`Trainer.checkpoint`. Everything a checkpoint must carry to continue
exactly lives in one :class:`TrainState`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from avmodels.data import EpochSampler, make_loader
from avmodels.engine import amp as amp_mod
from avmodels.engine import runfolder
from avmodels.engine.checkpoint import (
    load_checkpoint,
    save_checkpoint,
    save_model,
    set_rng_state,
)
from avmodels.engine.config import save_config
from avmodels.engine.config_sections import RunConfig
from avmodels.engine.distributed import (
    DistEnv,
    all_reduce_mean,
    barrier,
    broadcast_object,
    gather_objects,
)
from avmodels.engine.evaluate import predict_maps, score_maps
from avmodels.engine.replicas import ReplicaPlan, batchnorm_sha256, prepare_model, state_sha256
from avmodels.engine.replicas import describe as describe_replicas
from avmodels.engine.runlog import EpochTalk, RunLog
from avmodels.engine.selection import (
    SELECT_HIGHER,
    evaluate_before_training,
    select_key,
    update_selection,
)
from avprep.atomic import write_json
from avprep.errors import AvprepError, ConfigError

log = logging.getLogger("avmodels.engine.train")


class TrainingError(AvprepError):
    """Training cannot go on (e.g. the loss became NaN or infinite)."""


@dataclass
class TrainState:
    """Where a run is: what a checkpoint's ``progress`` holds and ``--resume`` restores."""

    epoch: int = 0  # epochs finished
    batch: int = 0  # batches done in the current epoch
    step: int = 0  # optimiser steps in all
    best: float | None = None  # best validation score so far
    best_epoch: int | None = None
    bad_validations: int = 0  # validations in a row without improvement
    stopped_early: bool = False
    last_val: dict[str, Any] | None = None  # the last validation row
    train_loss: float | None = None  # the last finished epoch's mean loss

    def as_dict(self) -> dict[str, Any]:
        """The checkpoint's ``progress`` (``train_loss`` appears once an epoch has ended)."""
        d = dataclasses.asdict(self)
        if d["train_loss"] is None:
            del d["train_loss"]
        return d

    @classmethod
    def from_dict(cls, progress: dict[str, Any]) -> TrainState:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in progress.items() if k in names})

    def record_validation(self, score: float | None, epoch: int, **rule: Any) -> bool:
        """Keep a validation score (see ``selection.update_selection``); True if new best."""
        d = self.as_dict()
        improved = update_selection(d, score, epoch, **rule)
        self.best, self.best_epoch = d["best"], d["best_epoch"]
        self.bad_validations, self.stopped_early = d["bad_validations"], d["stopped_early"]
        return improved


class LossWindow:
    """The losses and samples since the last ``train_log.csv`` row."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.n, self.samples, self.t0 = 0, 0, time.perf_counter()

    def add(self, losses: dict[str, torch.Tensor], samples: int) -> None:
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v.detach().float())
        self.n += 1
        self.samples += samples

    def row(self, env: DistEnv) -> dict[str, float]:
        """Mean losses over the window (and the processes), and samples per second."""
        dt = max(time.perf_counter() - self.t0, 1e-9)
        row = {k: all_reduce_mean(v / self.n, env) for k, v in self.sums.items()}
        row["samples_per_s"] = self.samples / dt
        return row


def lr_row(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """The learning rate of every parameter group, by the group's name."""
    return {f"lr_{g.get('name', i)}": float(g["lr"]) for i, g in enumerate(optimizer.param_groups)}


class Trainer:
    """One run's loop over a built method and its data (see the module docstring)."""

    def __init__(self, req: Any, name: str, cfg: RunConfig, info: dict, env: DistEnv, *,
                 plan: ReplicaPlan, method: Any, data: Any, amp: str) -> None:  # fmt: skip
        from avmodels.engine.localize import training_extraction

        self.req, self.name, self.cfg, self.info, self.env = req, name, cfg, info, env
        self.plan, self.method, self.data, self.amp = plan, method, data, amp
        self.run_dir = Path(req.out)
        self.ckpt_path = self.run_dir / "checkpoints" / "last.pt"
        tc = cfg.train
        self.channels_last = tc.channels_last
        # model files say how their inputs were extracted, so `localize` prepares a video alike
        self.extraction = training_extraction(data.train.sources)
        self.batch_size = tc.batch_size
        self.epochs = tc.epochs
        self.max_steps = tc.max_steps
        self.log_every = max(1, tc.log_every)
        self.ckpt_every = tc.checkpoint_every
        self.eval_every = cfg.eval.every
        self.eval_bs = cfg.eval.batch_size or self.batch_size
        self._build_loader()
        self._build_optimisation()
        self.state = TrainState()
        self._saved = ""  # the state last written to the checkpoint

    # -- setup -----------------------------------------------------------------------
    def _build_loader(self) -> None:
        cfg, env, data, tc = self.cfg, self.env, self.data, self.cfg.train
        # a method may batch its own way (mssl's scenes of several clips x pairs)
        own = getattr(self.method, "train_sampler", None)
        self.sampler = own and own(
            data.train.ids,
            batch_size=self.batch_size,
            rank=self.plan.rank,
            world_size=self.plan.world_size,
            seed=tc.seed,
            drop_last=cfg.data.drop_last,
        )
        if self.sampler is None:
            self.sampler = EpochSampler(
                len(data.train),
                batch_size=self.batch_size,
                rank=self.plan.rank,
                world_size=self.plan.world_size,
                shuffle=cfg.data.shuffle,
                seed=tc.seed,
                drop_last=cfg.data.drop_last,
            )
        rows_per_batch = getattr(self.sampler, "rows_per_batch", self.batch_size)
        self.steps_per_epoch = self.sampler.batches_per_epoch()
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"the training split has {len(data.train)} clips, fewer than one global batch "
                f"({self.batch_size} x {env.world_size} processes): lower train.batch_size"
            )
        self.loader = make_loader(
            data.train,
            batch_size=rows_per_batch,
            sampler=self.sampler,
            num_workers=tc.num_workers,
            pin_memory=env.device.type == "cuda",
            kind=tc.loader,
        )
        if data.input == "gpu":  # workers hand over JPEG bytes: decode and augment on the device
            from avmodels.engine.loaders import DeviceInput

            self.loader = DeviceInput(self.loader, data.train.finish, env.device)
        if env.is_main:
            log.info("training input: %s (augment=%s)", data.input, tc.augment)

    def _build_optimisation(self) -> None:
        env, method, tc = self.env, self.method, self.cfg.train
        self.model = prepare_model(method, self.plan, env, tc)
        self.replica_line = describe_replicas(
            self.plan, len(self.data.train), self.batch_size, self.steps_per_epoch
        )
        if env.is_main:
            log.info("%s", self.replica_line)
        self.optimizer = method.build_optimizer()
        self.scheduler = method.build_scheduler(self.optimizer, self.steps_per_epoch)
        self.scaler = amp_mod.grad_scaler(self.amp, env.device)
        self.forward = torch.compile(self.model) if tc.compile else self.model
        has_anns = self.data.annotations is not None
        self.select = select_key(self.cfg.eval, has_anns) if self.data.val is not None else None
        self.higher = SELECT_HIGHER.get(self.select or "loss", False)

    def _open_run_folder(self) -> None:
        """Everything is validated: only now the run folder is made (engine.runfolder)."""
        if self.env.is_main:
            runfolder.lock(self.run_dir)
            (self.run_dir / "checkpoints").mkdir(exist_ok=True)
            save_config(self.cfg.raw, self.run_dir / "config.yaml")
            write_json(self.run_dir / "run.json", self.info)
        barrier(self.env)
        self.runlog = RunLog(self.run_dir, enabled=self.env.is_main)

    def _restore(self) -> bool:
        """``--resume``: load the last checkpoint; True when the run continues from one."""
        req, env = self.req, self.env
        scratch = req.resume and runfolder.resume_from_scratch(self.run_dir, self.ckpt_path)
        if req.resume and not scratch:
            ckpt = load_checkpoint(self.ckpt_path)
            self.method.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            if self.scheduler is not None and ckpt["scheduler"] is not None:
                self.scheduler.load_state_dict(ckpt["scheduler"])
            if self.scaler is not None and ckpt["scaler"] is not None:
                self.scaler.load_state_dict(ckpt["scaler"])
            set_rng_state(ckpt["rng"])
            self.state = TrainState.from_dict(ckpt["progress"])
            self.runlog.resume_at(self.state.step)
            if env.is_main:
                log.info("resumed at epoch %d, batch %d", self.state.epoch, self.state.batch)
            return True
        if env.is_main and (req.overwrite or scratch):
            for f in (self.runlog.train.path, self.runlog.val.path):
                if f.exists():
                    f.write_text("")  # start the logs afresh (the folder itself is kept)
            self.runlog = RunLog(self.run_dir, enabled=True)
        return False

    # -- the loop ----------------------------------------------------------------------
    def run(self) -> TrainState:
        """Train to the end (epochs, max_steps or early stop); the final state."""
        self._open_run_folder()
        resumed = self._restore()
        self.window = LossWindow()  # one window across epochs: rows fall at each epoch's end
        if self.data.val is not None and evaluate_before_training(self.info, resumed):
            self.runlog.log_val(self.validate())  # the original's epoch 0: logged, not kept
        self.talk = EpochTalk(self.epochs, self.env, self.env.is_main)
        try:
            go_on = not (self.state.stopped_early or self._max_steps_reached())
            while self.state.epoch < self.epochs and go_on:
                go_on = self.train_epoch()
        except KeyboardInterrupt:
            self.checkpoint()  # finished steps are kept; --resume continues from here
            raise
        self.checkpoint()
        self._finish()
        return self.state

    def _max_steps_reached(self) -> bool:
        return self.max_steps is not None and self.state.step >= self.max_steps

    def train_epoch(self) -> bool:
        """The rest of the current epoch; False when the run stops after it."""
        s = self.state
        epoch = int(s.epoch)
        self.sampler.set_epoch(epoch, skip_batches=int(s.batch))
        self.method.on_epoch_start(epoch)
        self.talk.start()
        self.model.train()
        bar = tqdm(
            self.loader,
            total=self.steps_per_epoch - int(s.batch),
            desc=f"epoch {epoch + 1}/{self.epochs}",
            unit="batch",
            disable=not (self.req.progress and self.env.is_main),
        )
        stop = False
        for batch_data in bar:
            self.step(batch_data, epoch, bar)
            if self.ckpt_every and s.step % self.ckpt_every == 0:
                self.checkpoint()
            if self._max_steps_reached():
                stop = True
                break
        bar.close()
        if s.batch < self.steps_per_epoch:
            return False  # stopped by max_steps inside the epoch: resume continues it
        return self.end_epoch(epoch) and not stop

    def step(self, batch_data: dict[str, Any], epoch: int, bar: Any) -> None:
        """One optimiser step on one batch, and its ``train_log.csv`` row when due."""
        s, env, method = self.state, self.env, self.method
        n_local = len(batch_data["clip_id"])
        batch_data = method.batch_to_device(batch_data, env.device, self.channels_last)
        with amp_mod.autocast(self.amp, env.device):
            losses = self.forward(batch_data)
        loss = losses["loss"]
        if not torch.isfinite(loss.detach()).all():
            raise TrainingError(
                f"the loss is {float(loss)} at step {s.step + 1} "
                f"(epoch {epoch + 1}); lower the learning rates or use train.amp=none"
            )
        self._optimise(loss)
        s.step += 1
        s.batch += 1
        method.after_optimizer_step(int(s.step))
        self.window.add(losses, n_local * env.world_size)
        self.talk.step(float(loss.detach().float()))
        if s.step % self.log_every == 0 or s.batch == self.steps_per_epoch:
            row: dict[str, Any] = {"step": s.step, "epoch": epoch + s.batch / self.steps_per_epoch}
            means = self.window.row(env)
            speed = means.pop("samples_per_s")
            row.update(means)
            row.update(lr_row(self.optimizer))
            row["samples_per_s"] = speed
            self.runlog.log_train(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            self.window = LossWindow()

    def _optimise(self, loss: torch.Tensor) -> None:
        optimizer, scaler, clip = self.optimizer, self.scaler, self.cfg.train.grad_clip
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(self.method.parameters(), clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(self.method.parameters(), clip)
            optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()

    def end_epoch(self, epoch: int) -> bool:
        """Validate when due, keep the best model, talk, checkpoint; False on early stop."""
        s = self.state
        s.epoch, s.batch = epoch + 1, 0
        row, improved, go_on = None, False, True
        if self.data.val is not None and self.eval_every > 0 and (epoch + 1) % self.eval_every == 0:
            row = self.validate()
            self.runlog.log_val(row)
            s.last_val = row
            score = row.get("val_loss" if self.select == "loss" else self.select)
            patience = self.cfg.eval.patience
            improved = s.record_validation(
                score,
                epoch + 1,
                higher=self.higher,
                min_delta=self.cfg.eval.min_delta,
                patience=patience,
            )
            if improved and self.env.is_main:
                meta = {"epoch": epoch + 1, "select": self.select, "score": score}
                meta["extraction"] = self.extraction
                save_model(self.run_dir / "best.pt", self.method, self.cfg.raw, meta=meta)
            if s.stopped_early:
                log.info("early stop: %s validations without improvement", patience)
                go_on = False
        self.talk.end(epoch + 1, s, row, improved, self.select)
        self.checkpoint()
        return go_on

    def validate(self) -> dict[str, Any]:
        """One validation row (loss, and the metrics when annotated), on every process."""
        env = self.env
        if self.plan.independent and env.distributed:
            # SSPL: only rank 0 evaluates, its own replica (the one it saves)
            row = self._validate_on(DistEnv(device=env.device)) if env.is_main else None
            return broadcast_object(row, env)
        return self._validate_on(env)

    def _validate_on(self, env: DistEnv) -> dict[str, Any]:
        cfg, s = self.cfg, self.state
        maps, vloss = predict_maps(
            self.method,
            self.data.val,
            env=env,
            batch_size=self.eval_bs,
            amp=self.amp,
            channels_last=self.channels_last,
            with_loss=cfg.eval.loss,
            progress=self.req.progress and env.is_main,
        )
        row: dict[str, Any] = {
            "step": s.step,
            "epoch": s.epoch,
            "val_loss": float("nan") if vloss is None else vloss,
        }
        if self.data.annotations:
            res = score_maps(maps, self.data.annotations, cfg.eval.preset, allow_missing=True)
            row.update(ciou=res.ciou, auc=res.auc, mean_iou=res.mean_iou, pointing=res.pointing)
        if env.is_main:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("step", "epoch"))
            log.info("validation after epoch %d: %s", s.epoch, shown)
        return row

    def checkpoint(self) -> None:
        """Save the full training state to ``checkpoints/last.pt`` unless unchanged."""
        progress = self.state.as_dict()
        state = json.dumps(progress, sort_keys=True, default=str)
        if state == self._saved:
            return  # nothing changed since the last save
        if self.env.is_main:
            save_checkpoint(
                self.ckpt_path,
                method=self.name,
                model=self.method,
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                scaler=self.scaler,
                progress=progress,
            )
        self._saved = state  # only once written: a Ctrl-C mid-save saves again

    # -- the end -------------------------------------------------------------------------
    def _finish(self) -> None:
        """final.pt, the plots and summary.json; replica hashes compared across processes."""
        s, env, run = self.state, self.env, self.run_dir
        replicas = gather_objects(state_sha256(self.method), env)
        if len(set(replicas)) > 1 and not self.plan.independent:
            log.error("model replicas differ between processes: %s", replicas)
        independent = self.plan.independent
        bn_hashes = gather_objects(batchnorm_sha256(self.method), env) if independent else None
        if env.is_main:
            meta = {"epoch": s.epoch, "step": s.step, "extraction": self.extraction}
            save_model(run / "final.pt", self.method, self.cfg.raw, meta=meta)
            self.runlog.close()
            self.runlog.plot()
            result = {
                "method": self.name,
                "epochs_done": s.epoch,
                "steps": s.step,
                "select": self.select,
                "best_score": s.best,
                "best_epoch": s.best_epoch,
                "stopped_early": s.stopped_early,
                "last_val": s.last_val,
                "train_loss": s.train_loss,
                "validation": self.data.source,
                "world_size": env.world_size,
                "replica_sha256": replicas,
                "replicas": self.replica_line,
                "replica_batchnorm_sha256": bn_hashes,
                "selection": self.info["selection"],
            }
            write_json(run / "summary.json", result)
        barrier(env)
