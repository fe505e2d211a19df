"""``avmodels train``: train a registered method on avprep shards (thin CLI layer).

The loop is :func:`avmodels.engine.train.train`; see docs/training.md.
"""

from __future__ import annotations

import sys

import click

from avmodels.engine.amp import AMP_MODES
from avprep.clikit import benchmark_option


def show_progress(no_progress: bool) -> bool:
    """Progress bars unless ``--no-progress`` or stderr is not a terminal (a log file)."""
    return not no_progress and sys.stderr.isatty()


@click.command(context_settings={"show_default": True})
@click.argument("method", required=False)
@click.option(
    "--data",
    multiple=True,
    help="Training store (folder with index.json, shard file, or SSPL layout); repeat for several.",
)
@click.option("--val", multiple=True, help="Validation store(s), distinct from the test set.")
@click.option(
    "--val-fraction",
    type=float,
    help="Hold out this fraction of --data clips (chosen by a hash of the clip id) for validation.",
)
@click.option(
    "--select-on-test",
    multiple=True,
    metavar="TEST_STORE",
    help="Validate (select the model) on the TEST store, as the papers did. Warns.",
)
@click.option(
    "--annotations",
    type=click.Path(exists=True),
    help="Ground truth of the validation clips (val cIoU/AUC; with --benchmark).",
)
@benchmark_option(help="Annotation format of --annotations.")
@click.option(
    "--config",
    "config_file",
    help="YAML file of config overrides, or a preset name shipped for the method "
    "(e.g. chaotic-world: the Chaotic World fork's settings; docs/training.md).",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one config key, e.g. --set train.epochs=5 (repeatable).",
)
@click.option("--out", type=click.Path(file_okay=False), help="Run directory to create.")
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(file_okay=False, exists=True),
    help="Continue the run in this directory exactly where it stopped.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Write into an existing run directory "
    "(its files are overwritten, the folder is never deleted).",
)
@click.option(
    "--pretrained/--no-pretrained",
    default=None,
    help="Pretrained backbones (default: the method's, i.e. the paper's).",
)
@click.option("--device", help="cpu | cuda | cuda:N | auto (sets train.device).")
@click.option("--amp", type=click.Choice(AMP_MODES), help="Mixed precision.")
@click.option("--compile", "compile_", is_flag=True, default=None, help="torch.compile.")
@click.option(
    "--no-progress",
    is_flag=True,
    help="No progress bars (they are off anyway when stderr is not a terminal).",
)
@click.option("--seed", type=int, help="Random seed (sets train.seed; default: the config's).")
def train(
    method, data, val, val_fraction, select_on_test, annotations, benchmark, config_file,
    sets, out, resume_dir, overwrite, pretrained, device, amp, compile_, no_progress, seed,
) -> None:  # fmt: skip
    """Train METHOD (see `avmodels methods`) and keep the best model.

    \b
    Examples:
      avmodels train sspl --data shards/flickr10k --val-fraction 0.05 \\
          --set train.batch_size=32 --out runs/sspl-flickr10k
      avmodels train --resume runs/sspl-flickr10k
      torchrun --nproc_per_node 2 -m avmodels train sspl-pcm --data shards/vggsound144k \\
          --val shards/vggss-val --annotations vggss.json --benchmark vggss --out runs/pcm
    """
    from avmodels.engine.train import TrainRequest
    from avmodels.engine.train import train as run_train
    from avprep.errors import ConfigError

    sets = list(sets)
    for key, value in (("train.device", device), ("train.amp", amp), ("train.seed", seed)):
        if value is not None:
            sets.append(f"{key}={value}")
    if compile_:
        sets.append("train.compile=true")
    if pretrained is not None:
        sets.append(f"model.pretrained={'true' if pretrained else 'false'}")
    if resume_dir and out and out != resume_dir:
        raise ConfigError("--resume names the run directory; --out is not needed")
    if not resume_dir and not out:
        raise ConfigError("--out RUN_DIR is required (or --resume RUN_DIR)")
    req = TrainRequest(
        method=method,
        data=list(data),
        out=resume_dir or out,
        val=list(val) or None,
        val_fraction=val_fraction,
        select_on_test=list(select_on_test) or None,
        annotations=annotations,
        benchmark=benchmark,
        config_file=config_file,
        sets=sets,
        resume=bool(resume_dir),
        overwrite=overwrite,
        progress=show_progress(no_progress),
    )
    import os
    import time

    from avmodels.engine.runlog import run_progress

    before = run_progress(req.out) if req.resume else None
    t0 = time.perf_counter()
    try:
        res = run_train(req)
    except KeyboardInterrupt:
        if int(os.environ.get("RANK", "0")) == 0:
            click.echo(
                f"\ninterrupted: the last finished step is saved; continue with\n"
                f"  avmodels train --resume {req.out}",
                err=True,
            )
        raise SystemExit(130) from None
    wall = time.perf_counter() - t0
    if int(os.environ.get("RANK", "0")) != 0:
        return
    if before is not None and before.get("step") == res.steps:
        click.echo(
            f"nothing left to do: {res.run_dir} finished at epoch {res.epochs_done} "
            f"({res.steps} steps); raise the budget to train on, e.g. "
            f"avmodels train --resume {res.run_dir} --set train.epochs={res.epochs_done + 5}"
        )
    click.echo(f"method      {res.method}")
    click.echo(f"run         {res.run_dir}")
    click.echo(f"epochs      {res.epochs_done} ({res.steps} steps)")
    if res.select:
        best = "n/a" if res.best_score is None else f"{res.best_score:.4f}"
        click.echo(f"best {res.select:<6} {best} (epoch {res.best_epoch})")
    if res.stopped_early:
        click.echo("stopped early (eval.patience)")
    click.echo(f"model       {res.model_file}")
    loss = run_progress(res.run_dir, summary=True).get("train_loss")
    if loss is not None:
        click.echo(f"train loss  {loss:.4f} (mean over the last epoch)")
    click.echo(f"wall time   {wall:.1f} s")
