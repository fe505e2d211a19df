"""One training run as ``avmodels train`` runs it: option values -> a request, the run, the
summary it prints (the command parses options and calls :func:`train_and_summarise`; the
pipeline step :func:`avmodels.steps.train` builds its request with :func:`train_request`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from avmodels.engine.train import TrainRequest, TrainResult
from avprep.errors import ConfigError


def option_sets(
    sets: Sequence[str] = (),
    *,
    device: str | None = None,
    amp: str | None = None,
    seed: int | None = None,
    compile_: bool | None = None,
    pretrained: bool | None = None,
) -> list[str]:
    """``sets`` and the options that are config keys, as ``key=value`` items (in this order:
    the ``--set`` items, device, amp, seed, compile, pretrained)."""
    out = list(sets)
    for key, value in (("train.device", device), ("train.amp", amp), ("train.seed", seed)):
        if value is not None:
            out.append(f"{key}={value}")
    if compile_:
        out.append("train.compile=true")
    if pretrained is not None:
        out.append(f"model.pretrained={'true' if pretrained else 'false'}")
    return out


def train_request(
    *,
    method: str | None,
    data: Sequence[str] | None,
    out: str | None,
    resume: str | None,
    val: Sequence[str] | None = None,
    val_fraction: float | None = None,
    select_on_test: Sequence[str] | None = None,
    annotations: str | None = None,
    benchmark: str | None = None,
    config_file: str | None = None,
    sets: list[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> TrainRequest:
    """The request of a new run into ``out``, or of ``resume`` (the run folder to go on)."""
    if resume and out and out != resume:
        raise ConfigError("--resume names the run directory; --out is not needed")
    if not resume and not out:
        raise ConfigError("--out RUN_DIR is required (or --resume RUN_DIR)")
    return TrainRequest(
        method=method,
        data=list(data or []),
        out=resume or out,
        val=list(val or []) or None,
        val_fraction=val_fraction,
        select_on_test=list(select_on_test or []) or None,
        annotations=annotations,
        benchmark=benchmark,
        config_file=config_file,
        sets=list(sets or []),
        resume=bool(resume),
        overwrite=overwrite,
        progress=progress,
    )


def summary_lines(res: TrainResult, before: dict[str, Any] | None, wall: float) -> list[str]:
    """What ``avmodels train`` prints at the end (``before``: a resumed run's progress)."""
    from avmodels.engine.runlog import run_progress

    lines = []
    if before is not None and before.get("step") == res.steps:
        lines.append(
            f"nothing left to do: {res.run_dir} finished at epoch {res.epochs_done} "
            f"({res.steps} steps); raise the budget to train on, e.g. "
            f"avmodels train --resume {res.run_dir} --set train.epochs={res.epochs_done + 5}"
        )
    lines += [f"method      {res.method}", f"run         {res.run_dir}"]
    lines.append(f"epochs      {res.epochs_done} ({res.steps} steps)")
    if res.select:
        best = "n/a" if res.best_score is None else f"{res.best_score:.4f}"
        lines.append(f"best {res.select:<6} {best} (epoch {res.best_epoch})")
    if res.stopped_early:
        lines.append("stopped early (eval.patience)")
    lines.append(f"model       {res.model_file}")
    loss = run_progress(res.run_dir, summary=True).get("train_loss")
    if loss is not None:
        lines.append(f"train loss  {loss:.4f} (mean over the last epoch)")
    lines.append(f"wall time   {wall:.1f} s")
    return lines


def train_and_summarise(req: TrainRequest, echo: Callable[..., Any]) -> None:
    """Run ``req`` and ``echo`` its summary (rank 0 only); Ctrl-C says how to go on and
    exits with status 130."""
    from avmodels.engine.runlog import run_progress
    from avmodels.engine.train import train

    before = run_progress(req.out) if req.resume else None
    t0 = time.perf_counter()
    try:
        res = train(req)
    except KeyboardInterrupt:
        if int(os.environ.get("RANK", "0")) == 0:
            echo(
                f"\ninterrupted: the last finished step is saved; continue with\n"
                f"  avmodels train --resume {req.out}",
                err=True,
            )
        raise SystemExit(130) from None
    wall = time.perf_counter() - t0
    if int(os.environ.get("RANK", "0")) != 0:
        return
    for line in summary_lines(res, before, wall):
        echo(line)
