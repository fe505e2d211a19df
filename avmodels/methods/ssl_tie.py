"""SSL-TIE: transformation invariance and equivariance for sound localisation.

Liu, Ju, Xie, Zhang, Wang, "Exploiting Transformation Invariance and
Equivariance for Self-supervised Sound Localisation", ACM Multimedia 2022
(github.com/jinxiang-liu/SSL-TIE). Defaults are its training scripts'
(``scripts/train_*.sh`` + ``opts.py``):

- two ResNet-18 streams from scratch: vision with layer4 stride 1 (224 px ->
  512x14x14), audio with a 1-channel conv1, global max-pooled; features
  L2-normalised; the map is their cosine;
- the LVS tri-map contrastive loss (eps 0.65 / 0.4, tau 0.03, temperature 0.07,
  easy negatives from the batch + the frame's own background as hard negative);
- a transformation T per batch (rotation in [-30, 30] deg, scale 1 or 0.5,
  horizontal flip): ``0.5 (CE(x) + CE(T x)) + 1.0 MSE(map(T x), T(map(x)))``;
- "moco_v2" frame augmentation and SpecAug; Adam 1e-4, weight decay 1e-4,
  batch 32, 100 epochs, constant learning rate (its MultiStepLR milestones
  300/700/900 are never reached in 100 epochs).

The audio embedding is computed once per step and shared by both views (the
original runs the audio net twice on the same input; the outputs are equal).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from avmodels.methods.audio_input import FrameSpectrogramSample
from avmodels.methods.augment import MocoV2, ResizeCenterCrop, SpecAugment
from avmodels.methods.base import METHODS, Batch, Method
from avmodels.methods.construction import (
    SMALL_STREAM,
    avenet_state_from_official,
    avenet_streams,
    official_model,
    small_smoke_model,
)
from avmodels.methods.equivariance import equivariance_loss, sample_equivariance
from avmodels.methods.trimap import TrimapConfig, TrimapHead, trimap_loss, trimap_loss_defaults
from avprep.errors import ConfigError

# SSL-TIE's AVENet adds three modules its loss and map never use.
_SSLTIE_UNUSED_TOP = ("vision_fc1.", "conv3.", "norm3.")


def ssl_tie_state_from_official(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map SSL-TIE's ``AVENet`` state dict (``imgnet.*``, ``audnet.*``) onto ours."""
    return avenet_state_from_official(state, "SSL-TIE", _SSLTIE_UNUSED_TOP)


class SslTieSample(FrameSpectrogramSample):
    """Store sample -> {clip_id, frame (3, S, S), spectrogram (1, F, T)}."""

    def __init__(self, cfg: Mapping[str, Any], train: bool) -> None:
        data, aug = cfg["data"], cfg["augment"]
        size = int(data["image_size"])
        if train and aug["image"] == "moco_v2":
            frame = MocoV2(size, crop_scale=tuple(aug["crop_scale"]))
        elif train and aug["image"] not in ("moco_v2", "none"):
            raise ConfigError(f"augment.image {aug['image']!r}; valid: moco_v2, none")
        else:
            frame = ResizeCenterCrop(size)
        spec_aug = (
            SpecAugment(aug["time_mask"], aug["freq_mask"], aug["spec_aug_p"], aug["spec_fill"])
            if train and aug["spec_aug"]
            else None
        )
        super().__init__(data, frame, spec_aug)

    def audio(self, sample: dict[str, Any]) -> dict[str, Any]:
        spec = self.spec(sample)
        return {"spectrogram": spec if self.spec_aug is None else self.spec_aug(spec)}

    def batch_augment(self) -> Any:
        """The batched form of moco_v2 (avmodels.methods.batch_augment reads it)."""
        from avmodels.methods.batch_augment import MocoV2Batch

        return MocoV2Batch.of(self.frame, self.audio)


