"""SLAVC: a closer look at weakly-supervised audio-visual source localisation.

Mo and Morgado, "A Closer Look at Weakly-Supervised Audio-Visual Source
Localization", NeurIPS 2022 (github.com/stoneMo/SLAVC). Defaults are its
``scripts/train_vggsound144k.sh`` (over ``train.py``'s arguments): tau 0.03,
dim 512, dropout 0.9 on the visual map (0 on the audio vector), momentum
0.999 for both encoders, Adam 1e-4 without weight decay, batch 128, 20
epochs, constant learning rate.

Model: EZ-VSL's streams (:mod:`avmodels.methods.mil`) with *two* projections
per modality (``img_proj1/2``, ``aud_proj1/2``) and a momentum copy of every
trainable part, updated ``m * momentum + (1 - m) * online`` (parameters
only) at the start of every training forward, before the targets are
computed - as the original. The momentum encoders run in the model's mode
(their BatchNorm statistics follow their own forward passes) and share the
dropouts. Loss, with ``t`` the momentum (target) features::

    i2a = log sum_hw softmax_m(<V1_n, a1t_m> / tau) * softmax_hw(<V2_n, a2t_m> / tau)
    a2i = the same with the momentum images V1t, V2t and the online audios a1, a2
    L = CE(a2i, y) + CE(i2a, y)

(the audio-visual matching term picks the audio, softmax over the batch; the
localisation term weighs the positions, softmax over the map).

Prediction: ``(S1 + S2) / 2`` with ``Sk = <Vk, ak> / tau`` of the online
encoders (its test scripts; ``eval_map.momentum`` uses the momentum
encoders, its ``--use_mom_eval``). The extended protocols (Flickr and VGG-SS
"plus silent") score it through :func:`slavc_prediction`: bicubic
``align_corners=True`` to 224, ``(S + 1/tau) / (2/tau)``, confidence = the
mean of the top quarter, foreground ``>= 0.5`` (absolute) or, with
``relative``, the min-max normalised map above its value at ``pred_size``
of the sorted pixels. :meth:`Slavc.extended_prediction` returns both.

Where we differ: selection on a validation split, not the test set;
``loss.global_negatives`` as in :mod:`avmodels.methods.mil` (gathered momentum
targets carry no gradient). Its semi-supervised branch
(``--use_supervised_data``) is not implemented.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avmodels.layers.gather import gather_batch
from avmodels.layers.normalise import minmax_guarded
from avmodels.layers.similarity import cross_maps, pair_maps
from avmodels.methods.base import METHODS, Batch, Method
from avmodels.methods.construction import positive_tau
from avmodels.methods.mil import (
    MIL_SMOKE_SPECTROGRAM,
    MilSample,
    mil_data_defaults,
    mil_dropouts,
    mil_init,
    mil_model_defaults,
    mil_official_model,
    mil_smoke,
    mil_state_from_official,
    mil_streams,
)
from avprep.errors import ConfigError

_ONLINE = ("vision", "img_proj1", "img_proj2", "audio", "aud_proj1", "aud_proj2")
_RENAMES = {
    "img_proj1": "img_proj1",
    "img_proj2": "img_proj2",
    "aud_proj1": "aud_proj1",
    "aud_proj2": "aud_proj2",
    "momentum_imgnet": "momentum_vision",
    "momentum_audnet": "momentum_audio",
    "momentum_img_proj1": "momentum_img_proj1",
    "momentum_img_proj2": "momentum_img_proj2",
    "momentum_aud_proj1": "momentum_aud_proj1",
    "momentum_aud_proj2": "momentum_aud_proj2",
}


def slavc_state_from_official(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SLAVC's ``SLAVC`` keys (online and ``momentum_*`` parts) onto ours."""
    return mil_state_from_official(state, "SLAVC", _RENAMES)


