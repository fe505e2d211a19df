"""The full Multi-Source model's pair head (``model/detector.py`` ``DiscrimHead``) and
the trunk that feeds it, for main.py's AVE match rates on the original's checkpoints.

The paper's full model scores an (audio second, frame) pair with a head of its own:

- audio: the MobileCRNN feature stack (``audio.features``, 512 channels, time / 4,
  2 mel bins) of a clip's ``frames`` seconds of log-mel, then ``temp_conv``
  (Conv(3x1, dilation 2) - BN - MaxPool(2x1) - ReLU - Conv(1x2, stride (1, 2)) - BN -
  ReLU - Conv(3x1) - BN - MaxPool(2x1) - ReLU) and a max-pool to ``frames`` steps;
- vision: a ResNet-18 to layer3 (256 channels, stride 16) on each frame, then
  ``spa_conv`` = the network's extra ``layer5`` (two basic blocks 256 -> 512,
  stride 1; the same module as ``visual.layer5``), max-pooled to one vector;
- ``discrim``: Linear(1024, 128) - ReLU - Linear(128, 2) on ``[audio_t, frame]``.

``transform_a`` / ``transform_v`` exist in the original (a contrastive variant) and
are built so its state dicts load strictly; they do not enter the scores. Module
names follow the original, so :func:`full_head_state` picks a checkpoint's tensors
by name. This model is not trained here (the full model's training needs its
Faster R-CNN proposals and GradCAM losses): it serves checkpoints of the original
code. Our code, written from the original's structure.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, resnet18

from avmodels.backbones.mobile_crnn import mobilecrnn_v2
from avprep.errors import InputError


def basic_layer(cin: int, cout: int, blocks: int = 2) -> nn.Sequential:
    """A ResNet basic-block layer at stride 1 (``_make_layer(BasicBlock, cout, blocks)``)."""
    down = None
    if cin != cout:
        down = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
    layers = [BasicBlock(cin, cout, 1, down)]
    layers += [BasicBlock(cout, cout) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)


class DiscrimHead(nn.Module):
    """``DiscrimHead(mix, frames, layer5, 512)`` of the original, scoring pairs."""

    def __init__(self, frames: int, spa_conv: nn.Module, channel: int = 512) -> None:
        super().__init__()
        self.frames = int(frames)
        c = channel
        self.temp_conv = nn.Sequential(
            nn.Conv2d(c, c, (3, 1), dilation=(2, 1), padding=(2, 0), bias=False),
            _bn(c),
            nn.MaxPool2d((2, 1), (2, 1)),
            nn.ReLU(True),
            nn.Conv2d(c, c, (1, 2), stride=(1, 2), bias=False),
            _bn(c),
            nn.ReLU(True),
            nn.Conv2d(c, c, (3, 1), padding=(1, 0), bias=False),
            _bn(c),
            nn.MaxPool2d((2, 1), (2, 1)),
            nn.ReLU(True),
        )
        self.spa_conv = spa_conv
        self.spa_pool = nn.AdaptiveMaxPool2d((1, 1))
        self.temp_pool = nn.AdaptiveMaxPool2d((self.frames, 1))
        self.channel = c
        self.transform_a = _transform(c)
        self.transform_v = _transform(c)
        self.discrim = nn.Sequential(nn.Linear(2 * c, 128), nn.ReLU(True), nn.Linear(128, 2))

    def embed(
        self, feat_a: torch.Tensor, feat_v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(clips, C, T', F') audio and (clips*frames, 256, h, w) visual features ->
        (clips, frames, C) embeddings of each second and of each frame."""
        a = self.temp_pool(self.temp_conv(feat_a))  # (clips, C, frames, 1)
        a = a.reshape(-1, self.channel, self.frames).permute(0, 2, 1)
        v = self.spa_pool(self.spa_conv(feat_v)).reshape(-1, self.frames, self.channel)
        return a, v

    def scores(
        self, a: torch.Tensor, v: torch.Tensor, other: torch.Tensor, second: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(common, differ): the head on (audio t, frame t) of each clip and on (audio t,
        frame ``second[c, t]`` of clip ``other[c, t]``), each (clips, frames, 2)."""
        common = self.discrim(torch.cat([a, v], -1))
        differ = self.discrim(torch.cat([a, v[other, second]], -1))
        return common, differ


def _transform(c: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(c, 128), nn.ReLU(True), nn.Linear(128, 128), nn.BatchNorm1d(128))


class _VisualTrunk(nn.Module):
    """ResNet-18 to layer3 plus the extra ``layer5`` (the original's names)."""

    def __init__(self) -> None:
        super().__init__()
        r = resnet18(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = r.conv1, r.bn1, r.relu, r.maxpool
        self.layer1, self.layer2, self.layer3 = r.layer1, r.layer2, r.layer3
        self.layer5 = basic_layer(256, 512)

    def bottom(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))


class _AudioTrunk(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = mobilecrnn_v2(7).features

    def embed(self, spec: torch.Tensor) -> torch.Tensor:
        return self.features(spec.unsqueeze(1))


class FullPairModel(nn.Module):
    """The tensors of the original ``Framework`` that its pair scores depend on."""

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.visual = _VisualTrunk()
        self.audio = _AudioTrunk()
        self.discrim = DiscrimHead(frames, self.visual.layer5)

    def forward(
        self, spec: torch.Tensor, frames: torch.Tensor, other: torch.Tensor, second: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``spec`` (clips, T, 64): each clip's seconds in order; ``frames`` (clips *
        frames, 3, H, W) ImageNet-normalised -> (common, differ) head outputs."""
        a, v = self.discrim.embed(self.audio.embed(spec), self.visual.bottom(frames))
        return self.discrim.scores(a, v, other, second)


def full_head_state(state: Mapping[str, torch.Tensor], frames: int) -> FullPairModel:
    """A :class:`FullPairModel` holding the matching tensors of an original ``Framework``
    state dict (``checkpoint['state_dict']``; a ``module.`` prefix is dropped)."""
    model = FullPairModel(frames)
    own = model.state_dict()
    src = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}
    missing = sorted(k for k in own if k not in src)
    shapes = sorted(k for k in own if k in src and tuple(src[k].shape) != tuple(own[k].shape))
    if missing or shapes:
        first = (missing or shapes)[0]
        raise InputError(
            f"not a Multi-Source full-model state dict: {len(missing)} tensors missing, "
            f"{len(shapes)} of another shape (first: {first!r})"
        )
    model.load_state_dict({k: src[k] for k in own}, strict=True)
    return model.eval()
