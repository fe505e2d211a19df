"""EZ-VSL: localising visual sounds the easy way.

Mo and Morgado, "Localizing Visual Sounds the Easy Way", ECCV 2022
(github.com/stoneMo/EZ-VSL). Defaults are its ``train.py`` arguments and
``scripts/train_*.sh``: tau 0.03, projection dim 512, Adam 1e-4 without
weight decay, batch 128, 20 epochs, constant learning rate; the model, data
and loss are those of :mod:`avmodels.methods.mil` (the multiple-instance
InfoNCE over the max-pooled audio-visual similarity, both directions).

Evaluation option ``eval_map.object_saliency`` (off by default): its test
script's "AV+Obj" map, ``N(0.4 N(av) + 0.6 N(obj))`` at 224x224 with the
object saliency of a separate ImageNet ResNet-18 (``eval_map.alpha`` 0.4).
A run that uses it says so: its config carries the key and its maps are
labelled ``av+obj(alpha=0.4)`` by :meth:`Ezvsl.map_label`.

Where we differ: the originals select the checkpoint with the best cIoU on
the test set after every epoch; the engine selects on a validation split
(``eval.select``). Multi-process training can share negatives across
processes (``loss.global_negatives``, off as in the original).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from avmodels.methods.base import METHODS, Batch, Method
from avmodels.methods.construction import load_mapped, merge_defaults
from avmodels.methods.mil import (
    MilSample,
    ObjectSaliency,
    av_map,
    blend_with_saliency,
    gather_batch,
    mil_infonce,
    mil_smoke_spectrogram,
    mil_state_from_official,
    mil_streams,
    projections,
)
from avprep.errors import ConfigError

MIL_MODEL_DEFAULTS: dict[str, Any] = {
    "backbone": "resnet18",  # or "small" for CPU runs at 64-128 px
    "pretrained": True,  # ImageNet vision trunk (trained, not frozen)
    "pretrained_path": None,  # torchvision resnet18 .pth (None: the weights cache)
    "dim": 512,  # --out_dim
    "small_width": 32,
    "small_channels": 128,
    "small_stride": 8,
    "small_audio_stride": 16,
}
MIL_DATA_DEFAULTS: dict[str, Any] = {
    "image_size": 224,
    "spectrogram": "store",  # or "audio": computed on the fly
    "spectrogram_name": "lvs",  # scipy STFT, log(S + 1e-7) / 12
    "audio_seconds": 3.0,  # tiled to 3 s when shorter
    "spec_divisor": 1.0,  # the "lvs" front end already divides by 12
}
MIL_SMOKE: dict[str, Any] = {
    "model": {
        "backbone": "small",
        "pretrained": False,
        "small_width": 8,
        "small_channels": 32,
        "dim": 16,
    },
    "data": {"image_size": 64},
    "train": {"batch_size": 4},
}


@METHODS.register("ezvsl")
class Ezvsl(Method):
    """Two ResNet-18 streams, max-pooled multiple-instance InfoNCE."""

    name = "ezvsl"
    paper = "Mo and Morgado, Localizing Visual Sounds the Easy Way, ECCV 2022"
    inputs = ("frame", "spectrogram")
    profile = "ezvsl"
    defaults = {
        "model": dict(MIL_MODEL_DEFAULTS),
        "data": dict(MIL_DATA_DEFAULTS),
        "loss": {"tau": 0.03, "global_negatives": False},
        "eval_map": {"object_saliency": False, "alpha": 0.4, "saliency_weights": None},
        "optim": {"name": "adam", "lr": 1e-4, "weight_decay": 0.0, "scheduler": "constant"},
        "train": {"batch_size": 128, "epochs": 20},
        "eval": {"preset": "ezvsl"},
    }
    smoke_overrides = MIL_SMOKE

    def __init__(self, cfg: Mapping[str, Any] | None = None) -> None:
        super().__init__(merge_defaults(self.defaults, cfg))
        m = self.cfg["model"]
        self.vision, self.audio = mil_streams(m)
        self.img_proj, self.aud_proj = projections(self.vision.out_channels, int(m["dim"]))
        self.tau = float(self.cfg["loss"]["tau"])
        if self.tau <= 0:
            raise ConfigError("loss.tau must be > 0")
        ev = self.cfg["eval_map"]
        if not 0.0 <= float(ev["alpha"]) <= 1.0:
            raise ConfigError("eval_map.alpha must be in [0, 1]")
        self._saliency: list[ObjectSaliency] = []  # built on first use, never saved

    @classmethod
    def from_official(
        cls, state: Mapping[str, torch.Tensor], cfg: Mapping[str, Any] | None = None
    ) -> Ezvsl:
        """A model holding the weights of an EZ-VSL ``best.pth`` ``model`` state dict."""
        mapped = ezvsl_state_from_official(state)
        dim = int(mapped["img_proj.weight"].shape[0]) if "img_proj.weight" in mapped else 512
        over = {"model": {"backbone": "resnet18", "pretrained": False, "dim": dim}}
        model = cls(merge_defaults(cfg or {}, over))
        load_mapped(model, mapped, "EZ-VSL")
        return model

    # -- data --------------------------------------------------------------
    def sample_transform(self, train: bool) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return MilSample(self.cfg, train)

    def smoke_sample(self, seed: int) -> dict[str, Any]:
        sample = super().smoke_sample(seed)
        sample["spectrogram"] = mil_smoke_spectrogram(seed)
        return sample

    # -- model -------------------------------------------------------------
    def embed(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised visual maps (B, dim, h, w) and audio vectors (B, dim)."""
        img = F.normalize(self.img_proj(self.vision(batch["frame"])), dim=1)
        aud = F.normalize(self.aud_proj(self.audio(batch["spectrogram"])), dim=1)
        return img, aud

    def loss_of(self, img: torch.Tensor, aud: torch.Tensor) -> torch.Tensor:
        share = bool(self.cfg["loss"]["global_negatives"])
        img_all, offset = gather_batch(img, share)
        aud_all, _ = gather_batch(aud, share)
        loss, _ = mil_infonce(img, aud, img_all, aud_all, offset, self.tau)
        return loss

    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        img, aud = self.embed(batch)
        return {"loss": self.loss_of(img, aud)}

    def localization_map(self, batch: Batch) -> torch.Tensor:
        img, aud = self.embed(batch)
        return self._final_map(batch, av_map(img, aud, self.tau))

    def evaluation_step(self, batch: Batch, with_loss: bool) -> tuple[torch.Tensor, dict | None]:
        img, aud = self.embed(batch)
        maps = self._final_map(batch, av_map(img, aud, self.tau))
        return maps, ({"loss": self.loss_of(img, aud)} if with_loss else None)

    # -- the object-saliency blend -------------------------------------------
    def map_label(self) -> str:
        """What :meth:`localization_map` returns: ``av`` or ``av+obj(alpha=...)``."""
        ev = self.cfg["eval_map"]
        return f"av+obj(alpha={float(ev['alpha']):g})" if ev["object_saliency"] else "av"

    def object_saliency(self, frame: torch.Tensor) -> torch.Tensor:
        """The ImageNet ResNet-18 objectness map (B, 7, 7) of normalised frames."""
        if not self._saliency:
            model = ObjectSaliency(self.cfg["eval_map"]["saliency_weights"])
            self._saliency.append(model.to(frame.device))
        with torch.no_grad():
            return self._saliency[0](frame)

    def _final_map(self, batch: Batch, av: torch.Tensor) -> torch.Tensor:
        ev = self.cfg["eval_map"]
        if not ev["object_saliency"]:
            return av
        obj = self.object_saliency(batch["frame"])
        return blend_with_saliency(av, obj, float(ev["alpha"]))


def ezvsl_state_from_official(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """EZ-VSL's ``EZVSL`` keys (``imgnet``, ``img_proj``, ``audnet``, ``aud_proj``) onto ours."""
    return mil_state_from_official(
        state, "EZ-VSL", {"img_proj": "img_proj", "aud_proj": "aud_proj"}
    )
