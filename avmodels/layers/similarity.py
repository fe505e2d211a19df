"""Audio-visual similarity maps: visual feature maps against audio vectors.

``img`` is (N, C, h, w), ``aud`` (N or M, C); with L2-normalised features the
values are cosines. Every method's localisation map and its contrastive
logits start from one of these two products.
"""

from __future__ import annotations

import torch


def pair_maps(img: torch.Tensor, aud: torch.Tensor) -> torch.Tensor:
    """(N, h, w): frame n with its own audio n, ``<V_n, a_n>`` at every position."""
    return torch.einsum("nchw,nc->nhw", img, aud)


def cross_maps(img: torch.Tensor, aud: torch.Tensor) -> torch.Tensor:
    """(N, M, h, w): frame n with every audio m, ``<V_n, a_m>`` at every position."""
    return torch.einsum("nchw,mc->nmhw", img, aud)
