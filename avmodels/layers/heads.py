"""Projection heads: SimSiam's projector and predictor, point-wise MLPs.

SimSiam (Chen & He, "Exploring Simple Siamese Representation Learning", CVPR
2021) as SSPL uses it: projector dim_in-2048-2048-2048 (BatchNorm after every
Linear, the last without affine), predictor 2048-512-2048; the loss is the
symmetric negative cosine with stop-gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _mlp_bn(dim_in: int, dim_out: int, relu: bool = True, affine: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Linear(dim_in, dim_out, bias=False),
        nn.BatchNorm1d(dim_out, affine=affine),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Projector(nn.Module):
    def __init__(self, dim_in: int, hidden: int = 2048, dim_out: int = 2048) -> None:
        super().__init__()
        self.layer1 = _mlp_bn(dim_in, hidden)
        self.layer2 = _mlp_bn(hidden, hidden)
        self.layer3 = _mlp_bn(hidden, dim_out, relu=False, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer3(self.layer2(self.layer1(x)))


class Predictor(nn.Module):
    def __init__(self, dim: int = 2048, hidden: int = 512) -> None:
        super().__init__()
        self.layer1 = _mlp_bn(dim, hidden)
        self.layer2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer2(self.layer1(x))


class SimSiamHead(nn.Module):
    """Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021."""

    def __init__(self, dim_in: int = 512, proj_dim: int = 2048, pred_hidden: int = 512) -> None:
        super().__init__()
        self.projector = Projector(dim_in, proj_dim, proj_dim)
        self.predictor = Predictor(proj_dim, pred_hidden)

    def loss(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        # each view through the projector separately: BatchNorm statistics per view
        z1, z2 = self.projector(x1), self.projector(x2)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        return -0.5 * (
            F.cosine_similarity(p1, z2.detach(), dim=1).mean()
            + F.cosine_similarity(p2, z1.detach(), dim=1).mean()
        )


def pointwise_mlp(c: int, hidden: int, out: int) -> nn.Sequential:
    """``c -> hidden -> out`` on every position of a (B, c, N) tensor (1-D 1x1 convs, no bias)."""
    return nn.Sequential(
        nn.Conv1d(c, hidden, 1, bias=False), nn.ReLU(True), nn.Conv1d(hidden, out, 1, bias=False)
    )
