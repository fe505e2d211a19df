"""MobileCRNN: the AudioSet audio tagger Multi-Source uses for its pseudo labels.

Dinkel's mobile convolutional-recurrent tagger as shipped in the Multi-Source
repository (``mobile_crnn/models/crnn.py``, the ``mobilecrnn_v2`` configuration,
527 AudioSet classes, mAP 0.274 by its authors' note). Written here from the
architecture; module names follow the original so that its released state
dict (``mobilecrnn_v2.pth``) loads key for key:

- ``features``: a stem (BatchNorm2d(1), Conv2d(1, 64, 5, stride 2, padding 2),
  Swish) then seven MobileNetV2 inverted residual blocks (expansion 6, stride
  1; residual when the width is kept) with max-pooling after some of them:
  ``(2, 2)`` after the stem, ``(1, 2)`` (frequency only) after blocks 1, 3 and
  5 of ``64, 128, 128, 256, 256, 512, 512``. A (T, 64) log-mel becomes
  512 x T/4 x 2;
- ``gru.rnn``: a bidirectional GRU (1024 -> 2 x 128) over the T/4 steps;
- ``outputlayer``: Linear(256, 527) + sigmoid per step (clamped to
  [1e-7, 1]); the clip's tags are the *linear softmax* pooling over time,
  ``sum p^2 / sum p``, clamped to [1e-7, 1].

Input: (B, T, 64) log-mel (``avprep.spectrogram`` ``mssl``: 64 bands, 40 ms
window, 20 ms hop at 22,050 Hz, ``log(mel + eps)``), the tagger's own front end.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MobileCRNN", "linear_softmax_pool", "mobilecrnn_v2"]

# mobilecrnn_v2: widths of the stem and the seven blocks, and the max-pool after each
# (None: no pooling). Kernel 5 / stride 2 / padding 2 in the stem, 3x3 depthwise after.
V2_WIDTHS = (64, 64, 128, 128, 256, 256, 512, 512)
V2_POOLS: tuple[tuple[int, int] | None, ...] = (
    (2, 2),
    (1, 2),
    None,
    (1, 2),
    None,
    (1, 2),
    None,
    None,
)


class Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


class _ConvBNReLU6(nn.Sequential):
    """Conv (no bias) + BatchNorm + ReLU6; keys ``0`` (conv) and ``1`` (bn)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, 1, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 block at stride 1: expand 1x1, depthwise 3x3, project 1x1 (no ReLU)."""

    def __init__(self, cin: int, cout: int, expand: int = 6) -> None:
        super().__init__()
        hidden = int(round(cin * expand))
        self.residual = cin == cout
        self.conv = nn.Sequential(
            _ConvBNReLU6(cin, hidden, kernel=1),
            _ConvBNReLU6(hidden, hidden, kernel=3, groups=hidden),
            nn.Conv2d(hidden, cout, 1, 1, 0, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class _BiGRU(nn.Module):
    """Holds the GRU as ``rnn`` (the original's key ``gru.rnn.*``)."""

    def __init__(self, cin: int, hidden: int) -> None:
        super().__init__()
        self.rnn = nn.GRU(cin, hidden, bidirectional=True, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


def linear_softmax_pool(p: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """``sum p^2 / sum p`` along ``dim``: loud frames weigh more than in a mean."""
    return (p * p).sum(dim) / p.sum(dim)


class MobileCRNN(nn.Module):
    """The tagger; :meth:`forward` returns (clip probabilities (B, C), per-step (B, T', C))."""

    def __init__(
        self,
        n_mels: int = 64,
        num_classes: int = 527,
        widths: tuple[int, ...] = V2_WIDTHS,
        pools: tuple[tuple[int, int] | None, ...] = V2_POOLS,
        gru_hidden: int = 128,
    ) -> None:
        super().__init__()
        if len(widths) != len(pools):
            raise ValueError("one pooling entry per layer")
        layers: list[nn.Module] = []
        cin = 1
        for i, (cout, pool) in enumerate(zip(widths, pools)):
            if i == 0:
                layers.append(
                    nn.Sequential(
                        nn.BatchNorm2d(1), nn.Conv2d(1, cout, 5, stride=2, padding=2), Swish()
                    )
                )
            else:
                layers.append(InvertedResidual(cin, cout))
            if pool is not None:
                layers.append(nn.MaxPool2d(pool))
            cin = cout
        self.features = nn.Sequential(*layers)
        freq = self._freq_out(n_mels)
        self.gru = _BiGRU(cin * freq, gru_hidden)
        self.outputlayer = nn.Linear(2 * gru_hidden, num_classes)
        self.num_classes = num_classes

    def _freq_out(self, n_mels: int) -> int:
        f = (n_mels + 2 * 2 - 5) // 2 + 1  # the stem
        for m in self.features:
            if isinstance(m, nn.MaxPool2d):
                f //= m.kernel_size[1] if isinstance(m.kernel_size, tuple) else m.kernel_size
        if f < 1:
            raise ValueError(f"{n_mels} mel bands are too few for this network")
        return f

    def forward(self, spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``spec`` (B, T, n_mels) -> clip tags (B, C) and per-step tags (B, T/4, C)."""
        x = self.features(spec.unsqueeze(1))  # (B, C, T', F')
        x = x.transpose(1, 2).flatten(2)  # (B, T', C*F'): channel-major per step, as the original
        h = self.gru(x)
        steps = torch.sigmoid(self.outputlayer(h)).clamp(1e-7, 1.0)
        clip = linear_softmax_pool(steps, dim=1).clamp(1e-7, 1.0)
        return clip, steps


def mobilecrnn_v2(num_classes: int = 527) -> MobileCRNN:
    """The configuration of the released ``mobilecrnn_v2.pth``."""
    return MobileCRNN(64, num_classes)
