"""AVSBench S4/MS3 mIoU and F-score against a literal restatement."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from avmodels.metrics import avsbench as avs
from tests import protocols_reference as ref


def _frames(n=12, side=24, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    maps, masks = {}, {}
    for i in range(n):
        x0, y0 = rng.integers(0, side // 2, 2)
        w, h = rng.integers(3, side // 2, 2)
        g = np.zeros((side, side), np.float32)
        if i % 4 != 2:  # some frames with an empty mask
            g[y0 : y0 + h, x0 : x0 + w] = 1
        blob = np.exp(-(((xx - x0 - w / 2) / w) ** 2 + ((yy - y0 - h / 2) / h) ** 2))
        maps[f"f{i}"] = (6 * blob - 3 + rng.normal(size=(side, side))).astype(np.float32)
        masks[f"f{i}"] = g
    return maps, masks


def _sig(m):
    return (1 / (1 + np.exp(-m.astype(np.float64)))).astype(np.float32)


def test_official_is_batch_averaged_and_batch_dependent():
    maps, masks = _frames()
    ids = list(masks)
    r = avs.evaluate_avsbench(maps, masks, "official")
    batches = [ids[i : i + 5] for i in range(0, len(ids), 5)]
    mi = np.mean(
        [
            np.mean([ref.avs_frame_iou((_sig(maps[k]) > 0.5) * 1.0, masks[k]) for k in b])
            for b in batches
        ]
    )
    fs = []
    for b in batches:
        cs = [ref.avs_fcurve(_sig(maps[k]), masks[k]) for k in b if masks[k].sum() > 0]
        fs.append(np.mean(cs, axis=0).max() if cs else 0.0)
    assert r.miou == pytest.approx(mi, abs=1e-9)
    assert r.fscore == pytest.approx(np.mean(fs), abs=1e-6)
    one = avs.AVSConvention(
        "x", "", sigmoid=True, iou_threshold=0.5, batch_fscore=True, batch_size=1
    )
    assert avs.evaluate_avsbench(maps, masks, one).fscore != pytest.approx(r.fscore, abs=1e-4)


@pytest.mark.parametrize("name", ["acl-ssl", "default"])
def test_fixed_fscore_and_median_threshold(name):
    maps, masks = _frames(seed=3)
    conv = avs.CONVENTIONS.get(name)
    probs = {k: _sig(v) for k, v in maps.items()}
    r = avs.evaluate_avsbench(probs, masks, conv)
    ious, curves = [], []
    for k, g in masks.items():
        p = probs[k]
        if conv.normalise:
            p = ((p.astype(np.float64) - p.min()) / (p.max() - p.min())).astype(np.float32)
        t = sorted(p.flatten())[p.size // 2]
        ious.append(ref.avs_frame_iou((p > t) * 1.0, g))  # strict >
        if g.sum() > 0:
            curves.append(ref.avs_fcurve(p, g))
    want_miou = (
        np.mean([np.mean(ious[i : i + 5]) for i in range(0, len(ious), 5)])
        if conv.batch_miou
        else np.mean(ious)
    )
    assert r.miou == pytest.approx(want_miou, abs=1e-9)
    assert r.fscore == pytest.approx(np.mean(curves, axis=0).max(), abs=1e-6)
    # the fixed F does not depend on the batch size
    other = avs.AVSConvention("y", "", normalise=conv.normalise, batch_size=2)
    assert avs.evaluate_avsbench(probs, masks, other).fscore == pytest.approx(r.fscore, abs=1e-12)


def test_mask_reading_modes(tmp_path):
    g = np.zeros((8, 8), np.uint8)
    g[2:5, 3:7] = 1
    pal = Image.fromarray(g, mode="P")
    pal.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)
    pal.save(tmp_path / "m.png")
    # MS3 official: palette index / 255, so foreground reads as 1/255
    off = avs.read_mask(tmp_path / "m.png", "ms3", "official")
    assert off.max() == pytest.approx(1 / 255)
    clean = avs.read_mask(tmp_path / "m.png", "ms3", "clean")
    assert clean.sum() == 12 and clean.max() == 1
    Image.fromarray(g * 255, mode="L").save(tmp_path / "s.png")
    assert avs.read_mask(tmp_path / "s.png", "s4", "official").sum() == 12
    with pytest.raises(avs.InputError):
        avs.read_mask(tmp_path / "nope.png", "s4")


def test_empty_mask_scores_the_background():
    g = np.zeros((4, 4), np.float32)
    p = np.zeros((4, 4), np.float32)
    p[0, 0] = 1
    assert avs.frame_iou(p, g, 0.5) == pytest.approx(15 / (16 + 1e-7))


def test_tie_rules_f_curve_ge_and_iou_strict():
    g = np.zeros((4, 4), np.float32)
    g[:2] = 1
    f = avs.f_curve(g.copy(), g)
    # the last threshold is 1 - 1e-10, which is 1.0 in float32: a pixel equal to it counts (>=)
    assert f[-1] == pytest.approx(1.0, abs=1e-6)
    # the first threshold is 0: every pixel is predicted, precision 1/2
    assert f[0] == pytest.approx(1.3 * 0.5 / (0.3 * 0.5 + 1), abs=1e-6)
    # the IoU binarises with a strict > : a map equal to the threshold marks nothing
    half = np.full((4, 4), 0.5, np.float32)
    assert avs.frame_iou(half, g, 0.5) == 0.0
