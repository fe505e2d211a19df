"""``avmodels ave-match``: Multi-Source's AVE match rates, on an mssl model's pair head.

The run is :func:`avmodels.engine.ave_match.ave_match_model` (thin CLI layer)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from avmodels.commands.options import model_file_of, model_file_options
from avmodels.engine.ave_match import ave_match_model, match_summary
from avmodels.methods.mssl_batching import WINDOW_RULES


@click.command("ave-match")
@model_file_options
@click.option(
    "--original-ckpt",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A checkpoint of the original full code (model_avc/model_joint.pth.tar): "
    "scored with its own pair head instead of an mssl model.",
)
@click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    type=click.Path(exists=True),
    help="Store of `avprep pairs` rows (<id>.tNN), e.g. AVE's validation or test videos.",
)
@click.option("--mix", default=4, show_default=True, type=click.IntRange(min=2),
              help="Clips per scene (main.py --mix).")  # fmt: skip
@click.option("--frames", default=4, show_default=True, type=click.IntRange(min=1),
              help="Consecutive pairs per clip (main.py --frame).")  # fmt: skip
@click.option("--rule", type=click.Choice(WINDOW_RULES), default="ave", show_default=True,
              help="Start seconds: ave (randint(0, 10-frame)) or audioset (randint(0, 11-frame)).")  # fmt: skip
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the scenes' clips, starts and negatives.")  # fmt: skip
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1 ...")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def ave_match(
    run, ckpt, original_ckpt, data, mix, frames, rule, seed, device, as_json, no_progress
) -> None:
    """Audio-visual match rates as Multi-Source's main.py reports them on AVE.

    One scene per clip (it first, then MIX-1 others; FRAMES consecutive 1 s
    pairs each). Match rate: share of the pair head's outputs on matched pairs
    below 1.0; differ rate: share of its outputs on the original's negatives
    (a frame of another clip at a permuted second) above 1.0; both averaged
    over scenes. The paper's numbers come from its full model's head, which
    mssl (the simplified new/ code) does not have: with --run/--ckpt the rates
    use mssl's pair head; --original-ckpt scores a checkpoint of the original
    full code with its own head (see docs/methods.md).

    \b
    Examples:
      avmodels ave-match --run runs/mssl-ave --data ave-test-h5/ --mix 4 --frames 4
      avmodels ave-match --original-ckpt checkpoint/AVE_C/model_joint.pth.tar \\
          --data ave-test-h5/
    """
    model = None if original_ckpt is not None and run is None and ckpt is None else (
        model_file_of(run, ckpt))  # fmt: skip
    out = ave_match_model(
        model, list(data), original_ckpt=original_ckpt, mix=mix, frames=frames, rule=rule,
        seed=seed, device=device, progress=not no_progress,
    )  # fmt: skip
    click.echo(json.dumps(out) if as_json else match_summary(out))
