"""The shared layers against independent restatements."""

from __future__ import annotations

import torch

from avmodels.layers.gather import gather_batch
from avmodels.layers.normalise import minmax, minmax_guarded
from avmodels.layers.similarity import cross_maps, pair_maps


def test_similarity_maps_are_dot_products_at_every_position():
    g = torch.Generator().manual_seed(0)
    img, aud = torch.randn(3, 4, 2, 5, generator=g), torch.randn(3, 4, generator=g)
    cross = cross_maps(img, aud)
    assert cross.shape == (3, 3, 2, 5)
    for n in range(3):
        for m in range(3):
            for y in range(2):
                for x in range(5):
                    want = float((img[n, :, y, x] * aud[m]).sum())
                    assert abs(float(cross[n, m, y, x]) - want) < 1e-5
    assert torch.equal(pair_maps(img, aud), torch.stack([cross[i, i] for i in range(3)]))


def test_minmax_per_map():
    x = torch.tensor([[[1.0, 3.0], [2.0, 5.0]], [[-1.0, -1.0], [-1.0, 1.0]]])
    out = minmax(x, 0.0)
    assert torch.equal(out[0], torch.tensor([[0.0, 0.5], [0.25, 1.0]]))
    assert torch.equal(out[1], torch.tensor([[0.0, 0.0], [0.0, 1.0]]))
    assert float(minmax(x, 1.0)[0, 1, 1]) == float(
        torch.tensor(4.0) / torch.tensor(5.0)
    )  # eps joins the span
    flat = torch.tensor([[2.0, 4.0, 3.0]])
    assert torch.equal(minmax(flat, 0.0), torch.tensor([[0.0, 1.0, 0.5]]))


def test_minmax_guarded_keeps_a_constant_map():
    x = torch.stack([torch.full((2, 2), 0.3), torch.tensor([[0.0, 2.0], [1.0, 4.0]])])
    out = minmax_guarded(x)
    assert torch.equal(out[0], x[0])
    assert torch.equal(out[1], torch.tensor([[0.0, 0.5], [0.25, 1.0]]))


def test_gather_without_a_process_group_is_the_local_batch():
    x = torch.randn(4, 3)
    for enabled in (False, True):
        out, offset = gather_batch(x, enabled)
        assert out is x and offset == 0