def slavc_loss(
    img1: torch.Tensor,
    img2: torch.Tensor,
    aud1: torch.Tensor,
    aud2: torch.Tensor,
    targets: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    tau: float,
    global_negatives: bool = False,
) -> torch.Tensor:
    """SLAVC's loss of this process's rows (online ``img*``/``aud*``, momentum ``targets``)."""
    img1_t, img2_t, aud1_t, aud2_t = targets
    with torch.no_grad():
        aud1_t_all, offset = gather_batch(aud1_t, global_negatives)
        aud2_t_all, _ = gather_batch(aud2_t, global_negatives)
    aud1_all, _ = gather_batch(aud1, global_negatives)
    aud2_all, _ = gather_batch(aud2, global_negatives)

    def score(v1, v2, a1, a2):  # (n, m): log sum_hw softmax_m(.) softmax_hw(.)
        s1 = cross_maps(v1, a1).flatten(-2) / tau
        s2 = cross_maps(v2, a2).flatten(-2) / tau
        return torch.log((F.softmax(s1, dim=1) * F.softmax(s2, dim=2)).sum(2))

    i2a = score(img1, img2, aud1_t_all, aud2_t_all)
    a2i = score(img1_t, img2_t, aud1_all, aud2_all)
    labels = torch.arange(img1.shape[0], device=img1.device) + offset
    return F.cross_entropy(a2i, labels) + F.cross_entropy(i2a, labels)


