"""Hear-The-Flow: optical flow as a prior for visual sound source localisation.

Fedorishin, Mohan, Jawade, Setlur, Govindaraju, "Hear The Flow: Optical
Flow-Based Self-Supervised Visual Sound Source Localization", WACV 2023
(github.com/denfed/heartheflow). Defaults are its ``train.py`` arguments:

- vision: torchvision ResNet-18 with ImageNet weights, frozen (224 px ->
  512x7x7); audio: ResNet-18 from scratch, 1-channel conv1, global max pool;
  flow: ResNet-18 with ImageNet weights and a fresh 2-channel conv1
  (``flowtype: cnn``), or the raw flow max-pooled to the map size
  (``flowtype: maxpool``);
- flow attention: query from the image, key from the flow (1x1 convs to C/8),
  value from the image (1x1 conv), softmax over the key positions (scaled by
  sqrt(C/8)); image + attended value, L2-normalised; cosine map with the audio;
- the LVS tri-map loss with eps 0.65, margin 0.25 (eps_neg 0.4), tau 0.03,
  logit temperature 0.07; Adam 1e-3 (no weight decay), batch 128, 100 epochs.

Where we differ, each an option: the flow is signed float in pixels (the
original stores two uint8 JPEGs, losing negative motion) and a horizontal flip
negates its x component (the original forgets to) - ``htf.legacy_flow=true``
restores both; the engine shuffles the training data (the original's loader does
not); the frozen vision stream's BatchNorms keep updating their running
statistics in training mode as in the original (``model.vision_bn: eval``
freezes them too).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from avmodels.backbones.resnet import build_stream, lvs_init
from avmodels.layers.attention import FlowAttention
from avmodels.methods.audio_input import SpectrogramInput
from avmodels.methods.augment import FrameFlowCrop
from avmodels.methods.base import METHODS, Batch, Method
from avmodels.methods.construction import (
    SMALL_STREAM,
    load_pretrained_vision,
    official_model,
    small_smoke_model,
    stream_kwargs,
    strip_prefix,
)
from avmodels.methods.trimap import TrimapConfig, TrimapHead, trimap_loss_defaults
from avprep.errors import ConfigError, InputError

FLOWTYPES = ("cnn", "maxpool")


_HTF_PREFIXES = {"imgnet": "vision", "audnet": "audio", "flownet": "flow", "flowatt": "flowatt"}


def htf_state_from_official(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map ``HearTheFlowVSSLModel``'s state dict onto ours.

    Accepts the released ``.pth`` (``weights["model"]``) keys and those of a
    Lightning ``.ckpt`` ``state_dict`` (``model.`` prefix), with or without a
    DDP ``module.`` prefix.
    """
    state = strip_prefix(strip_prefix(state, "module."), "model.")
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        net, _, rest = key.partition(".")
        if net not in _HTF_PREFIXES:
            raise InputError(f"not a Hear-The-Flow state dict: unexpected key {key!r}")
        out[f"{_HTF_PREFIXES[net]}.{rest}"] = value
    return out


def htf_flowtype(mapped: Mapping[str, torch.Tensor]) -> str:
    """``maxpool`` when the attention's key conv reads the 2-channel raw flow."""
    key = mapped.get("flowatt.key_conv.weight")
    if key is None:
        raise InputError("not a Hear-The-Flow state dict: no flowatt.key_conv.weight")
    return "maxpool" if key.shape[1] == 2 else "cnn"


class HtfSample:
    """Store sample -> {clip_id, frame (3, S, S), flow (2, S, S), spectrogram (1, F, T)}."""

    def __init__(self, cfg: Mapping[str, Any], train: bool) -> None:
        data = cfg["data"]
        self.pair = FrameFlowCrop(
            int(data["image_size"]), train=train, legacy=bool(cfg["htf"]["legacy_flow"])
        )
        self.spec = SpectrogramInput.from_config(data)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        frame, flow = self.pair(sample["frame"], sample["flow"])
        return {
            "clip_id": str(sample["clip_id"]),
            "frame": frame,
            "flow": flow,
            "spectrogram": self.spec(sample),
        }

    def audio(self, sample: dict[str, Any]) -> dict[str, Any]:
        return {"spectrogram": self.spec(sample)}

    def batch_augment(self) -> Any:
        """The batched form of the paired crop (avmodels.methods.batch_augment reads it)."""
        from avmodels.methods.batch_augment import FrameFlowCropBatch

        return FrameFlowCropBatch.of(self.pair, self.audio)


