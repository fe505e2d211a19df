"""LVS: localising visual sounds the hard way (the tri-map contrastive model).

Chen, Xie, Afouras, Nagrani, Vedaldi, Zisserman, "Localizing Visual Sounds
the Hard Way", CVPR 2021 (github.com/hche11/Localizing-Visual-Sounds-the-Hard-Way).
The repository releases the model, a test loader and weights, not a training
script. What we take from its code:

- ``AVENet``: two ResNet-18 streams with layer4 stride 1 (224 px ->
  512x14x14; the audio stream has a 1-channel conv1 and is max-pooled), both
  L2-normalised, the map is their cosine; every conv and norm of the model is
  re-initialised after building (:func:`lvs_init`) - the vision net is built
  "pretrained" but its loader never loads weights (the line is commented
  out), so both streams start from scratch (``model.pretrained`` false; true
  loads ImageNet into the vision stream *after* the re-initialisation, an
  explicit option);
- the loss (:mod:`avmodels.methods.trimap`): Pos = sigmoid((A - 0.65) / 0.03),
  Neg = 1 - sigmoid((A - 0.4) / 0.03), easy negatives from the batch (diagonal
  x (1 - 100)) and the frame's own background as a hard negative, logits /
  0.07, cross-entropy - SSL-TIE's contrastive term without its equivariance;
- frames: its loader's train branch (short side to 246 bicubic, random 224
  crop, flip) and test branch (short side 224, centre crop);
- audio: the loader reads the track from its start, tiled to 10 s, at its
  own rate, clipped to [-1, 1], ``scipy.signal.spectrogram(nperseg=512,
  noverlap=274)``, ``log(S + 1e-7) / 12`` (avprep profile ``lvs-10s``; the
  ``lvs`` profile is the 3 s centred variant EZ-VSL reads).

Not in its code, from the paper: Adam, learning rate 1e-4, batch 128. The
number of epochs is ours (100, as SSL-TIE's). The weighted means of the
tri-map use the shared log-space normaliser (``loss.normaliser: ratio`` is
the original arithmetic; see :mod:`avmodels.methods.trimap`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from avmodels.methods.audio_input import FrameSpectrogramSample
from avmodels.methods.augment import ResizeCenterCrop, ResizeRandomCropFlip
from avmodels.methods.base import METHODS, Batch, Method
from avmodels.methods.construction import (
    SMALL_STREAM,
    avenet_state_from_official,
    avenet_streams,
    official_model,
    small_smoke_model,
)
from avmodels.methods.trimap import TrimapConfig, TrimapHead, trimap_loss_defaults
from avprep.errors import ConfigError


def lvs_state_from_official(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map LVS's ``AVENet`` ``model_state_dict`` (``module.imgnet.*``, ...) onto ours."""
    return avenet_state_from_official(state, "LVS")


class LvsSample(FrameSpectrogramSample):
    """Store sample -> {clip_id, frame (3, S, S), spectrogram (1, 257, T)}."""

    def __init__(self, cfg: Mapping[str, Any], train: bool) -> None:
        size = int(cfg["data"]["image_size"])
        augment = train and cfg["augment"]["image"] == "crop_flip"
        frame = ResizeRandomCropFlip(size) if augment else ResizeCenterCrop(size)
        super().__init__(cfg["data"], frame)


@METHODS.register("lvs")
class Lvs(TrimapHead, Method):
    """Two ResNet-18 streams (stride 16), the LVS tri-map contrastive loss."""

    name = "lvs"
    paper = "Chen et al., Localizing Visual Sounds the Hard Way, CVPR 2021"
    inputs = ("frame", "spectrogram")
    profile = "lvs-10s"
    defaults = {
        "model": {
            "backbone": "resnet18",  # or "small" for CPU runs at 64-128 px
            "pretrained": False,  # LVS's code re-initialises the vision net (see above)
            "pretrained_path": None,
            **SMALL_STREAM,
        },
        "data": {
            "image_size": 224,
            "spectrogram": "store",  # or "audio": computed on the fly
            "spectrogram_name": "lvs",
            "audio_seconds": 10.0,  # its loader tiles the track to 10 s
            "spec_divisor": 1.0,  # the "lvs" front end already divides by 12
        },
        "augment": {"image": "crop_flip"},  # or "none"
        "loss": trimap_loss_defaults(),
        "optim": {"name": "adam", "lr": 1e-4, "weight_decay": 0.0, "scheduler": "constant"},
        "train": {"batch_size": 128, "epochs": 100},
        "eval": {"preset": "lvs"},
    }
    smoke_overrides = {
        "model": small_smoke_model(),  # pretrained is off by default too
        "data": {"image_size": 64},
        "train": {"batch_size": 4},
    }
    smoke_spectrogram = (-0.8, 0.2, (257, 200))

    def __init__(self, cfg: Mapping[str, Any] | None = None) -> None:
        super().__init__(cfg)
        m = self.cfg["model"]
        self.vision, self.audio = avenet_streams(m)
        self.loss_cfg = TrimapConfig.from_dict(self.cfg["loss"])
        if self.cfg["augment"]["image"] not in ("crop_flip", "none"):
            raise ConfigError(
                f"augment.image {self.cfg['augment']['image']!r}; valid: crop_flip, none"
            )

    @classmethod
    def from_official(
        cls, state: Mapping[str, torch.Tensor], cfg: Mapping[str, Any] | None = None
    ) -> Lvs:
        """A model holding the weights of LVS's released ``model_state_dict``."""
        over = {"model": {"backbone": "resnet18", "pretrained": False}}
        return official_model(cls, lvs_state_from_official(state), cfg, over, "LVS")

    # -- data --------------------------------------------------------------
    def sample_transform(self, train: bool) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return LvsSample(self.cfg, train)

    # -- model -------------------------------------------------------------
    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised visual maps (B, C, h, w) and audio vectors (B, C)."""
        img = F.normalize(self.vision(batch["frame"]), dim=1)
        aud = F.normalize(self.audio(batch["spectrogram"]), dim=1)
        return img, aud
