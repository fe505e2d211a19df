"""``avmodels ave-match``: Multi-Source's AVE match rates, on an mssl model's pair head."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from avmodels.commands.options import model_file_of, model_file_options
from avmodels.methods.mssl_batching import WINDOW_RULES


def ave_match_model(
    model_file: str | Path | None,
    data: list[str],
    *,
    original_ckpt: str | Path | None = None,
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
    ``original_ckpt``: a checkpoint of the original full code instead; its own
    pair head (:mod:`avmodels.methods.mssl_full_head`) scores the pairs.
    """
    import torch
    from torch.utils.data import default_collate
    from tqdm import tqdm

    from avmodels.data import MethodDataset, open_sources
    from avmodels.engine.checkpoint import build_model
    from avmodels.engine.config import deep_merge
    from avmodels.engine.distributed import pick_device
    from avmodels.methods.mssl import pair_logits
    from avmodels.methods.mssl_batching import original_negatives, validation_scenes
    from avmodels.metrics.ave_match import MatchMeter
    from avprep.errors import ConfigError

    if mix < 2:
        raise ConfigError("--mix must be at least 2: the negatives are frames of other clips")
    if (model_file is None) == (original_ckpt is None):
        raise ConfigError("give a model (--run / --ckpt) or --original-ckpt, not both")
    dev = pick_device(device)
    if original_ckpt is not None:
        from avmodels.importers import load_state_file
        from avmodels.methods.mssl import MsslSample, MultiSource
        from avmodels.methods.mssl_full_head import full_head_state

        full = full_head_state(load_state_file(original_ckpt), frames).to(dev)
        cfg = deep_merge(MultiSource.defaults, {"data": {"spectrogram": "audio"}})
        transform, inputs, method = MsslSample(cfg, train=False), ["frame", "audio"], None
    else:
        method, info = build_model(model_file, dev)
        if info["method"] != "mssl" or not hasattr(method, "avc"):
            raise ConfigError(
                f"ave-match scores mssl's pair head; {model_file} is {info['method']}"
            )
        transform, inputs = method.sample_transform(train=False), method.required_inputs()
        encode = method.encode
        method.eval()
    sources = open_sources(data, inputs)
    scenes = validation_scenes(sources.ids, mix, frames, rule, seed)
    ds = MethodDataset(sources, transform, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    meter = MatchMeter()
    with torch.no_grad():
        for rows in tqdm(scenes, desc="scenes", unit="scene", disable=not progress):
            batch = default_collate(ds.__getitems__(rows))
            other, second = original_negatives(mix, frames, gen)
            if method is None:
                # each clip's seconds in order, one log-mel of `frames` seconds (the original's)
                spec = (
                    batch["spectrogram"]
                    .to(dev)
                    .reshape(mix, frames, *batch["spectrogram"].shape[-2:])
                )
                spec = spec.reshape(mix, -1, spec.shape[-1])
                common, differ = full(spec, batch["frame"].to(dev), other.to(dev), second.to(dev))
                meter.update(common.cpu(), differ.cpu())
                continue
            batch = method.batch_to_device(batch, dev, False)
            enc = encode(batch)
            logits = pair_logits(method.avc, enc["pooled_a"], enc["pooled_v"]).float().cpu()
            n = torch.arange(mix * frames)
            common = logits[n, n]  # (clip c, second t) with its own frame
            audio = n.reshape(mix, frames)
            frame = other * frames + second
            differ = logits[audio.reshape(-1), frame.reshape(-1)]
            meter.update(common, differ)
    out = meter.result()
    out.update(clips=len(scenes), mix=mix, frames=frames, rule=rule, seed=seed)
    out["model"] = str(model_file if model_file is not None else original_ckpt)
    out["head"] = "mssl pair head" if method is not None else "original full-model head"
    return out


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
    if as_json:
        click.echo(json.dumps(out))
        return
    click.echo(f"head         {out['head']}")
    click.echo(f"scenes       {out['batches']} ({mix} clips x {frames} pairs, {rule} starts)")
    click.echo(f"match rate   {out['match_rate']:.4f}  (matched outputs < {out['threshold']})")
    click.echo(f"differ rate  {out['differ_rate']:.4f}  (mismatched outputs > {out['threshold']})")
