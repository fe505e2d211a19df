"""What a training run records: CSV logs, TensorBoard scalars, PNG plots.

``RUN/train_log.csv``: one row every ``train.log_every`` steps and at the
end of every epoch (step, epoch, loss terms, learning rate of each parameter
group, samples/s), so even a short run records its training loss.
``RUN/val_log.csv``: one row per validation (epoch, step, val loss, cIoU,
AUC, mean IoU, pointing). The same scalars go to TensorBoard
(``RUN/tensorboard``) when the ``tensorboard`` package is installed. At the
end, ``RUN/plots/loss.png`` and ``RUN/plots/val.png`` (matplotlib, Agg).
Only rank 0 writes. On ``--resume`` rows after the checkpoint's step are
dropped, so the logs read as one uninterrupted run.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The logger of the one-line-per-epoch report: shown at the default log level
#: (``avprep.clikit.setup_logging`` sets it to INFO), silenced with ``-q``.
EPOCH_LOG = "avmodels.epochs"
epoch_log = logging.getLogger(EPOCH_LOG)


class EpochTalk:
    """The line a run prints after every epoch: epoch, mean train loss, validation
    figures (or loss), seconds, and whether it is the new best.

    ``start()`` at the top of an epoch, ``step(loss)`` after every optimiser
    step, ``end(...)`` after the epoch's validation. The mean train loss is
    averaged over the processes and kept in ``state.train_loss`` (the
    ``TrainState``, so it reaches the checkpoint and ``summary.json``).
    """

    def __init__(self, epochs: int, env: Any, is_main: bool) -> None:
        self.epochs, self.env, self.is_main = epochs, env, is_main
        self.loss_sum, self.n, self.t0 = 0.0, 0, time.perf_counter()

    def start(self) -> None:
        self.loss_sum, self.n, self.t0 = 0.0, 0, time.perf_counter()

    def step(self, loss: float) -> None:
        self.loss_sum += float(loss)
        self.n += 1

    def end(
        self,
        epoch: int,
        state: Any,
        val: Mapping[str, Any] | None,
        improved: bool,
        select: str | None,
    ) -> str:
        from avmodels.engine.distributed import all_reduce_mean

        mean = all_reduce_mean(self.loss_sum / self.n, self.env) if self.n else float("nan")
        state.train_loss = mean
        seconds = time.perf_counter() - self.t0
        line = epoch_line(epoch, self.epochs, mean, val, seconds, improved, select)
        if self.is_main:
            epoch_log.info("%s", line)
        return line


def epoch_line(
    epoch: int,
    epochs: int,
    train_loss: float,
    val: Mapping[str, Any] | None,
    seconds: float,
    improved: bool,
    select: str | None,
) -> str:
    """``epoch 3/20  loss 0.4123  val ciou 0.512 auc 0.431 loss 0.39  41.2 s  new best ciou``."""
    parts = [f"epoch {epoch}/{epochs}", f"loss {train_loss:.4f}"]
    if val is not None:
        shown = [
            f"{key} {float(val[key]):.4f}"
            for key in ("ciou", "auc", "pointing")
            if val.get(key) is not None and not math.isnan(float(val[key]))
        ]
        vloss = val.get("val_loss")
        if vloss is not None and not math.isnan(float(vloss)):
            shown.append(f"loss {float(vloss):.4f}")
        parts.append("val " + (" ".join(shown) if shown else "n/a"))
    parts.append(f"{seconds:.1f} s")
    if improved and select:
        parts.append(f"new best {select}")
    return "  ".join(parts)


class CsvLog:
    """Append rows to a CSV whose columns are fixed by the first row written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fields: list[str] | None = None
        if path.is_file():
            with open(path, newline="") as fh:
                header = next(csv.reader(fh), None)
            self.fields = header or None

    def truncate_after(self, step: int) -> None:
        """Drop rows whose ``step`` is greater than ``step`` (for a resumed run)."""
        if not self.path.is_file():
            return
        with open(self.path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        kept = [r for r in rows if float(r.get("step") or 0) <= step]
        if len(kept) != len(rows) and self.fields:
            with open(self.path, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=self.fields)
                w.writeheader()
                w.writerows(kept)

    def write(self, row: Mapping[str, Any]) -> None:
        if self.fields is None:
            self.fields = list(row)
            with open(self.path, "w", newline="") as fh:
                csv.DictWriter(fh, fieldnames=self.fields).writeheader()
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=self.fields, extrasaction="ignore").writerow(dict(row))

    def read(self) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as fh:
            return list(csv.DictReader(fh))


