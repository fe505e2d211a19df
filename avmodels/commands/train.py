"""``avmodels train``: train a registered method on avprep shards (thin CLI layer).

The run and its summary are :mod:`avmodels.engine.train_session`; the loop is
:func:`avmodels.engine.train.train`; see docs/training.md.
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
    from avmodels.engine.train_session import option_sets, train_and_summarise, train_request

    sets = option_sets(
        sets, device=device, amp=amp, seed=seed, compile_=compile_, pretrained=pretrained
    )
    req = train_request(
        method=method, data=data, out=out, resume=resume_dir, val=val, val_fraction=val_fraction,
        select_on_test=select_on_test, annotations=annotations, benchmark=benchmark,
        config_file=config_file, sets=sets, overwrite=overwrite,
        progress=show_progress(no_progress),
    )  # fmt: skip
    train_and_summarise(req, click.echo)
