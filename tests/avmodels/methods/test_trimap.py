"""The LVS tri-map loss: same values as the originals' formula, none of its numerical traps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from avmodels.methods.trimap import TrimapConfig, cosine_maps, trimap_logits, trimap_loss
from avprep.errors import ConfigError


def _features(b=4, c=16, h=5, w=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = F.normalize(torch.rand(b, c, h, w, generator=g), dim=1)  # ReLU-like: cosines >= 0
    aud = F.normalize(torch.rand(b, c, generator=g), dim=1)
    return img, aud


def _reference_logits(img: np.ndarray, aud: np.ndarray, e1=0.65, e2=0.4, tau=0.03, t=0.07):
    """The originals' arithmetic (LVS model.py / SSL-TIE / HTF lvs_loss), in float64 numpy."""
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    b = img.shape[0]
    a = np.einsum("nchw,nc->nhw", img, aud)
    a0 = np.einsum("nchw,kc->nkhw", img, aud)
    pos, neg, pos_all = sig((a - e1) / tau), 1 - sig((a - e2) / tau), sig((a0 - e1) / tau)
    sim1 = (pos * a).sum((1, 2)) / pos.sum((1, 2))
    sim = (pos_all * a0).sum((2, 3)) / pos_all.sum((2, 3)) * (1 - 100 * np.eye(b))
    sim2 = (neg * a).sum((1, 2)) / neg.sum((1, 2))
    return np.concatenate([sim1[:, None], sim, sim2[:, None]], axis=1) / t


@pytest.mark.parametrize("normaliser", ["logspace", "ratio"])
def test_logits_match_the_original_formula(normaliser):
    g = torch.Generator().manual_seed(0)
    img = torch.rand(4, 16, 5, 6, generator=g) - 0.5
    aud = F.normalize(torch.rand(4, 16, generator=g), dim=1)
    # cosines in about [-0.4, 0.8]: every mask is non-trivial (above 0.9 the originals'
    # float32 ``1 - sigmoid`` loses digits: see the next tests)
    mix = torch.rand(4, 1, 5, 6, generator=g)
    img = F.normalize(img + mix * aud[:, :, None, None], dim=1)
    out = trimap_loss(img, aud, TrimapConfig(normaliser=normaliser))
    ref = _reference_logits(img.double().numpy(), aud.double().numpy())
    np.testing.assert_allclose(out.logits.numpy(), ref, rtol=1e-4, atol=1e-3)
    target = torch.zeros(4, dtype=torch.long)
    expected = F.cross_entropy(torch.from_numpy(ref), target).item()
    assert out.loss.item() == pytest.approx(expected, rel=1e-4)
    assert out.cosine.shape == (4, 5, 6)


def test_shapes_and_options():
    img, aud = _features(b=3)
    assert trimap_loss(img, aud, TrimapConfig()).logits.shape == (3, 5)
    assert trimap_loss(img, aud, TrimapConfig(hard_negative=False)).logits.shape == (3, 4)
    excl = trimap_loss(img, aud, TrimapConfig(diagonal="exclude")).logits
    assert torch.isinf(excl[:, 1:4].diagonal()).all() and torch.isfinite(excl[:, 0]).all()
    # without the tri-map band, Neg is 1 - Pos: the hard negative changes
    a = trimap_loss(img, aud, TrimapConfig(trimap=False)).logits[:, -1]
    b = trimap_loss(img, aud, TrimapConfig()).logits[:, -1]
    assert not torch.allclose(a, b)


def test_neg_does_not_vanish_where_the_original_divides_zero_by_zero():
    # every cosine > eps_neg + 17 tau: 1 - sigmoid(z) rounds to exactly 0 in float32
    a_true = torch.full((2, 3, 3), 0.97)
    a_true[:, 1, 1] = 0.99
    a_all = a_true[:, None].repeat(1, 2, 1, 1)
    ours = trimap_logits(a_true, a_all, TrimapConfig())
    theirs = trimap_logits(a_true, a_all, TrimapConfig(normaliser="ratio"))
    assert torch.isfinite(ours).all()
    assert torch.isnan(theirs[:, -1]).all()  # the original's 0/0
    # the hard negative is a weighted mean of values in [0.97, 0.99]
    assert 0.97 <= ours[0, -1].item() * 0.07 <= 0.99


def test_tiny_weights_keep_their_mean_unlike_an_epsilon_guard():
    # cosines near 0: Pos weights ~ sigmoid(-21) ~ 7e-10 (start of training)
    g = torch.Generator().manual_seed(1)
    a_true = 0.02 * torch.rand(4, 4, 4, generator=g)
    a_all = 0.02 * torch.rand(4, 4, 4, 4, generator=g)
    cfg = TrimapConfig()
    ours = trimap_logits(a_true, a_all, cfg)[:, 0] * cfg.temperature
    w = torch.sigmoid((a_true.double() - 0.65) / 0.03)
    exact = (w * a_true).sum((1, 2)) / w.sum((1, 2))
    torch.testing.assert_close(ours.double(), exact, rtol=1e-5, atol=1e-7)
    guarded = trimap_logits(a_true, a_all, TrimapConfig(normaliser="ratio", eps=1e-6))
    # the +1e-6 swamps the weights: the positive similarity collapses towards 0
    assert (guarded[:, 0] * cfg.temperature).abs().max() < 0.05 * exact.min()


def test_float16_inputs_are_scored_in_float32():
    img, aud = _features()
    full = trimap_loss(img, aud, TrimapConfig())
    half = trimap_loss(img.half(), aud.half(), TrimapConfig())
    assert half.loss.dtype == torch.float32 and math.isfinite(half.loss.item())
    assert half.loss.item() == pytest.approx(full.loss.item(), abs=0.05)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        amp = trimap_loss(img, aud, TrimapConfig())
    assert amp.loss.dtype == torch.float32
    assert amp.loss.item() == pytest.approx(full.loss.item(), rel=1e-6)


def test_gradients_flow_and_are_finite():
    img, aud = _features()
    img.requires_grad_(True)
    aud.requires_grad_(True)
    trimap_loss(img, aud, TrimapConfig()).loss.backward()
    assert torch.isfinite(img.grad).all() and img.grad.abs().sum() > 0
    assert torch.isfinite(aud.grad).all() and aud.grad.abs().sum() > 0


def test_cosine_maps():
    img, aud = _features(b=2, c=3, h=2, w=2)
    a, a0 = cosine_maps(img, aud)
    assert torch.allclose(a0[:, [0, 1], ...].diagonal(dim1=0, dim2=1).permute(2, 0, 1), a)
    assert a.max() <= 1 + 1e-6


def test_bad_config_is_a_config_error():
    with pytest.raises(ConfigError, match="normaliser"):
        TrimapConfig(normaliser="nope")
    with pytest.raises(ConfigError, match="diagonal"):
        TrimapConfig(diagonal="nope")
    with pytest.raises(ConfigError, match="unknown loss key"):
        TrimapConfig.from_dict({"epsilon": 0.5})
    with pytest.raises(ConfigError):
        TrimapConfig(tau=0)