@METHODS.register("htf")
class HearTheFlow(TrimapHead, Method):
    """ResNet-18 vision/audio/flow streams, flow attention, LVS tri-map loss."""

    name = "htf"
    paper = "Fedorishin et al., Hear The Flow, WACV 2023"
    inputs = ("frame", "spectrogram", "flow")
    profile = "htf"  # the avprep extraction profile of its inputs
    defaults = {
        "model": {
            "backbone": "resnet18",  # or "small" for CPU runs at 64-128 px
            "pretrained": True,  # ImageNet vision and flow streams (False: from scratch)
            "pretrained_path": None,  # torchvision resnet18 .pth (None: the weights cache)
            "freeze_vision": True,
            "vision_bn": "train",  # "eval": frozen vision BN statistics too
            "flowtype": "cnn",  # or "maxpool"
            **SMALL_STREAM,
        },
        "data": {
            "image_size": 224,
            "spectrogram": "store",  # or "audio": computed on the fly
            "spectrogram_name": "htf",
            "audio_seconds": 3.0,  # HTF tiles short clips to 3 s
            "spec_divisor": 1.0,  # the "htf" front end already divides by 12
        },
        "htf": {"legacy_flow": False},
        "loss": trimap_loss_defaults(),  # eps_neg 0.4: epsilon - epsilon_margin = 0.65 - 0.25
        "optim": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0, "scheduler": "constant"},
        "train": {"batch_size": 128, "epochs": 100},
    }
    smoke_overrides = {
        "model": small_smoke_model(),
        "data": {"image_size": 64},
        "train": {"batch_size": 4},
    }
    smoke_spectrogram = (-8, 2, (257, 276))

    def __init__(self, cfg: Mapping[str, Any] | None = None) -> None:
        super().__init__(cfg)
        m = self.cfg["model"]
        if m["flowtype"] not in FLOWTYPES:
            raise ConfigError(f"model.flowtype {m['flowtype']!r}; valid: {', '.join(FLOWTYPES)}")
        if m["vision_bn"] not in ("train", "eval"):
            raise ConfigError(f"model.vision_bn {m['vision_bn']!r}; valid: train, eval")
        kw = stream_kwargs(m)
        self.vision = build_stream(m["backbone"], in_channels=3, layer4_stride=2, **kw)
        self.audio = build_stream(m["backbone"], in_channels=1, layer4_stride=2, pool="max", **kw)
        lvs_init(self.audio)  # HTF re-initialises only its audio net
        c = self.vision.out_channels
        if m["flowtype"] == "cnn":
            self.flow = build_stream(m["backbone"], in_channels=2, layer4_stride=2, **kw)
            self.flowatt = FlowAttention(c, c)
        else:
            self.flow = None
            self.flowatt = FlowAttention(c, 2)
        load_pretrained_vision(self.vision, m)
        if self.flow is not None:
            load_pretrained_vision(self.flow, m)  # its 2-channel conv1 stays fresh
        if m["freeze_vision"]:
            self.vision.requires_grad_(False)
        self.loss_cfg = TrimapConfig.from_dict(self.cfg["loss"])

    @classmethod
    def from_official(
        cls, state: Mapping[str, torch.Tensor], cfg: Mapping[str, Any] | None = None
    ) -> HearTheFlow:
        """A model holding the weights of an official HTF state dict (flow type inferred)."""
        mapped = htf_state_from_official(state)
        over = {
            "model": {"backbone": "resnet18", "pretrained": False, "flowtype": htf_flowtype(mapped)}
        }
        return official_model(cls, mapped, cfg, over, "Hear-The-Flow")

    def train(self, mode: bool = True) -> HearTheFlow:
        super().train(mode)
        if mode and self.cfg["model"]["vision_bn"] == "eval":
            self.vision.eval()
        return self

    # -- data --------------------------------------------------------------
    def sample_transform(self, train: bool) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return HtfSample(self.cfg, train)

    # -- model -------------------------------------------------------------
    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised attended image features (B, C, h, w) and audio vectors (B, C)."""
        img = self.vision(batch["frame"])
        aud = F.normalize(self.audio(batch["spectrogram"]), dim=1)
        flow = batch["flow"]
        if self.flow is not None:
            key = self.flow(flow)
        else:
            key = F.adaptive_max_pool2d(flow, img.shape[-2:])
        attended, _ = self.flowatt(img, key)
        return F.normalize(img + attended, dim=1), aud
