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

from avmodels.layers.gather import gather_batch
from avmodels.methods.base import METHODS, Batch, Method
from avmodels.methods.construction import positive_tau
from avmodels.methods.mil import (
    MIL_SMOKE_SPECTROGRAM,
    MilSample,
    ObjectSaliency,
    av_map,
    blend_with_saliency,
    mil_data_defaults,
    mil_infonce,
    mil_model_defaults,
    mil_official_model,
    mil_smoke,
    mil_state_from_official,
    mil_streams,
    projections,
)
from avprep.errors import ConfigError


@METHODS.register("ezvsl")
class Ezvsl(Method):
    """Two ResNet-18 streams, max-pooled multiple-instance InfoNCE."""

    name = "ezvsl"
    paper = "Mo and Morgado, Localizing Visual Sounds the Easy Way, ECCV 2022"
    inputs = ("frame", "spectrogram")
    profile = "ezvsl"
    defaults = {
        "model": mil_model_defaults(),
        "data": mil_data_defaults(),
        "loss": {"tau": 0.03, "global_negatives": False},
        "eval_map": {"object_saliency": False, "alpha": 0.4, "saliency_weights": None},
        "optim": {"name": "adam", "lr": 1e-4, "weight_decay": 0.0, "scheduler": "constant"},
        "train": {"batch_size": 128, "epochs": 20},
        "eval": {"preset": "ezvsl"},
    }
    smoke_overrides = mil_smoke()
    smoke_spectrogram = MIL_SMOKE_SPECTROGRAM

    def __init__(self, cfg: Mapping[str, Any] | None = None) -> None:
        super().__init__(cfg)
        m = self.cfg["model"]
        self.vision, self.audio = mil_streams(m)
        self.img_proj, self.aud_proj = projections(self.vision.out_channels, int(m["dim"]))
        self.tau = positive_tau(self.cfg)
        ev = self.cfg["eval_map"]
        if not 0.0 <= float(ev["alpha"]) <= 1.0:
            raise ConfigError("eval_map.alpha must be in [0, 1]")
        self._saliency: list[ObjectSaliency] = []  # built on first use, never saved

    @classmethod
    def from_official(
        cls, state: Mapping[str, torch.Tensor], cfg: Mapping[str, Any] | None = None
    ) -> Ezvsl:
        """A model holding the weights of an EZ-VSL ``best.pth`` ``model`` state dict."""
        return mil_official_model(cls, ezvsl_state_from_official(state), cfg, "EZ-VSL")

    # -- data --------------------------------------------------------------
    def sample_transform(self, train: bool) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return MilSample(self.cfg, train)

    # -- model -------------------------------------------------------------
    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised visual maps (B, dim, h, w) and audio vectors (B, dim)."""
        img = F.normalize(self.img_proj(self.vision(batch["frame"])), dim=1)
        aud = F.normalize(self.aud_proj(self.audio(batch["spectrogram"])), dim=1)
        return img, aud

    def losses(
        self, features: tuple[torch.Tensor, torch.Tensor], batch: Batch
    ) -> dict[str, torch.Tensor]:
        img, aud = features
        share = bool(self.cfg["loss"]["global_negatives"])
        img_all, offset = gather_batch(img, share)
        aud_all, _ = gather_batch(aud, share)
        loss, _ = mil_infonce(img, aud, img_all, aud_all, offset, self.tau)
        return {"loss": loss}

    def maps(self, features: tuple[torch.Tensor, torch.Tensor], batch: Batch) -> torch.Tensor:
        img, aud = features
        return self._final_map(batch, av_map(img, aud, self.tau))

    # -- the object-saliency blend -------------------------------------------
    def map_label(self) -> str:
        """What :meth:`maps` returns: ``av`` or ``av+obj(alpha=...)``."""
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
