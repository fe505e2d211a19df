"""Multi-Source's AVE match rates of a model: scenes over a store, pairs scored by a head.

What ``avmodels ave-match`` runs (the command parses options and calls
:func:`ave_match_model`); the rates themselves are :class:`avmodels.metrics.
ave_match.MatchMeter`'s. A scorer turns one scene's batch and the original's
negatives (:func:`~avmodels.methods.mssl_batching.original_negatives`) into
``(common, differ)``: mssl's pair head on an mssl model, or the original full
model's own head (:mod:`avmodels.methods.mssl_full_head`) on its checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from avprep.errors import ConfigError

#: (batch, other clip, second) -> (common, differ), on the CPU
Scorer = Callable[[dict[str, Any], torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def full_head_scorer(
    original_ckpt: str | Path, mix: int, frames: int, dev: torch.device
) -> tuple[Any, list[str], Scorer]:
    """``(transform, inputs, scorer)`` of a checkpoint of the original full code."""
    from avmodels.engine.config import deep_merge
    from avmodels.importers import load_state_file
    from avmodels.methods.mssl import MsslSample, MultiSource
    from avmodels.methods.mssl_full_head import full_head_state

    full = full_head_state(load_state_file(original_ckpt), frames).to(dev)
    cfg = deep_merge(MultiSource.defaults, {"data": {"spectrogram": "audio"}})

    def score(batch, other, second):
        # each clip's seconds in order, one log-mel of `frames` seconds (the original's)
        spec = batch["spectrogram"].to(dev).reshape(mix, frames, *batch["spectrogram"].shape[-2:])
        spec = spec.reshape(mix, -1, spec.shape[-1])
        common, differ = full(spec, batch["frame"].to(dev), other.to(dev), second.to(dev))
        return common.cpu(), differ.cpu()

    return MsslSample(cfg, train=False), ["frame", "audio"], score


def pair_head_scorer(
    model_file: str | Path, mix: int, frames: int, dev: torch.device
) -> tuple[Any, list[str], Scorer]:
    """``(transform, inputs, scorer)`` of an mssl model file: its pair head."""
    from avmodels.engine.checkpoint import build_model
    from avmodels.methods.mssl import pair_logits

    method, info = build_model(model_file, dev)
    if info["method"] != "mssl" or not hasattr(method, "avc"):
        raise ConfigError(f"ave-match scores mssl's pair head; {model_file} is {info['method']}")
    transform, inputs = method.sample_transform(train=False), method.required_inputs()
    encode = method.encode
    method.eval()

    def score(batch, other, second):
        batch = method.batch_to_device(batch, dev, False)
        enc = encode(batch)
        logits = pair_logits(method.avc, enc["pooled_a"], enc["pooled_v"]).float().cpu()
        n = torch.arange(mix * frames)
        common = logits[n, n]  # (clip c, second t) with its own frame
        audio = n.reshape(mix, frames)
        frame = other * frames + second
        return common, logits[audio.reshape(-1), frame.reshape(-1)]

    return transform, inputs, score


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
    from torch.utils.data import default_collate
    from tqdm import tqdm

    from avmodels.data import MethodDataset, open_sources
    from avmodels.engine.distributed import pick_device
    from avmodels.methods.mssl_batching import original_negatives, validation_scenes
    from avmodels.metrics.ave_match import MatchMeter

    if mix < 2:
        raise ConfigError("--mix must be at least 2: the negatives are frames of other clips")
    if (model_file is None) == (original_ckpt is None):
        raise ConfigError("give a model (--run / --ckpt) or --original-ckpt, not both")
    dev = pick_device(device)
    if original_ckpt is not None:
        transform, inputs, score = full_head_scorer(original_ckpt, mix, frames, dev)
    else:
        transform, inputs, score = pair_head_scorer(model_file, mix, frames, dev)
    sources = open_sources(data, inputs)
    scenes = validation_scenes(sources.ids, mix, frames, rule, seed)
    ds = MethodDataset(sources, transform, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    meter = MatchMeter()
    with torch.no_grad():
        for rows in tqdm(scenes, desc="scenes", unit="scene", disable=not progress):
            batch = default_collate(ds.__getitems__(rows))
            other, second = original_negatives(mix, frames, gen)
            meter.update(*score(batch, other, second))
    out = meter.result()
    out.update(clips=len(scenes), mix=mix, frames=frames, rule=rule, seed=seed)
    out["model"] = str(model_file if model_file is not None else original_ckpt)
    out["head"] = "mssl pair head" if original_ckpt is None else "original full-model head"
    return out


def match_summary(out: dict[str, Any]) -> str:
    """The rates as ``avmodels ave-match`` prints them (without ``--json``)."""
    return "\n".join(
        [
            f"head         {out['head']}",
            f"scenes       {out['batches']} ({out['mix']} clips x {out['frames']} pairs, "
            f"{out['rule']} starts)",
            f"match rate   {out['match_rate']:.4f}  (matched outputs < {out['threshold']})",
            f"differ rate  {out['differ_rate']:.4f}  (mismatched outputs > {out['threshold']})",
        ]
    )