class RunLog:
    """CSV + TensorBoard writer for one run directory (a no-op off rank 0)."""

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.train = CsvLog(self.run_dir / "train_log.csv")
        self.val = CsvLog(self.run_dir / "val_log.csv")
        self._tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
            except ImportError:  # tensorboard is optional at run time
                log.info("tensorboard not installed: CSV logs only")

    def resume_at(self, step: int) -> None:
        if self.enabled:
            self.train.truncate_after(step)
            self.val.truncate_after(step)

    def _scalars(self, prefix: str, row: Mapping[str, Any], step: int) -> None:
        if self._tb is None:
            return
        for key, value in row.items():
            if key in ("step", "epoch") or not isinstance(value, (int, float)):
                continue
            if isinstance(value, float) and math.isnan(value):
                continue
            self._tb.add_scalar(f"{prefix}/{key}", value, step)

    def log_train(self, row: Mapping[str, Any]) -> None:
        if self.enabled:
            self.train.write(row)
            self._scalars("train", row, int(row["step"]))

    def log_val(self, row: Mapping[str, Any]) -> None:
        if self.enabled:
            self.val.write(row)
            self._scalars("val", row, int(row["step"]))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None

    def plot(self) -> list[Path]:
        """Loss and validation curves as PNG files in ``RUN/plots``."""
        if not self.enabled:
            return []
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out: list[Path] = []
        folder = self.run_dir / "plots"
        folder.mkdir(exist_ok=True)
        train, val = self.train.read(), self.val.read()

        def series(rows: list[dict[str, str]], key: str) -> tuple[list[float], list[float]]:
            xs, ys = [], []
            for r in rows:
                v = r.get(key)
                if v not in (None, "", "nan"):
                    xs.append(float(r["epoch"]))
                    ys.append(float(v))
            return xs, ys

        def marker(xs: list[float]) -> str | None:
            return "o" if len(xs) == 1 else None  # a single point is invisible as a line

        if train or val:
            fig, ax = plt.subplots(figsize=(6, 4))
            xs, ys = series(train, "loss")
            ax.plot(xs, ys, marker=marker(xs), label="train")
            if val:
                ax.plot(*series(val, "val_loss"), "o-", label="validation")
            ax.set_xlabel("epoch")
            ax.set_ylabel("loss")
            ax.legend()
            fig.tight_layout()
            fig.savefig(folder / "loss.png", dpi=120)
            plt.close(fig)
            out.append(folder / "loss.png")
        if val and any(r.get("ciou") not in (None, "", "nan") for r in val):
            fig, ax = plt.subplots(figsize=(6, 4))
            for key in ("ciou", "auc", "pointing"):
                xs, ys = series(val, key)
                if ys:
                    ax.plot(xs, ys, "o-", label=key)
            ax.set_xlabel("epoch")
            ax.set_ylabel("validation")
            ax.legend()
            fig.tight_layout()
            fig.savefig(folder / "val.png", dpi=120)
            plt.close(fig)
            out.append(folder / "val.png")
        return out


def run_progress(run_dir: str | Path, summary: bool = False) -> dict[str, Any]:
    """What a run has done: its last checkpoint's progress (``epoch``, ``step``,
    ``train_loss``...), or with ``summary`` its ``summary.json``; ``{}`` if absent."""
    import json

    run = Path(run_dir)
    if summary:
        path = run / "summary.json"
        return json.loads(path.read_text()) if path.is_file() else {}
    ckpt = run / "checkpoints" / "last.pt"
    if not ckpt.is_file():
        return {}
    from avmodels.engine.checkpoint import load_checkpoint

    return dict(load_checkpoint(ckpt).get("progress") or {})