def slavc_prediction(
    maps: torch.Tensor,
    tau: float,
    relative: bool = False,
    pred_size: float = 0.5,
    pred_thr: float = 0.5,
    size: int = 224,
) -> dict[str, torch.Tensor]:
    """SLAVC's extended-protocol prediction of maps ``S / tau`` (B, h, w).

    Returns ``scores`` (B, size, size) in [0, 1] (``(up(S) + 1/tau) / (2/tau)``),
    ``confidence`` (B,) (mean of the top quarter of the scores), ``pred``
    (the map thresholded: the scores, or with ``relative`` their min-max
    normalisation) and ``threshold`` (B,); the foreground is ``pred >= threshold``.
    """
    up = F.interpolate(maps.unsqueeze(1).float(), size=(size, size), mode="bicubic",
                       align_corners=True)[:, 0]  # fmt: skip
    lo, hi = -1.0 / tau, 1.0 / tau
    scores = (up - lo) / (hi - lo)
    flat = scores.flatten(1)
    n = flat.shape[1]
    confidence = torch.sort(flat, dim=1).values[:, -(n // 4) :].mean(dim=1)
    if relative:
        pred = minmax_guarded(scores)
        threshold = torch.sort(pred.flatten(1), dim=1).values[:, int(n * pred_size)]
    else:
        pred = scores
        threshold = torch.full((scores.shape[0],), float(pred_thr))
    return {"scores": scores, "confidence": confidence, "pred": pred, "threshold": threshold}


@METHODS.register("slavc")
class Slavc(Method):
    """EZ-VSL's streams with two projections each, momentum targets, matching + localisation."""

    name = "slavc"
    paper = "Mo and Morgado, A Closer Look at Weakly-Supervised Audio-Visual Source Localization, NeurIPS 2022"
    inputs = ("frame", "spectrogram")
    profile = "ezvsl"
    defaults = {
        # ImageNet vision trunk (online and momentum)
        "model": mil_model_defaults(
            dropout_img=0.9, dropout_aud=0.0, momentum_img=0.999, momentum_aud=0.999
        ),
        # 3 s: its extended test sets read 5 s (extract with audio_seconds=5)
        "data": mil_data_defaults(),
        "loss": {"tau": 0.03, "global_negatives": False},
        "eval_map": {"momentum": False},
        "optim": {"name": "adam", "lr": 1e-4, "weight_decay": 0.0, "scheduler": "constant"},
        "train": {"batch_size": 128, "epochs": 20},
        "eval": {"preset": "ezvsl"},
    }
    smoke_overrides = mil_smoke(dropout_img=0.0, momentum_img=0.9, momentum_aud=0.9)
    smoke_spectrogram = MIL_SMOKE_SPECTROGRAM

    def __init__(self, cfg: Mapping[str, Any] | None = None) -> None:
        super().__init__(cfg)
        m = self.cfg["model"]
        for key in ("momentum_img", "momentum_aud"):
            if not 0.0 <= float(m[key]) <= 1.0:
                raise ConfigError(f"model.{key} must be in [0, 1]")
        self.tau = positive_tau(self.cfg)
        dim = int(m["dim"])
        self.vision, self.audio = mil_streams(m)
        c = self.vision.out_channels
        self.img_proj1, self.img_proj2 = nn.Conv2d(c, dim, 1), nn.Conv2d(c, dim, 1)
        self.aud_proj1, self.aud_proj2 = nn.Linear(c, dim), nn.Linear(c, dim)
        for part in (self.img_proj1, self.aud_proj1, self.img_proj2, self.aud_proj2):
            mil_init(part)
        self.img_dropout, self.aud_dropout = mil_dropouts(m)
        for name in _ONLINE:  # momentum copies: same weights, never given gradients
            twin = copy.deepcopy(getattr(self, name)).requires_grad_(False)
            setattr(self, f"momentum_{name}", twin)

    @classmethod
    def from_official(
        cls, state: Mapping[str, torch.Tensor], cfg: Mapping[str, Any] | None = None
    ) -> Slavc:
        """A model holding the weights of a SLAVC ``model`` state dict."""
        mapped = slavc_state_from_official(state)
        return mil_official_model(cls, mapped, cfg, "SLAVC", projection="img_proj1")

    def param_groups(self) -> list[dict[str, Any]]:
        online = [p for n in _ONLINE for p in getattr(self, n).parameters() if p.requires_grad]
        return [{"params": online}]

    def convert_sync_batchnorm(self, convert: Callable[[nn.Module], nn.Module]) -> None:
        convert(self)  # the momentum encoders normalise their batch too, as the online ones

    # -- data --------------------------------------------------------------
    def sample_transform(self, train: bool) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return MilSample(self.cfg, train)

    # -- model -------------------------------------------------------------
    def features(self, batch: Batch, momentum: bool) -> tuple[torch.Tensor, ...]:
        """(V1, V2, a1, a2): L2-normalised maps (B, dim, h, w) and vectors (B, dim)."""
        pre = "momentum_" if momentum else ""
        img = self.img_dropout(getattr(self, pre + "vision")(batch["frame"]))
        aud = self.aud_dropout(getattr(self, pre + "audio")(batch["spectrogram"]))
        return (
            F.normalize(getattr(self, pre + "img_proj1")(img), dim=1),
            F.normalize(getattr(self, pre + "img_proj2")(img), dim=1),
            F.normalize(getattr(self, pre + "aud_proj1")(aud), dim=1),
            F.normalize(getattr(self, pre + "aud_proj2")(aud), dim=1),
        )

    @torch.no_grad()
    def momentum_update(self) -> None:
        m_img, m_aud = (float(self.cfg["model"][k]) for k in ("momentum_img", "momentum_aud"))
        for name in _ONLINE:
            m = m_img if name.startswith(("vision", "img")) else m_aud
            online, twin = getattr(self, name), getattr(self, f"momentum_{name}")
            for p, q in zip(online.parameters(), twin.parameters(), strict=True):
                q.data = q.data * m + p.data * (1.0 - m)

    def encode(self, batch: Batch) -> dict[str, tuple[torch.Tensor, ...]]:
        """The online features and, after the momentum update (training mode), the targets."""
        online = self.features(batch, momentum=False)
        if self.training:
            self.momentum_update()
        with torch.no_grad():
            targets = self.features(batch, momentum=True)
        return {"online": online, "momentum": targets}

    def losses(self, features: dict[str, tuple], batch: Batch) -> dict[str, torch.Tensor]:
        img1, img2, aud1, aud2 = features["online"]
        share = bool(self.cfg["loss"]["global_negatives"])
        loss = slavc_loss(img1, img2, aud1, aud2, features["momentum"], self.tau, share)
        return {"loss": loss}

    def maps(self, features: dict[str, tuple], batch: Batch) -> torch.Tensor:
        """``(S1 + S2) / 2`` of the online features (``eval_map.momentum``: the targets)."""
        feats = features["momentum" if self.cfg["eval_map"]["momentum"] else "online"]
        img1, img2, aud1, aud2 = (f.float() for f in feats)
        s1 = pair_maps(img1, aud1) / self.tau
        s2 = pair_maps(img2, aud2) / self.tau
        return (s1 + s2) / 2

    def localization_map(self, batch: Batch) -> torch.Tensor:
        # the map reads one encoder: run only that one (half the cost, and no
        # momentum update when called in training mode)
        key = "momentum" if self.cfg["eval_map"]["momentum"] else "online"
        return self.maps({key: self.features(batch, momentum=key == "momentum")}, batch)

    def extended_prediction(
        self, batch: Batch, relative: bool = False, pred_size: float = 0.5, pred_thr: float = 0.5
    ) -> dict[str, torch.Tensor]:
        """Confidence and prediction of the extended protocols (:func:`slavc_prediction`)."""
        return slavc_prediction(
            self.localization_map(batch), self.tau, relative, pred_size, pred_thr
        )
