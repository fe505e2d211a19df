"""``avmodels ave-match``: Multi-Source's AVE match rates, on an mssl model's pair head."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from avmodels.commands.options import model_file_of, model_file_options
from avmodels.methods.mssl_batching import WINDOW_RULES


def ave_match_model(
    model_file: str | Path,
    data: list[str],
    *,
    mix: int = 4,
    frames: int = 4,
    rule: str = "ave",
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """The match / differ rates of ``test_avs`` on an mssl model's pair head.

    One validation scene per clip of ``data`` (``avprep pairs`` rows): the clip
    first, then ``mix - 1`` others, ``frames`` consecutive pairs each. Positives:
    the head on (audio t, frame t) of a clip; negatives: the original's rule
    (:func:`~avmodels.methods.mssl_batching.original_negatives`).
    """
    import torch
    from torch.utils.data import default_collate
    from tqdm import tqdm

    from avmodels.data import MethodDataset, open_sources
    from avmodels.engine.checkpoint import build_model
    from avmodels.engine.distributed import pick_device
    from avmodels.methods.mssl import pair_logits
    from avmodels.methods.mssl_batching import original_negatives, validation_scenes
    from avmodels.metrics.ave_match import MatchMeter
    from avprep.errors import ConfigError

    if mix < 2:
        raise ConfigError("--mix must be at least 2: the negatives are frames of other clips")
    method, info = build_model(model_file, pick_device(device))
    if info["method"] != "mssl" or not hasattr(method, "avc"):
        raise ConfigError(f"ave-match scores mssl's pair head; {model_file} is {info['method']}")
    sources = open_sources(data, method.required_inputs())
    scenes = validation_scenes(sources.ids, mix, frames, rule, seed)
    ds = MethodDataset(sources, method.sample_transform(train=False), seed=seed)
    encode = getattr(method, "encode", None) or method._encode
    gen = torch.Generator().manual_seed(seed)
    meter = MatchMeter()
    dev = next(method.parameters()).device
    method.eval()
    with torch.no_grad():
        for rows in tqdm(scenes, desc="scenes", unit="scene", disable=not progress):
            batch = default_collate(ds.__getitems__(rows))
            batch = method.batch_to_device(batch, dev, False)
            enc = encode(batch)
            logits = pair_logits(method.avc, enc["pooled_a"], enc["pooled_v"]).float().cpu()
            n = torch.arange(mix * frames)
            common = logits[n, n]  # (clip c, second t) with its own frame
            other, second = original_negatives(mix, frames, gen)
            audio = n.reshape(mix, frames)
            frame = other * frames + second
            differ = logits[audio.reshape(-1), frame.reshape(-1)]
            meter.update(common, differ)
    out = meter.result()
    out.update(clips=len(scenes), mix=mix, frames=frames, rule=rule, seed=seed)
    out["model"] = str(model_file)
    return out


@click.command("ave-match")
@model_file_options
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
def ave_match(run, ckpt, data, mix, frames, rule, seed, device, as_json, no_progress) -> None:
    """Audio-visual match rates as Multi-Source's main.py reports them on AVE.

    One scene per clip (it first, then MIX-1 others; FRAMES consecutive 1 s
    pairs each). Match rate: share of the pair head's outputs on matched pairs
    below 1.0; differ rate: share of its outputs on the original's negatives
    (a frame of another clip at a permuted second) above 1.0; both averaged
    over scenes. The paper's numbers come from its full model's head, which
    mssl (the simplified new/ code) does not have: these rates use mssl's pair
    head (see docs/methods.md).

    \b
    Example:
      avmodels ave-match --run runs/mssl-ave --data ave-test-h5/ --mix 4 --frames 4
    """
    out = ave_match_model(
        model_file_of(run, ckpt), list(data), mix=mix, frames=frames, rule=rule, seed=seed,
        device=device, progress=not no_progress,
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(out))
        return
    click.echo(f"scenes       {out['batches']} ({mix} clips x {frames} pairs, {rule} starts)")
    click.echo(f"match rate   {out['match_rate']:.4f}  (matched outputs < {out['threshold']})")
    click.echo(f"differ rate  {out['differ_rate']:.4f}  (mismatched outputs > {out['threshold']})")
