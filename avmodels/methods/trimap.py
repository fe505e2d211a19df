"""The LVS tri-map contrastive loss shared by SSL-TIE and Hear-The-Flow.

Chen et al., "Localizing Visual Sounds the Hard Way" (CVPR 2021). With L2-normalised
visual features V (B, C, h, w) and audio vectors a (B, C), the cosine map of the
true pair is ``A = <V, a>`` (B, h, w). Soft masks select its likely positive
region ``Pos = sigmoid((A - eps_pos) / tau)`` and its likely background
``Neg = 1 - sigmoid((A - eps_neg) / tau)`` (the tri-map: the band in between is
ignored). Logits, divided by a temperature (0.07):

- positive: the Pos-weighted mean of A;
- easy negatives: for every other audio of the batch, the Pos-weighted mean of
  its own cosine map with this frame (the diagonal multiplied by ``1 - 100``, as
  the originals do, to push the true pair out of the negatives);
- hard negative: the Neg-weighted mean of A (the frame's own background).

Cross-entropy with target 0.

**Where we differ (numerics only).** The originals compute each weighted mean
as ``sum(w * A) / sum(w)`` and ``Neg`` as ``1 - sigmoid(z)``. Early in
training the Pos weights are tiny (sigmoid(-20) ~ 2e-9), and ``1 - sigmoid(z)``
rounds to exactly 0 once ``A > eps_neg + 17 tau``; in float16 (AMP) the weights
underflow to 0 and the ratio is 0/0 = NaN; a guard such as ``+ 1e-6`` in the
denominator (a common "fix", tried by our prototype) swamps ~1e-10 weights, so
the positive logit reads ~0 and the loss stalls at exactly log(B + 1). We compute
the same weighted means in log space - weights ``exp(logsigmoid(z))``
normalised by a softmax, with ``Neg = sigmoid(-z)`` - in float32: identical
values where the originals are finite, no underflow, no epsilon.
``normaliser="ratio"`` reproduces the originals' arithmetic (with an optional
``eps`` in the denominators, default 0 as in the originals).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from avmodels.layers.similarity import cross_maps, pair_maps
from avprep.errors import ConfigError

NORMALISERS = ("logspace", "ratio")
DIAGONALS = ("lvs", "exclude")


@dataclass(frozen=True)
class TrimapConfig:
    """Parameters of the loss; the defaults are LVS's, SSL-TIE's and HTF's.

    ``eps_neg`` is LVS/SSL-TIE's ``epsilon2`` (0.4) and HTF's
    ``epsilon - epsilon_margin`` (0.65 - 0.25).
    """

    eps_pos: float = 0.65
    eps_neg: float = 0.4
    tau: float = 0.03
    temperature: float = 0.07
    trimap: bool = True  # False: Neg = 1 - Pos (no ignored band)
    hard_negative: bool = True  # the frame's own background as an extra negative
    normaliser: str = "logspace"  # or "ratio": the originals' arithmetic
    eps: float = 0.0  # added to the denominators in "ratio" mode only
    diagonal: str = "lvs"  # "lvs": multiply by 1 - 100; "exclude": drop the true pair

    def __post_init__(self) -> None:
        if self.normaliser not in NORMALISERS:
            raise ConfigError(f"trimap normaliser {self.normaliser!r}; valid: {NORMALISERS}")
        if self.diagonal not in DIAGONALS:
            raise ConfigError(f"trimap diagonal {self.diagonal!r}; valid: {DIAGONALS}")
        if self.tau <= 0 or self.temperature <= 0:
            raise ConfigError("trimap tau and temperature must be > 0")

    @classmethod
    def from_dict(cls, d: dict) -> TrimapConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            valid = ", ".join(cls.__dataclass_fields__)
            raise ConfigError(f"unknown loss key(s) {sorted(unknown)}; valid: {valid}")
        return cls(**d)


@dataclass
class TrimapOutput:
    loss: torch.Tensor  # scalar
    logits: torch.Tensor  # (B, 1 + B [+ 1])
    cosine: torch.Tensor  # (B, h, w): the true pair's map, the localisation map


def cosine_maps(img: torch.Tensor, aud: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``A`` (B, h, w): each frame with its audio; ``A0`` (B, B, h, w): frame i, audio j."""
    return pair_maps(img, aud), cross_maps(img, aud)


