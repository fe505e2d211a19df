"""Extended Flickr / VGG-SS (AP, max-F1, LocAcc) against a literal restatement."""

from __future__ import annotations

import numpy as np
import pytest

from avmodels.metrics import extended as ex
from avprep.errors import InputError, UnknownNameError
from tests import protocols_reference as ref

SIDE = ex.SIDE


def _set(seed=0, n_snd=24, n_sil=16, side=SIDE):
    """Score maps (float32), GT maps and confidences shaped as the originals see them."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    keys, scores, gts, conf, snd = [], [], [], [], []
    for i in range(n_snd + n_sil):
        x0, y0 = rng.integers(0, side // 3, 2)
        w, h = rng.integers(side // 2, side - side // 4, 2)
        g = np.zeros((side, side))
        g[y0 : y0 + h, x0 : x0 + w] = 1
        blob = np.exp(-(((xx - x0 - w / 2) / w) ** 2 + ((yy - y0 - h / 2) / h) ** 2) * 3)
        s = rng.uniform(0, 1) * blob + 0.3 * rng.random((side, side))
        if i % 7 == 0:
            s = np.round(s * 4) / 4  # plateaus: ties at the relative threshold
        s = s.astype(np.float32)
        sounding = i < n_snd
        keys.append(f"c{i}")
        scores.append(s)
        gts.append(g if sounding else np.zeros_like(g))
        snd.append(sounding)
        # a few repeated confidences: ties in the sweep
        conf.append(np.float32(round(float(rng.uniform(0.2, 0.9)), 2 if i % 5 else 1)))
    return keys, scores, gts, np.array(conf, np.float32), snd


@pytest.mark.parametrize("name", ["slavc", "slavc-script", "default"])
def test_per_sample_iou_matches_the_definition(name):
    keys, scores, gts, _, _ = _set(side=48)
    conv = ex.CONVENTIONS.get(name)
    ours = ex.sample_ious(scores, gts, conv)
    want = [
        ref.ext_iou(s, g, relative=conv.relative, nan00=name != "default")
        for s, g in zip(scores, gts)
    ]
    assert np.allclose(ours, want, equal_nan=True, rtol=0, atol=1e-12)


def test_acl_ssl_reuses_the_first_maps_threshold_for_the_batch():
    _, scores, gts, _, _ = _set(side=48)
    conv = ex.ExtendedConvention("t", "", batch_first_threshold=True, batch_size=4, iou_eps=1e-12)
    ours = ex.sample_ious(scores, gts, conv)
    want = []
    for b in range(0, len(scores), 4):
        first = scores[b]
        lo, hi = first.min(), first.max()
        p = (first - lo) / (hi - lo)
        thr = sorted(p.flatten())[p.size // 2]
        for s, g in zip(scores[b : b + 4], gts[b : b + 4]):
            want.append(ref.ext_iou(s, g, relative=True, batch_thr=thr, eps=1e-12))
    assert np.allclose(ours, want, rtol=0, atol=1e-12)
    # and it is not the per-map rule: the batch size changes the result
    per_map = ex.sample_ious(scores, gts, "slavc")
    assert not np.allclose(np.nan_to_num(ours), np.nan_to_num(per_map))


def test_the_relative_threshold_ties_are_foreground_in_float32():
    s = np.zeros((4, 4), np.float32)
    s[:, 2:] = 1  # half the pixels at the maximum: the median element is 1
    g = np.zeros((4, 4))
    g[:, 2:] = 1
    # >= keeps the 8 tied pixels: IoU 1 (a strict rule would keep none)
    assert ex.sample_ious([s], [g], ex.ExtendedConvention("t", "", pred_size=0.5))[0] == 1.0


@pytest.mark.parametrize("name", ["slavc", "default"])
def test_ap_f1_locacc_match_the_definition(name):
    keys, scores, gts, _, snd = _set(n_snd=260, n_sil=190, side=16)
    conv = ex.CONVENTIONS.get(name)
    ious = ex.sample_ious(scores, gts, conv)
    # distinct confidences, higher for good localisations (so the subsampling stride and
    # the first recall step matter), a few tied pairs
    good = np.nan_to_num(ious) >= 0.5
    conf = (np.random.default_rng(5).uniform(0.0, 1.0, len(keys)) + 0.8 * good).astype(np.float32)
    conf[::9] = conf[1::9][: len(conf[::9])]
    r = ex.score_extended(keys, snd, ious, conf, conv)
    c = [float(v) for v in conf]
    if name == "slavc":
        assert r.ap == pytest.approx(ref.ext_ap_original(snd, ious, c), abs=1e-12)
        assert r.max_f1 == pytest.approx(ref.ext_max_f1(snd, ious, c, original=True), abs=1e-12)
        assert r.loc_acc == pytest.approx(ref.ext_locacc(snd, ious, strict=True), abs=1e-12)
    else:
        assert r.ap == pytest.approx(ref.ext_ap_all_points(snd, ious, c), abs=1e-12)
        assert r.max_f1 == pytest.approx(ref.ext_max_f1(snd, ious, c, original=False), abs=1e-12)
        assert r.loc_acc == pytest.approx(ref.ext_locacc(snd, ious, strict=False), abs=1e-12)
    assert (r.n, r.n_sounding, r.n_silent) == (450, 260, 190)


def test_locacc_strictness_and_f1_rounding_are_visible():
    snd = [True] * 4
    ious = [0.5, 0.5, 0.9, 0.1]
    assert ex.loc_acc(snd, ious, "slavc") == 0.25  # strict > 0.5
    assert ex.loc_acc(snd, ious, "default") == 0.75
    # best F1 is 2/3: the originals keep one decimal of a percent (66.7 %)
    args = ([True, False, True], [0.9, 0.0, 0.1], np.array([0.9, 0.8, 0.7], np.float32))
    assert max(ex.f1_scores(*args, "slavc")) == 0.667
    assert max(ex.f1_scores(*args, "default")) == pytest.approx(2 / 3, abs=1e-15)


def test_silent_list_reader(tmp_path):
    p = tmp_path / "flickr_test_plus_silent.csv"
    p.write_bytes(b"video,audio,label\r\n10000130166,10437048305,non-sounding\r\n"
                  b"9PmzQI8ZYpg_000147,9PmzQI8ZYpg_000147,non-sounding\r\n")  # fmt: skip
    pairs = ex.read_silent_list(p)
    assert [x.key for x in pairs] == [
        "10000130166@10437048305",
        "9PmzQI8ZYpg_000147@9PmzQI8ZYpg_000147",
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,sounding\n")
    with pytest.raises(InputError, match="not 'non-sounding'"):
        ex.read_silent_list(bad)


def test_evaluate_extended_keys_and_errors():
    keys, scores, gts, conf, snd = _set(n_snd=6, n_sil=4, side=16)
    silent = [ex.SilentPair(f"v{i}", f"a{i}") for i in range(4)]
    smap = {k: s for k, s, f in zip(keys[:6], scores[:6], snd)}
    smap.update({p.key: s for p, s in zip(silent, scores[6:])})
    cmap = {k: c for k, c in zip([*keys[:6], *(p.key for p in silent)], conf)}
    g = dict(zip(keys[:6], gts[:6]))
    g = {k: np.pad(v, ((0, SIDE - 16), (0, SIDE - 16))) for k, v in g.items()}
    smap = {k: np.pad(v, ((0, SIDE - 16), (0, SIDE - 16))) for k, v in smap.items()}
    r = ex.evaluate_extended(smap, cmap, g, silent, "slavc")
    assert (r.n_sounding, r.n_silent) == (6, 4)
    del cmap[silent[0].key]
    with pytest.raises(InputError, match="no map or confidence"):
        ex.evaluate_extended(smap, cmap, g, silent)
    with pytest.raises(UnknownNameError):
        ex.get_convention("nope")


def test_slavc_score_maps_and_confidence():
    import torch
    import torch.nn.functional as F  # noqa: N812

    raw = np.random.default_rng(2).normal(size=(7, 7)).astype(np.float32) * 20
    s = ex.slavc_scores(raw, tau=0.03)
    u = F.interpolate(torch.from_numpy(raw)[None, None], size=(224, 224), mode="bicubic",
                      align_corners=True)[0, 0].numpy()  # fmt: skip
    assert s.dtype == np.float32 and np.array_equal(s, (u + 1 / 0.03) / (2 / 0.03))
    assert ex.top_quarter_confidence(s) == pytest.approx(
        np.sort(s.ravel())[-(224 * 224 // 4) :].mean()
    )
