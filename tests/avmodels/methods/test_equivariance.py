"""SSL-TIE's equivariance transforms: OpenCV-equal warps, boxes mapped like pixels, the loss."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from avmodels.methods.equivariance import (
    Equivariance,
    equivariance_loss,
    sample_equivariance,
)
from avprep.errors import ConfigError


def _tf(angles, scale=1.0, hflip=False, canvas=(64, 64)):
    return Equivariance(torch.tensor(angles, dtype=torch.float32), scale, hflip, canvas)


@pytest.mark.parametrize("angle", [-30.0, 17.0])
def test_rotation_matches_opencv_warp_affine(angle):
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.random((48, 64), dtype=np.float32), (7, 7), 2)
    tf = _tf([angle], canvas=(48, 64))
    ours = tf.apply(torch.from_numpy(img)[None, None])[0, 0].numpy()
    m = tf.matrices()[0].numpy()
    ref = cv2.getRotationMatrix2D((32.0, 24.0), angle, 1.0)  # OpenCV's convention, same centre
    np.testing.assert_allclose(m, ref, atol=1e-9)
    theirs = cv2.warpAffine(img, ref, (64, 48), flags=cv2.INTER_LINEAR)
    inner = (slice(8, -8), slice(8, -8))  # OpenCV rounds border pixels differently
    np.testing.assert_allclose(ours[inner], theirs[inner], atol=2e-3)


def test_scale_half_and_flip_shapes():
    x = torch.rand(2, 3, 64, 64)
    tf = _tf([0.0, 0.0], scale=0.5, hflip=True)
    y = tf.apply(x)
    assert y.shape == (2, 3, 32, 32)
    heat = torch.rand(2, 1, 8, 8)  # a map: resized to the canvas, warped, then 4x4
    assert tf.apply(heat).shape == (2, 1, 4, 4)
    # identity rotation at scale 1 with a flip is exactly a mirror
    assert torch.allclose(_tf([0.0, 0.0], hflip=True).apply(x), x.flip(-1), atol=1e-5)
    assert torch.allclose(_tf([0.0, 0.0]).apply(x), x, atol=1e-5)


@pytest.mark.parametrize(
    ("angle", "scale", "hflip"),
    [(0.0, 1.0, True), (25.0, 1.0, False), (-30.0, 0.5, False), (12.0, 0.5, True)],
)
def test_boxes_map_as_the_image_does(angle, scale, hflip):
    canvas = (96, 128)
    mask = torch.zeros(1, 1, *canvas)
    box = (40, 30, 90, 62)  # x0, y0, x1, y1: pixels 40..89 and 30..61
    mask[..., box[1] : box[3], box[0] : box[2]] = 1.0
    tf = _tf([angle], scale, hflip, canvas)
    warped = tf.apply(mask)[0, 0] > 0.5
    ys, xs = torch.nonzero(warped, as_tuple=True)
    seen = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
    mapped = tf.apply_boxes(torch.tensor([[box]], dtype=torch.float32))[0, 0]
    assert torch.allclose(mapped, seen, atol=1.5), (mapped, seen)


def test_boxes_of_a_map_use_its_own_grid():
    tf = _tf([0.0], 0.5, True, canvas=(64, 64))
    # the left quarter of a 16x16 map; the 8x8 result holds the frame shrunk about
    # the centre (2..6), mirrored: x in [5, 6]. The 1/32 px shift is kornia's centre
    # (W/2 in pixel-centre coordinates, i.e. half a canvas pixel right of the middle).
    box = torch.tensor([[[0.0, 0.0, 4.0, 16.0]]])
    out = tf.apply_boxes(box, size=(16, 16))[0, 0]
    expected = torch.tensor([5.0, 2.0, 6.0, 6.0]) + torch.tensor([-1, 1, -1, 1]) / 32
    assert torch.allclose(out, expected, atol=1e-4)


class _Pointwise(nn.Module):
    """A 1x1 linear map: commutes with any resampling, so exactly equivariant."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1, bias=False)

    def forward(self, x):
        return self.conv(x)


class _PositionAware(nn.Module):
    """A 3x3 conv plus a fixed horizontal ramp: not equivariant to flips or rotations."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1, bias=False)

    def forward(self, x):
        ramp = torch.linspace(0, 1, x.shape[-1]).expand(x.shape[-2], -1)
        return self.conv(x) + ramp


def test_equivariance_loss_is_zero_for_an_equivariant_model_and_positive_otherwise():
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32)
    gen = torch.Generator().manual_seed(3)
    for _ in range(4):
        tf = sample_equivariance(4, (32, 32), generator=gen)
        f = _Pointwise()
        exact = equivariance_loss(f(tf.apply(x)), tf.apply(f(x)))
        assert exact.item() < 1e-10
        g = _PositionAware()
        assert equivariance_loss(g(tf.apply(x)), tf.apply(g(x))).item() > 1e-3
        assert equivariance_loss(g(tf.apply(x)), tf.apply(g(x)), "l1").item() > 1e-2


def test_loss_resizes_the_second_map_and_rejects_unknown_kinds():
    a = torch.ones(2, 1, 4, 4)
    assert equivariance_loss(a, torch.ones(2, 1, 8, 8)).item() == 0.0
    assert equivariance_loss(a, torch.zeros(2, 1, 8, 8), "l1").item() == 1.0
    with pytest.raises(ConfigError):
        equivariance_loss(a, a, "huber")


def test_sampling_follows_ssl_tie():
    gen = torch.Generator().manual_seed(0)
    scales, flips = set(), set()
    for _ in range(40):
        tf = sample_equivariance(16, (224, 224), max_angle=30, generator=gen)
        assert tf.angles.abs().max() <= 30 and torch.equal(tf.angles, tf.angles.round())
        scales.add(tf.scale)
        flips.add(tf.hflip)
    assert scales == {1.0, 0.5} and flips == {True, False}
    again = sample_equivariance(16, (224, 224), generator=torch.Generator().manual_seed(0))
    first = sample_equivariance(16, (224, 224), generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.angles, first.angles) and again.scale == first.scale
    assert not sample_equivariance(4, (8, 8), hflip=False, generator=gen).hflip
    with pytest.raises(ConfigError):
        sample_equivariance(4, (8, 8), scales=[])
    with pytest.raises(ConfigError):
        sample_equivariance(4, (8, 8), scales=[2.0])


def test_gradients_pass_through_the_transform():
    heat = torch.rand(2, 1, 8, 8, requires_grad=True)
    _tf([10.0, -5.0], 0.5, True).apply(heat).sum().backward()
    assert heat.grad is not None and heat.grad.abs().sum() > 0