def _weighted_mean(values: torch.Tensor, z: torch.Tensor, cfg: TrimapConfig) -> torch.Tensor:
    """Mean of ``values`` over (h, w) weighted by ``sigmoid(z)``; shape (...,)."""
    v = values.flatten(-2)
    z = z.flatten(-2)
    if cfg.normaliser == "logspace":
        return (torch.softmax(F.logsigmoid(z), dim=-1) * v).sum(-1)
    w = torch.sigmoid(z)
    return (w * v).sum(-1) / (w.sum(-1) + cfg.eps)


def _neg_mean(values: torch.Tensor, cfg: TrimapConfig) -> torch.Tensor:
    eps = cfg.eps_neg if cfg.trimap else cfg.eps_pos
    z = (values - eps) / cfg.tau
    if cfg.normaliser == "logspace":
        return _weighted_mean(values, -z, cfg)  # 1 - sigmoid(z) == sigmoid(-z), exactly
    w = 1.0 - torch.sigmoid(z)  # the originals' form, with its cancellation
    v, w = values.flatten(-2), w.flatten(-2)
    return (w * v).sum(-1) / (w.sum(-1) + cfg.eps)


def trimap_logits(a_true: torch.Tensor, a_all: torch.Tensor, cfg: TrimapConfig) -> torch.Tensor:
    """Logits (B, 1 + B [+ 1]) from the cosine maps; column 0 is the positive."""
    a_true = a_true.float()
    a_all = a_all.float()
    b = a_true.shape[0]
    sim_pos = _weighted_mean(a_true, (a_true - cfg.eps_pos) / cfg.tau, cfg).unsqueeze(1)
    sim_all = _weighted_mean(a_all, (a_all - cfg.eps_pos) / cfg.tau, cfg)  # (B, B)
    eye = torch.eye(b, dtype=torch.bool, device=a_true.device)
    if cfg.diagonal == "lvs":
        sim_all = sim_all * (1.0 - 100.0 * eye.float())
    else:
        sim_all = sim_all.masked_fill(eye, float("-inf"))
    parts = [sim_pos, sim_all]
    if cfg.hard_negative:
        parts.append(_neg_mean(a_true, cfg).unsqueeze(1))
    return torch.cat(parts, dim=1) / cfg.temperature


def trimap_loss(img: torch.Tensor, aud: torch.Tensor, cfg: TrimapConfig) -> TrimapOutput:
    """The LVS loss of L2-normalised features ``img`` (B, C, h, w) and ``aud`` (B, C)."""
    if img.ndim != 4 or aud.ndim != 2 or img.shape[:2] != aud.shape:
        raise ValueError(f"expected img (B,C,h,w) and aud (B,C); got {img.shape}, {aud.shape}")
    # float32 even under AMP: the masks' sigmoids are steep (1/tau = 33) and the
    # cosines are compared with thresholds to ~1e-3.
    with torch.autocast(device_type=img.device.type, enabled=False):
        a_true, a_all = cosine_maps(img.float(), aud.float())
        logits = trimap_logits(a_true, a_all, cfg)
        target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        loss = F.cross_entropy(logits, target)
    return TrimapOutput(loss, logits, a_true)


def trimap_loss_defaults() -> dict[str, Any]:
    """The ``loss`` section of a tri-map method's defaults: LVS's values (:class:`TrimapConfig`)."""
    return asdict(TrimapConfig())


class TrimapHead:
    """Losses and maps of a method trained with the tri-map loss.

    A mixin for a :class:`~avmodels.methods.base.Method` that sets ``loss_cfg``
    (a :class:`TrimapConfig`) and whose ``encode(batch)`` gives L2-normalised
    visual maps (B, C, h, w) and audio vectors (B, C). The map is the true
    pair's cosine map, in float32 even under autocast (the loss's ``cosine``).
    """

    loss_cfg: TrimapConfig

    def losses(self, features: tuple[torch.Tensor, torch.Tensor], batch: dict[str, Any]) -> dict:
        img, aud = features
        return {"loss": trimap_loss(img, aud, self.loss_cfg).loss}

    def maps(self, features: tuple[torch.Tensor, torch.Tensor], batch: dict[str, Any]) -> Any:
        img, aud = features
        with torch.autocast(device_type=img.device.type, enabled=False):
            return pair_maps(img.float(), aud.float())
