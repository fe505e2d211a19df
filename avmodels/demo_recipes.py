"""The demo's recipes: how ``make demo`` prepares data for and trains each method on CPU
(the extract options on top of the method's profile, the ``--set`` overrides, the epochs)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How the demo prepares data for and trains one method.

    ``extract`` holds ``avprep extract`` options on top of ``profile``;
    ``config`` holds ``--set key=value`` overrides of the method's defaults
    (the paper's configuration), which are made for a small CPU run.
    """

    method: str
    profile: str
    extract: Mapping[str, Any]
    config: Mapping[str, Any]
    epochs: int
    note: str = ""
    sources: int = 1  # sounding objects a SynthAV clip (2: the two-source set)

    def profile_key(self, options: Mapping[str, Any] | None = None) -> str:
        """A folder name for this extraction (profile + a hash of the overrides)."""
        opts = dict(self.extract if options is None else options)
        blob = json.dumps([self.profile, opts], sort_keys=True)
        return f"{self.profile}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"

    def sets(self, seed: int, epochs: int) -> list[str]:
        """The overrides as ``key=value`` items, the form ``TrainRequest.sets`` takes
        (and the run record keeps)."""
        items = dict(self.config)
        items["train.epochs"] = epochs
        items["train.seed"] = seed
        return [f"{k}={set_value(v)}" for k, v in items.items()]


def set_value(v: Any) -> str:
    """A config value as the text of a ``key=value`` item (YAML syntax)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(set_value(x) for x in v) + "]"
    return str(v)


# Frames are stored at 96 px (the report's overlays show them) and the model sees
# 64 px; 1 s of audio as a 64-band log-mel (the `mssl` front end: 20 ms hop at
# 16 kHz gives 51 x 64), the size SYNTHAV.md's prototype used. SpecAugment is off:
# its masks are sized for SSL-TIE's 257 x 670 spectrogram and would blank this one.
_SMALL_AUDIO = {"frame_at": "middle", "image_size": 96, "spectrogram": "mssl", "audio_seconds": 1}
_CPU = {
    "train.device": "cpu",
    "train.batch_size": 64,
    "train.num_workers": 1,
    "train.checkpoint_every": 50,
    "train.log_every": 5,
    "eval.batch_size": 128,
}
_SMALL_STREAMS = {
    "model.backbone": "small",
    "model.small_width": 32,
    "model.small_channels": 128,
    "model.small_stride": 8,
    "data.image_size": 64,
}

RECIPES: dict[str, Recipe] = {
    "ssl-tie": Recipe(
        method="ssl-tie",
        profile="ssltie",
        extract=_SMALL_AUDIO,
        config={
            **_SMALL_STREAMS,
            "augment.image": "none",
            "augment.spec_aug": False,
            "optim.lr": 1e-3,
            "optim.scheduler": "cosine",
            **_CPU,
        },
        epochs=12,
        note="small CNN streams at 64 px, LVS tri-map + equivariance losses",
    ),
    "htf": Recipe(
        method="htf",
        profile="htf",
        extract={**_SMALL_AUDIO, "resize": "squash", "sample_rate": 16000},
        config={
            **_SMALL_STREAMS,
            "model.pretrained": False,
            "model.freeze_vision": False,
            "data.audio_seconds": 1.0,
            **_CPU,
        },
        epochs=12,
        note="small CNN streams at 64 px from scratch, flow attention",
    ),
    "sspl": Recipe(
        method="sspl",
        profile="sspl",
        extract={"frame_at": "middle", "image_size": 96},
        config={
            "model.pretrained": False,
            "model.image_size": 64,
            "train.device": "cpu",
            "train.batch_size": 32,
            "train.num_workers": 1,
            "train.checkpoint_every": 50,
        },
        epochs=2,
        note="VGG16/VGGish from scratch at 64 px: far too slow on CPU to learn much",
    ),
}
RECIPES["sspl-pcm"] = dataclasses.replace(RECIPES["sspl"], method="sspl-pcm")

# The field's baselines (issue 19): the same small streams and 1 s log-mel; each keeps
# its own loss, temperature and defaults. The EZ-VSL family's projections shrink to 128.
_BASELINE_EXTRACT = {**_SMALL_AUDIO, "resize": "squash", "sample_rate": 16000}
_MIL_CPU = {**_SMALL_STREAMS, "model.pretrained": False, "model.dim": 128,
            "data.audio_seconds": 1.0, "optim.lr": 1e-3, **_CPU}  # fmt: skip
RECIPES["ezvsl"] = Recipe(
    method="ezvsl", profile="ezvsl", extract=_BASELINE_EXTRACT, config=_MIL_CPU, epochs=12,
    note="small CNN streams at 64 px, max-pooled multiple-instance InfoNCE (tau 0.03)",
)  # fmt: skip
RECIPES["fnac"] = Recipe(
    method="fnac", profile="ezvsl", extract=_BASELINE_EXTRACT,
    config={**_MIL_CPU, "loss.warmup_epochs": 2}, epochs=12,
    note="EZ-VSL's demo streams + FNAC's terms (x100) after a 2-epoch warm-up, dropout 0.9",
)  # fmt: skip
RECIPES["slavc"] = Recipe(
    method="slavc", profile="ezvsl", extract=_BASELINE_EXTRACT, config=_MIL_CPU, epochs=12,
    note="small CNN streams at 64 px, momentum 0.999 targets, dropout 0.9",
)  # fmt: skip
RECIPES["lvs"] = Recipe(
    method="lvs", profile="lvs-10s", extract=_BASELINE_EXTRACT,
    config={**_SMALL_STREAMS, "data.audio_seconds": 1.0, "augment.image": "none",
            "optim.lr": 1e-3, "optim.scheduler": "cosine", **_CPU},  # fmt: skip
    epochs=12,
    note="small CNN streams at 64 px, the LVS tri-map loss (SSL-TIE's demo without T)",
)  # fmt: skip

# Multi-Source (issue 17) on two-source SynthAV: both stages, the labels are SynthAV's
# class tags (as the paper's AudioSet-instrument model learns from the 15 instrument
# tags), scored class-agnostic and class-aware. Runs in avmodels/demo_mssl.py.
RECIPES["mssl"] = Recipe(
    method="mssl",
    profile="mssl",
    extract={"frame_at": "middle", "image_size": 96, "audio_seconds": 1},
    config={
        **_SMALL_STREAMS,
        "model.pretrained": False,
        "model.proj_hidden": 256,
        "labels.require": True,
        "labels.fallback": "none",
        # the learning rates and stage 2's start are per stage: demo_mssl.STAGE_SETS
        # keep the epoch with the lowest validation loss (the method's own objective)
        # rather than the best class-agnostic cIoU, which is not what stage 2 learns
        "eval.select": "loss",
        **_CPU,
    },
    epochs=12,
    note="small CNN streams at 64 px; stage 1 (pairs + classes) then stage 2 (class-wise "
    "alignment) on SynthAV's class tags",
    sources=2,
)

DEFAULT_METHOD = "ssl-tie"
