"""FNAC: false-negative-aware contrastive learning on top of EZ-VSL.

Sun, Zhang, Li, Zhang, Zhong, Wang, Barnes, Liu, "Learning Audio-Visual Source
Localization via False Negative Aware Contrastive Learning", CVPR 2023
(github.com/OpenNLPLab/FNAC_AVL). Defaults are its ``train_*.sh`` scripts:
tau 0.03, dim 512, dropout 0.9 on the visual map (0 on the audio vector),
Adam 1e-4 with weight decay 1e-4, batch 256, 30 epochs, 5 warm-up epochs with
EZ-VSL's loss alone, then

``L = L_ezvsl + 100 L_fns1 + 100 L_tns + 100 L_fns2``

over the batch's similarity matrices divided by tau, each softmaxed over
the row (L1 distance, mean over all entries):

- FNS-1: audio-audio similarity ``a a^T`` vs the multiple-instance logits;
- TNS: audio-audio vs the similarity of pooled foreground features (the
  visual map masked where the clip's min-max normalised map exceeds 0.6,
  averaged over all positions);
- FNS-2: image-image similarity (average-pooled visual maps) vs the logits.

Training spectrograms get its two masks, always applied, fill 0: a
"frequency" mask whose start is drawn over the *time* length and a "time"
mask whose start is drawn over the *frequency* length (the original's
ranges, kept), each of width 0..9.

Where we differ: selection on a validation split instead of the test set;
``loss.global_negatives`` as in :mod:`avmodels.methods.mil`. The original's
resume code reads ``best.pth`` while checking ``latest.pth``; the engine
resumes the latest state.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from avmodels.layers.gather import gather_batch
from avmodels.layers.normalise import minmax
from avmodels.layers.similarity import pair_maps
from avmodels.methods.base import METHODS, Batch, Method
from avmodels.methods.construction import positive_tau
from avmodels.methods.mil import (
    MIL_SMOKE_SPECTROGRAM,
    MilSample,
    av_map,
    mil_data_defaults,
    mil_dropouts,
    mil_infonce,
    mil_model_defaults,
    mil_official_model,
    mil_smoke,
    mil_state_from_official,
    mil_streams,
    projections,
)


class FnacSpecMask:
    """FNAC's training masks of a (1, F, T) spectrogram (``random``'s draws, fill 0)."""

    def __init__(self, max_width: int = 10) -> None:
        self.max_width = int(max_width)

    def __call__(self, spec: torch.Tensor) -> torch.Tensor:
        spec = spec.clone()
        start = random.randrange(0, spec.shape[2])  # over time, masks frequencies
        spec[:, start : start + random.randrange(0, self.max_width), :] = 0
        start = random.randrange(0, spec.shape[1])  # over frequencies, masks time
        spec[:, :, start : start + random.randrange(0, self.max_width)] = 0
        return spec


def fnac_terms(
    img: torch.Tensor,
    aud: torch.Tensor,
    tau: float,
    high_conf: float = 0.6,
    global_negatives: bool = False,
) -> dict[str, torch.Tensor]:
    """EZ-VSL's loss and FNAC's three terms of this process's rows.

    ``img`` (b, C, h, w) and ``aud`` (b, C) are L2-normalised.
    """
    img_all, offset = gather_batch(img, global_negatives)
    aud_all, _ = gather_batch(aud, global_negatives)
    loss, logits = mil_infonce(img, aud, img_all, aud_all, offset, tau)

    aud_attn = aud @ aud_all.t() / tau
    img_avg = img.mean(dim=(2, 3))
    img_avg_all, _ = gather_batch(img_avg, global_negatives)
    img_attn = img_avg @ img_avg_all.t() / tau

    loc = minmax(pair_maps(img, aud) / tau, 1e-5)
    frg = (img * (loc > high_conf).unsqueeze(1)).flatten(-2).mean(dim=-1)
    frg_all, _ = gather_batch(frg, global_negatives)
    frg_attn = frg @ frg_all.t() / tau

    soft = torch.softmax
    return {
        "loss_ezvsl": loss,
        "loss_fns1": F.l1_loss(soft(aud_attn, dim=1), soft(logits, dim=1)),
        "loss_tns": F.l1_loss(soft(aud_attn, dim=1), soft(frg_attn, dim=1)),
        "loss_fns2": F.l1_loss(soft(img_attn, dim=1), soft(logits, dim=1)),
    }


@METHODS.register("fnac")
class Fnac(Method):
    """EZ-VSL's streams and loss plus FNAC's false-negative-aware terms."""

    name = "fnac"
    paper = "Sun et al., Learning Audio-Visual Source Localization via False Negative Aware ..., CVPR 2023"
    inputs = ("frame", "spectrogram")
    profile = "ezvsl"
    defaults = {
        "model": mil_model_defaults(dropout_img=0.9, dropout_aud=0.0),
        "data": mil_data_defaults(),
        "augment": {"spec_mask": True, "mask_width": 10},
        "loss": {
            "tau": 0.03,
            "weight_fns1": 100.0,
            "weight_tns": 100.0,
            "weight_fns2": 100.0,
            "warmup_epochs": 5,
            "high_conf": 0.6,
            "global_negatives": False,
        },
        "optim": {"name": "adam", "lr": 1e-4, "weight_decay": 1e-4, "scheduler": "constant"},
        "train": {"batch_size": 256, "epochs": 30},
        "eval": {"preset": "ezvsl"},
    }
    smoke_overrides = {**mil_smoke(dropout_img=0.0), "loss": {"warmup_epochs": 0}}
    smoke_spectrogram = MIL_SMOKE_SPECTROGRAM

    def __init__(self, cfg: Mapping[str, Any] | None = None) -> None:
        super().__init__(cfg)
        m = self.cfg["model"]
        self.vision, self.audio = mil_streams(m)
        self.img_proj, self.aud_proj = projections(self.vision.out_channels, int(m["dim"]))
        self.img_dropout, self.aud_dropout = mil_dropouts(m)
        self.tau = positive_tau(self.cfg)
        self.epoch = 0

    @classmethod
    def from_official(
        cls, state: Mapping[str, torch.Tensor], cfg: Mapping[str, Any] | None = None
    ) -> Fnac:
        """A model holding the weights of an FNAC ``model`` state dict."""
        return mil_official_model(cls, fnac_state_from_official(state), cfg, "FNAC")

    # -- data --------------------------------------------------------------
    def sample_transform(self, train: bool) -> Callable[[dict[str, Any]], dict[str, Any]]:
        aug = self.cfg["augment"]
        mask = FnacSpecMask(int(aug["mask_width"])) if aug["spec_mask"] else None
        return MilSample(self.cfg, train, spec_aug=mask)

    # -- model -------------------------------------------------------------
    def on_epoch_start(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised visual maps (B, dim, h, w) and audio vectors (B, dim), after dropout."""
        img = self.img_dropout(self.vision(batch["frame"]))
        img = F.normalize(self.img_proj(img), dim=1)
        aud = self.aud_dropout(self.audio(batch["spectrogram"]))
        aud = F.normalize(self.aud_proj(aud), dim=1)
        return img, aud

    def losses(
        self, features: tuple[torch.Tensor, torch.Tensor], batch: Batch
    ) -> dict[str, torch.Tensor]:
        """EZ-VSL's loss, plus FNAC's weighted terms after the warm-up epochs."""
        img, aud = features
        lc = self.cfg["loss"]
        terms = fnac_terms(img, aud, self.tau, float(lc["high_conf"]), bool(lc["global_negatives"]))
        loss = terms["loss_ezvsl"]
        if self.epoch >= int(lc["warmup_epochs"]):
            loss = (
                loss
                + float(lc["weight_fns1"]) * terms["loss_fns1"]
                + float(lc["weight_tns"]) * terms["loss_tns"]
                + float(lc["weight_fns2"]) * terms["loss_fns2"]
            )
        return {"loss": loss, **{k: v.detach() for k, v in terms.items()}}

    def maps(self, features: tuple[torch.Tensor, torch.Tensor], batch: Batch) -> torch.Tensor:
        img, aud = features
        return av_map(img, aud, self.tau)


def fnac_state_from_official(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """FNAC's ``FNAC`` keys (as EZ-VSL's; its dropouts and pooling hold no tensors) onto ours."""
    return mil_state_from_official(state, "FNAC", {"img_proj": "img_proj", "aud_proj": "aud_proj"})