@METHODS.register("ssl-tie")
class SslTie(TrimapHead, Method):
    """Two ResNet-18 streams, LVS tri-map loss, transformation equivariance."""

    name = "ssl-tie"
    paper = "Liu et al., Exploiting Transformation Invariance and Equivariance ..., ACM MM 2022"
    inputs = ("frame", "spectrogram")
    profile = "ssltie"  # the avprep extraction profile of its inputs
    defaults = {
        "model": {
            "backbone": "resnet18",  # or "small" for CPU runs at 64-128 px
            "pretrained": False,  # SSL-TIE trains both streams from scratch
            "pretrained_path": None,  # torchvision resnet18 .pth (None: the weights cache)
            **SMALL_STREAM,
        },
        "data": {
            "image_size": 224,
            "spectrogram": "store",  # or "audio": computed on the fly
            "spectrogram_name": "ssltie",
            "audio_seconds": None,  # the "ssltie" front end tiles to 10 s itself
            "spec_divisor": 1.0,
        },
        "loss": trimap_loss_defaults(),
        "equivariance": {
            "weight": 1.0,
            "max_angle": 30,
            "scales": [1.0, 0.5],
            "hflip": True,
            "consistency": "mse",  # or "l1"
            "heatmap_grad": True,  # SSL-TIE's --heatmap_no_grad is off
        },
        "augment": {
            "image": "moco_v2",  # or "none"
            "crop_scale": [0.3, 1.0],
            "spec_aug": True,
            "spec_aug_p": 0.8,
            "time_mask": 180,
            "freq_mask": 35,
            "spec_fill": -100.0,  # dB of SSL-TIE's zeroed mel bins
        },
        "optim": {"name": "adam", "lr": 1e-4, "weight_decay": 1e-4, "scheduler": "constant"},
        "train": {"batch_size": 32, "epochs": 100},
    }
    smoke_overrides = {
        "model": small_smoke_model(),  # pretrained is off by default too
        "data": {"image_size": 64},
        "train": {"batch_size": 4},
        # one fixed T (half scale, no rotation or flip) so a fixed batch has a fixed loss
        "equivariance": {"max_angle": 0, "scales": [0.5], "hflip": False},
    }
    smoke_spectrogram = (-40, 10, (1, 257, 200))

    def __init__(self, cfg: Mapping[str, Any] | None = None) -> None:
        super().__init__(cfg)
        m = self.cfg["model"]
        self.vision, self.audio = avenet_streams(m)  # re-initialised after building, as SSL-TIE
        self.loss_cfg = TrimapConfig.from_dict(self.cfg["loss"])
        eq = self.cfg["equivariance"]
        if eq["consistency"] not in ("mse", "l1"):
            raise ConfigError(f"equivariance.consistency {eq['consistency']!r}; valid: mse, l1")

    @classmethod
    def from_official(
        cls, state: Mapping[str, torch.Tensor], cfg: Mapping[str, Any] | None = None
    ) -> SslTie:
        """A model holding the weights of an official SSL-TIE ``state_dict``."""
        over = {"model": {"backbone": "resnet18", "pretrained": False}}
        return official_model(cls, ssl_tie_state_from_official(state), cfg, over, "SSL-TIE")

    # -- data --------------------------------------------------------------
    def sample_transform(self, train: bool) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return SslTieSample(self.cfg, train)

    # -- model -------------------------------------------------------------
    def embed(self, frame: torch.Tensor, spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        img = F.normalize(self.vision(frame), dim=1)
        aud = F.normalize(self.audio(spec), dim=1)
        return img, aud

    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embed(batch["frame"], batch["spectrogram"])

    def losses(
        self, features: tuple[torch.Tensor, torch.Tensor], batch: Batch
    ) -> dict[str, torch.Tensor]:
        """The tri-map loss of the frame and of its transformed copy, plus equivariance."""
        img, aud = features
        frame = batch["frame"]
        out = trimap_loss(img, aud, self.loss_cfg)

        eq = self.cfg["equivariance"]
        tf = sample_equivariance(
            frame.shape[0],
            frame.shape[-2:],
            max_angle=eq["max_angle"],
            scales=eq["scales"],
            hflip=eq["hflip"],
        )
        img_t = F.normalize(self.vision(tf.apply(frame)), dim=1)
        out_t = trimap_loss(img_t, aud, self.loss_cfg)
        heat = out.cosine.unsqueeze(1)
        if not eq["heatmap_grad"]:
            heat = heat.detach()
        loss_eq = equivariance_loss(out_t.cosine.unsqueeze(1), tf.apply(heat), eq["consistency"])
        loss = 0.5 * (out.loss + out_t.loss) + float(eq["weight"]) * loss_eq
        return {
            "loss": loss,
            "loss_cl": out.loss.detach(),
            "loss_cl_t": out_t.loss.detach(),
            "loss_equi": loss_eq.detach(),
        }

    def validation_losses(
        self, features: tuple[torch.Tensor, torch.Tensor], batch: Batch
    ) -> dict[str, torch.Tensor]:
        # validation reports the tri-map loss alone: no random transformation, so a
        # fixed validation set gives a fixed number
        return TrimapHead.losses(self, features, batch)
