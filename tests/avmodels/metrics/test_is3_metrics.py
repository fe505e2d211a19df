"""IS3 cIoU/AUC, adaptive and interactive (IIoU) scores against a literal restatement."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from avmodels.metrics import is3
from avprep.errors import InputError
from tests import metrics_reference as mref
from tests import protocols_reference as ref


def _write_is3(tmp_path, n_images=6, seed=0):
    """synthetic3240_bbox.json / _seg.json shaped files, masks as JPEG, and 7x7 maps."""
    rng = np.random.default_rng(seed)
    rows, seg, maps = [], [], {}
    (tmp_path / "gt_masks").mkdir()
    for j in range(n_images):
        a, b = ("cat", "guitar") if j % 2 else ("baby", "accordion")
        for who in (a, b):
            key = f"{a}_{b}_{100 + j}_{who}"
            x0, y0 = (int(v) for v in rng.integers(0, 80, 2))
            x1, y1 = x0 + int(rng.integers(60, 140)), y0 + int(rng.integers(60, 140))
            box = [float(x0), float(y0), float(min(x1, 224)), float(min(y1, 224))]
            img = f"/data/is3/visual_frames/{key}.jpg"
            rows.append({"image": img, "audio": f"/data/is3/audio_wav/{key}.wav", "gt_box": box})
            m = np.zeros((224, 224), np.uint8)
            m[y0:y1, x0:x1] = 255
            Image.fromarray(m).save(tmp_path / "gt_masks" / f"{key}.jpg", quality=95)
            seg.append({"image": img, "audio": "", "gt_box": f"/x/gt_masks/{key}.jpg", "offset": 1})
            mp = rng.normal(size=(7, 7)).astype(np.float32)
            mp[min(6, (y0 + y1) // 64), min(6, (x0 + x1) // 64)] += 4
            if j == 0:
                mp = np.round(mp)  # plateaus: ties at the thresholds
            maps[key] = mp
    (tmp_path / "synthetic3240_bbox.json").write_text(json.dumps(rows))
    (tmp_path / "synthetic3240_seg.json").write_text(json.dumps(seg))
    return maps


def _restated(maps, samples, paper):
    ious, adap = [], []
    for s in samples:
        pred = mref.upsampled(maps[s.key], "ezvsl" if paper == "ezvsl" else "lvs")
        pred = mref.minmax_or_same(pred) if paper == "ezvsl" else 1 - mref.minmax_or_same(-pred)
        g = np.zeros((224, 224))
        x0, y0, x1, y1 = s.box
        g[y0:y1, x0:x1] = 1
        srt = np.sort(pred.flatten())
        ious.append(ref.is3_iou_strict(pred, g, srt[int(224 * 224 * 0.5)]))
        k = int((g != 0).sum()) or 224 * 224 // 2
        adap.append(ref.is3_iou_strict(pred, g, srt[224 * 224 - k]))
    return np.array(ious), np.array(adap)


@pytest.mark.parametrize("conv,paper", [("sslalignment", "ezvsl"), ("sslalignment-lvs", "lvs")])
def test_matches_the_definition(tmp_path, conv, paper):
    maps = _write_is3(tmp_path)
    samples = is3.read_is3_json(tmp_path / "synthetic3240_bbox.json")
    assert samples[0].pair == "baby_accordion_100" and len(samples) == 12
    r = is3.evaluate_is3(maps, samples, conv)
    ious, adap = _restated(maps, samples, paper)
    assert np.array_equal(r.per_sample["iou"].to_numpy(), ious)
    assert np.array_equal(r.per_sample["iou_adap"].to_numpy(), adap)
    assert r.auc == pytest.approx(ref.success_auc(list(ious)), abs=1e-12)
    assert r.auc_adap == pytest.approx(ref.success_auc(list(adap)), abs=1e-12)
    pairs = {}
    for s, v in zip(samples, adap):
        pairs.setdefault(s.pair, []).append(v)
    want_iiou = np.mean([min(v) >= 0.5 for v in pairs.values()])
    assert r.iiou_adap == pytest.approx(want_iiou)
    assert r.n_pairs == 6


def test_adaptive_threshold_keeps_one_pixel_fewer_than_the_gt():
    # a 224x224 ramp: upsampling is the identity, the GT box holds the 24 rows of largest values
    m = np.arange(224 * 224, dtype=np.float32).reshape(224, 224)
    g = is3.box_gt((0, 200, 224, 224))
    k = int(g.sum())
    (iou_o,), (adap_o,) = is3.sample_scores([m], [g], "sslalignment")
    (iou_d,), (adap_d,) = is3.sample_scores([m], [g], "default")
    assert adap_o == (k - 1) / k  # strict > at element n - |G|: one pixel short
    assert adap_d == 1.0  # ours keeps |G| pixels
    assert iou_o == iou_d == k / (224 * 224 // 2 - 1)  # 25087 pixels above the median


def test_masks_and_errors(tmp_path):
    maps = _write_is3(tmp_path, n_images=2)
    seg = is3.read_is3_json(tmp_path / "synthetic3240_seg.json")
    assert seg[0].mask_path and seg[0].box is None
    r_mask = is3.evaluate_is3(maps, seg, "default", mask_root=tmp_path / "gt_masks")
    r_box = is3.evaluate_is3(maps, is3.read_is3_json(tmp_path / "synthetic3240_bbox.json"))
    # the JPEG masks are the boxes: the same scores
    assert np.allclose(r_mask.per_sample["iou"], r_box.per_sample["iou"])
    with pytest.raises(InputError, match="mask_root"):
        is3.evaluate_is3(maps, seg)
    with pytest.raises(InputError, match="no map"):
        is3.evaluate_is3({}, seg, mask_root=tmp_path)
    assert cv2 is not None
