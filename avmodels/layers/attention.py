"""Attention blocks: audio-guided pooling of a visual map, and cross-attention.

- :func:`attention_pool` (SSPL, Song et al., CVPR 2022): the cosine map between
  a visual feature map and an audio vector, min-max normalised, weights the
  visual features into one vector;
- :class:`FlowAttention` (Hear-The-Flow, Fedorishin et al., WACV 2023, its
  ``Self_Attn``): query from the image, key from the optical flow, value from
  the image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from avmodels.layers.normalise import minmax


def attention_pool(visual: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SSPL's audio-visual attention: (pooled (B, C), cosine map (B, h, w))."""
    b, c, h, w = visual.shape
    flat = visual.reshape(b, c, h * w)
    v_unit = F.normalize(flat, p=2, dim=1)
    a_unit = F.normalize(audio, p=2, dim=1)
    sim = torch.bmm(v_unit.transpose(1, 2), a_unit.unsqueeze(2)).squeeze(2)  # (B, hw)
    att = minmax(sim, 1e-10)
    pooled = torch.bmm(flat, att.unsqueeze(2)).squeeze(2)  # (B, C)
    return pooled, sim.reshape(b, h, w)


class FlowAttention(nn.Module):
    """HTF's cross attention: query image, key flow, value image (``Self_Attn``)."""

    def __init__(self, in_dim: int, key_in_dim: int) -> None:
        super().__init__()
        self.inner = in_dim // 8
        self.query_conv = nn.Conv2d(in_dim, self.inner, kernel_size=1)
        self.key_conv = nn.Conv2d(key_in_dim, self.inner, kernel_size=1)
        self.value_conv = nn.Conv2d(in_dim, in_dim, kernel_size=1)

    def forward(self, img: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the attended value (B, C, h, w) and the attention (B, N query, N key)."""
        b, c, h, w = img.shape
        if flow.shape[-2:] != (h, w):
            raise ValueError(f"flow map {tuple(flow.shape[-2:])} differs from image map {(h, w)}")
        q = self.query_conv(img).flatten(2).transpose(1, 2)  # (B, N, C/8)
        k = self.key_conv(flow).flatten(2)  # (B, C/8, N)
        att = torch.softmax(torch.bmm(q, k) / math.sqrt(self.inner), dim=-1)
        v = self.value_conv(img).flatten(2)  # (B, C, N)
        out = torch.bmm(v, att.transpose(1, 2))
        return out.view(b, c, h, w), att
