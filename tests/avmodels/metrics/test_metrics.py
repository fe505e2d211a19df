"""Metrics: hand-computed cases per preset, exactness against a literal per-sample
re-statement of each paper's procedure (tests/metrics_reference.py) on random and
adversarial maps, invariants (hypothesis), and the evaluate() contract."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import auc as sklearn_auc

from avmodels.metrics import (
    DEFAULT_PRESET,
    PRESETS,
    THRESHOLDS,
    auc_from_ious,
    ciou_from_ious,
    evaluate,
    iou_from_masks,
    success_curve,
)
from avprep.annotations import Annotation, Box, gt_map, load_annotations
from avprep.errors import InputError, UnknownNameError
from tests import metrics_reference as ref
from tests.annotation_fixtures import write_flickr

PAPERS = ref.PAPERS
LEFT_HALF = Annotation("left_000001", "vggss", [Box(0.0, 0.0, 0.5, 1.0)])
EMPTY = Annotation("empty_000001", "vggss", [], raw_boxes=((0.2, 1.0, 0.7, 1.0),))


def one(map2d, ann, preset):
    return evaluate({ann.clip_id: map2d}, {ann.clip_id: ann}, preset, workers=1)


# -- hand-computed cases -----------------------------------------------------------


def test_presets_registry():
    assert PRESETS.names()[:6] == ["default", "lvs", "ezvsl", "ssltie", "sspl", "htf"]
    assert {"mssl", "mssl-main", "mssl-calmetric"} <= set(PRESETS.names())
    assert DEFAULT_PRESET == "default"
    with pytest.raises(UnknownNameError, match="lvs, ezvsl"):
        PRESETS.get("cvpr")


@pytest.mark.parametrize(
    "preset, expected",
    [
        # 224 columns falling from 223 to 0; GT = left 112 columns. The median element
        # is column 111's value: '>' keeps 111 columns, '>=' and the fixed 0.5 keep 112.
        ("lvs", 111 / 112),
        ("ssltie", 111 / 112),
        ("htf", 111 / 112),
        ("default", 111 / 112),
        ("ezvsl", 1.0),
        ("sspl", 1.0),
    ],
)
def test_gradient_map_by_hand(preset, expected):
    grad = np.tile(np.arange(223, -1, -1, dtype=np.float32), (224, 1))
    r = one(grad, LEFT_HALF, preset)
    assert r.per_sample["iou"][0] == pytest.approx(expected, abs=0)
    assert r.per_sample["fg_pixels"][0] == round(expected * 112) * 224
    assert r.pointing == 1.0  # the peak (column 0) is inside the box


CONSTANT_CASES = [
    # preset, constant, IoU vs left-half GT, IoU vs empty GT
    ("lvs", 0.5, 0.5, 0.0),
    ("lvs", 0.0, 0.5, 0.0),
    ("lvs", -0.5, 0.0, math.nan),
    ("ssltie", -0.75, 0.0, math.nan),
    ("ezvsl", -0.5, 0.5, 0.0),
    ("ezvsl", 2.0, 0.5, 0.0),
    ("sspl", 0.5, 0.0, math.nan),
    ("sspl", -1.0, 0.0, math.nan),
    ("htf", 2.0, 0.5, 0.0),
    ("htf", 1.0, 0.5, 0.0),
    ("htf", 0.5, 0.0, math.nan),
    ("default", 0.5, 0.0, 0.0),
    ("default", -0.5, 0.0, 0.0),
]


@pytest.mark.parametrize("preset, c, vs_half, vs_empty", CONSTANT_CASES)
def test_constant_maps(preset, c, vs_half, vs_empty):
    flat = np.full((14, 14), c, dtype=np.float32)
    r = one(flat, LEFT_HALF, preset)
    assert r.per_sample["iou"][0] == vs_half
    assert bool(r.per_sample["constant_map"][0]) and r.pointing == 0.0
    e = one(flat, EMPTY, preset).per_sample["iou"][0]
    assert (math.isnan(e) and math.isnan(vs_empty)) or e == vs_empty
    # the literal re-statement agrees, NaN included
    if preset != "default":
        g = ref.vggss_truth([[0.0, 0.0, 0.5, 1.0]], preset)
        assert ref.iou(ref.prediction(flat, preset), g) == vs_half


def test_default_never_nan_and_nan_counts_as_a_miss():
    flat = np.full((7, 7), -1.0, dtype=np.float32)
    maps = {"left_000001": flat, "empty_000001": flat}
    anns = {"left_000001": LEFT_HALF, "empty_000001": EMPTY}
    lvs = evaluate(maps, anns, "lvs")
    assert lvs.n_nan == 1 and math.isnan(lvs.mean_iou) and lvs.ciou == 0.0
    assert lvs.to_dict()["mean_iou"] is None
    json.dumps(lvs.to_dict())  # no NaN literal in the JSON
    ours = evaluate(maps, anns)
    assert ours.n_nan == 0 and ours.mean_iou == 0.0


def test_flickr_soft_ground_truth_by_hand(tmp_path):
    # annotators: left half, left half, top half -> top-left quarter weighs 1,
    # bottom-left 1 (two boxes), top-right 0.5
    folder = write_flickr(
        tmp_path / "anno", {"5": [[(0, 0, 128, 256)], [(0, 0, 128, 256)], [(0, 0, 256, 128)]]}
    )
    ann = load_annotations(folder, "flickr")["5"]
    g = gt_map(ann, 224, "lvs")
    assert g[:, :112].min() == 1 and g[:112, 112:].min() == 0.5 and g[112:, 112:].max() == 0
    # predict the left half exactly: IoU = 112*224 / (112*224 + 0.5*112*112)
    pred = np.zeros((224, 224))
    pred[:, :112] = 1
    assert iou_from_masks(pred, g) == pytest.approx(0.8, abs=1e-15)
    grad = np.tile(np.arange(223, -1, -1, dtype=np.float32), (224, 1))
    assert one(grad, ann, "ezvsl").per_sample["iou"][0] == 0.8


def test_aggregates_match_sklearn():
    rng = np.random.default_rng(3)
    ious = np.concatenate([rng.random(200), [0.5, 0.05, 0.15000000000000002, 0.15, np.nan]])
    x = [0.05 * i for i in range(21)]
    y = [np.sum(ious >= t) / len(ious) for t in x]
    assert list(THRESHOLDS) == x
    assert auc_from_ious(ious) == pytest.approx(sklearn_auc(x, y), abs=1e-15)
    assert ciou_from_ious(ious) == np.sum(ious >= 0.5) / len(ious)
    curve = success_curve(ious)
    assert curve[0] == 204 / 205 and np.all(np.diff(curve) <= 0)


# -- exactness against the literal per-sample procedure -------------------------------


def _smooth(rng, h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    m = np.zeros((h, w))
    for _ in range(rng.integers(1, 4)):
        cy, cx, s = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.8, 4)
        m += rng.uniform(0.2, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    m += 0.05 * rng.standard_normal((h, w))
    return (m * rng.uniform(0.1, 10) + rng.uniform(-3, 3)).astype(np.float32)


def _adversarial(rng, h, w, j):
    kind = j % 10
    if kind == 0:
        return np.full((h, w), [0, 0.25, -0.5, 1, 2, 0.3, -0.7, 1e-9][j // 10 % 8], np.float32)
    if kind == 1:
        return np.minimum(rng.random((h, w)), 0.3).astype(np.float32)  # plateau at the max
    if kind == 2:
        return np.maximum(rng.standard_normal((h, w)), 0).astype(np.float32)  # at the min
    if kind == 3:
        return rng.integers(0, 3, (h, w)).astype(np.float32)
    if kind == 4:
        return (1 + 1e-7 * rng.random((h, w))).astype(np.float32)
    if kind == 5:
        return (1e20 * rng.random((h, w))).astype(np.float32)
    if kind == 6:
        m = np.zeros((h, w), np.float32)
        m[rng.integers(h), rng.integers(w)] = 1
        return m
    if kind == 7:
        return np.tile(np.linspace(-1, 1, w, dtype=np.float32), (h, 1))
    return rng.standard_normal((h, w)).astype(np.float32)


def _maps(ids, rng, shape):
    return {
        cid: _adversarial(rng, *shape, j) if j % 3 == 0 else _smooth(rng, *shape)
        for j, cid in enumerate(ids)
    }


def _check_exact(maps, anns, truths_by_paper):
    for paper in PAPERS:
        ours = evaluate(maps, anns, paper)
        truths = truths_by_paper(paper)
        ious, agg = ref.score_loop(maps, truths, paper)
        mine = ours.per_sample.set_index("clip_id").loc[list(truths), "iou"].to_numpy()
        np.testing.assert_array_equal(mine, np.array(ious), err_msg=paper)
        for key in ("ciou", "auc", "mean_iou"):
            a, b = getattr(ours, key), agg[key]
            assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-12, (paper, key)


@pytest.fixture(scope="module")
def vggss_subset(shared_metadata):
    path = shared_metadata / "sspl" / "vggss_test_5158.json"
    anns = load_annotations(path, "vggss")
    boxes = ref.load_vggss_boxes(path)
    defect = [c for c, a in anns.items() if a.defects]
    rng = np.random.default_rng(0)
    ids = defect + list(rng.choice([c for c in anns if c not in defect], 120, replace=False))
    return {c: anns[c] for c in ids}, boxes


@pytest.mark.parametrize("shape", [(14, 14), (7, 7)])
def test_exact_on_real_vggss(vggss_subset, shape):
    anns, boxes = vggss_subset
    maps = _maps(list(anns), np.random.default_rng(shape[0]), shape)
    # empty-GT clips get flat maps: the NaN paths
    maps["M1P1xla8rg0_000000"] = np.full(shape, -0.5, np.float32)
    maps["MKC9LvRivTM_000030"] = np.full(shape, 0.5, np.float32)
    _check_exact(maps, anns, lambda p: {c: ref.vggss_truth(boxes[c], p) for c in anns})


def test_exact_on_hostile_boxes(tmp_path):
    rng = np.random.default_rng(5)
    entries = []
    for k in range(90):
        boxes = []
        for _ in range(rng.integers(0, 3)):
            x0, x1 = sorted(rng.integers(0, 321, 2) / 320)
            y0, y1 = sorted(rng.integers(0, 321, 2) / 320)
            b = [x0, y0, x1, y1]
            r = k % 6
            if r == 1:
                b[0] = -int(rng.integers(1, 40)) / 320  # SSL-TIE wraps this
            elif r == 2:
                b[2] = 1 + int(rng.integers(1, 40)) / 320
            elif r == 3:
                b[3] = -2.8823037615171176e16
            elif r == 4:
                b[0], b[2] = b[2], b[0]
            elif r == 5:
                b[2] = -int(rng.integers(1, 40)) / 320
            boxes.append([float(v) for v in b])
        entries.append({"file": f"hostile{k:03d}_000000", "class": "x", "bbox": boxes})
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(entries))
    anns = load_annotations(path, "vggss", bad_boxes="drop")
    boxes = ref.load_vggss_boxes(path)
    maps = _maps(list(anns), rng, (14, 14))
    _check_exact(maps, anns, lambda p: {c: ref.vggss_truth(boxes[c], p) for c in anns})
    # the rules really differ on these boxes (the test has teeth)
    lvs = evaluate(maps, anns, "lvs").per_sample["iou"].to_numpy()
    ssl = evaluate(maps, anns, "ssltie").per_sample["iou"].to_numpy()
    assert not np.array_equal(np.nan_to_num(lvs, nan=-1), np.nan_to_num(ssl, nan=-1))


def test_exact_on_flickr(tmp_path):
    rng = np.random.default_rng(9)
    clips = {}
    for k in range(40):
        annotators = []
        for _ in range(3):
            boxes = []
            for _ in range(rng.integers(1, 3)):
                x0, x1 = sorted(int(v) for v in rng.integers(0, 257, 2))
                y0, y1 = sorted(int(v) for v in rng.integers(0, 257, 2))
                if k % 7 == 0:
                    x0, x1 = x1, x0
                boxes.append((x0, y0, x1, y1))
            annotators.append(boxes)
        clips[str(20_000_000 + k)] = annotators
    folder = write_flickr(tmp_path / "anno", clips)
    anns = load_annotations(folder, "flickr")
    maps = _maps(list(anns), rng, (14, 14))
    truths = {c: ref.flickr_truth(folder / f"{c}.xml") for c in anns}
    _check_exact(maps, anns, lambda p: truths)


def test_one_minus_n_of_minus_u_is_not_n_of_u():
    """The reason the lvs preset keeps the literal formula: in float32 the two
    binarisations differ on some smooth maps, and the preset follows 1 - N(-u)."""
    rng = np.random.default_rng(1)
    maps = [_smooth(rng, 14, 14) for _ in range(300)]
    differ = 0
    for m in maps:
        u = ref.upsampled(m, "lvs")
        a = 1 - ref.minmax_or_same(-u)
        b = ref.minmax_or_same(u)
        fa = (a > np.sort(a.ravel())[ref.MEDIAN_INDEX]) | (a >= 1)
        fb = (b > np.sort(b.ravel())[ref.MEDIAN_INDEX]) | (b >= 1)
        differ += not np.array_equal(fa, fb)
    assert differ > 0


# -- invariants ---------------------------------------------------------------------

_box = st.tuples(
    st.integers(0, 200), st.integers(0, 200), st.integers(8, 100), st.integers(8, 100)
).map(lambda t: (t[0], t[1], min(224, t[0] + t[2]), min(224, t[1] + t[3])))


def _ann_px(b):
    return Annotation("h_000001", "vggss", [Box(*(v / 224 for v in b))])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(box=_box, preset=st.sampled_from(["default", "lvs", "ssltie", "sspl", "htf"]))
def test_ground_truth_as_map_scores_one(box, preset):
    ann = _ann_px(box)
    g = gt_map(ann, 224, PRESETS.get(preset).pixel_rule).astype(np.float32)
    assert one(g, ann, preset).per_sample["iou"][0] == 1.0
    assert one(1 - g, ann, preset).per_sample["iou"][0] == 0.0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31),
    shape=st.tuples(st.integers(1, 16), st.integers(1, 16)),
    preset=st.sampled_from(PRESETS.names()),
)
def test_aggregates_stay_in_range(seed, shape, preset):
    rng = np.random.default_rng(seed)
    anns, maps = {}, {}
    for k in range(6):
        x0, y0 = rng.random(2) * 0.8
        anns[f"r{k}_000001"] = Annotation(
            f"r{k}_000001", "vggss", [Box(x0, y0, x0 + 0.2, y0 + 0.2)]
        )
        maps[f"r{k}_000001"] = rng.standard_normal(shape).astype(np.float32)
    r = evaluate(maps, anns, preset, workers=1)
    assert 0.0 <= r.auc <= 1.0 and 0.0 <= r.ciou <= 1.0 and 0.0 <= r.pointing <= 1.0
    assert np.all(np.diff(r.curve) <= 0) and r.curve[0] <= 1.0
    ious = r.per_sample["iou"].dropna()
    assert ((ious >= 0) & (ious <= 1)).all()


# -- the evaluate() contract --------------------------------------------------------


def test_missing_extra_and_allow_missing():
    anns = {"a_000001": LEFT_HALF, "b_000002": EMPTY}
    maps = {"a_000001": np.eye(7, dtype=np.float32), "zzz": np.eye(7)}
    with pytest.raises(InputError, match="1 annotated clips have no map"):
        evaluate(maps, anns)
    r = evaluate(maps, anns, allow_missing=True)
    assert r.n == 1 and r.missing == ["b_000002"] and r.extra == ["zzz"]
    assert r.to_dict()["n_missing"] == 1
    with pytest.raises(InputError, match="nothing to score"):
        evaluate({"zzz": np.eye(3)}, anns, allow_missing=True)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.array([[np.nan, 1.0], [0.0, 1.0]]), "NaN or infinite"),
        (np.zeros((2, 3, 4)), "expected a 2-D array"),
        (np.array([["a", "b"]]), "non-numeric"),
    ],
)
def test_bad_maps_are_input_errors(bad, message):
    with pytest.raises(InputError, match=message):
        evaluate({"a_000001": bad}, {"a_000001": LEFT_HALF})


def test_shapes_order_threads_and_pointing():
    rng = np.random.default_rng(0)
    anns, maps = {}, {}
    for k in range(150):
        cid = f"c{k:03d}_000001"
        x0 = rng.random() * 0.5
        anns[cid] = Annotation(cid, "vggss", [Box(x0, 0.1, x0 + 0.4, 0.9)])
        shape = [(14, 14), (7, 7), (1, 14, 14), (20, 11)][k % 4]
        maps[cid] = rng.standard_normal(shape).astype(np.float32)
    a = evaluate(maps, anns, "default", workers=1)
    b = evaluate(maps, anns, "default", workers=3)
    assert list(a.per_sample["clip_id"]) == list(anns)
    assert a.per_sample.equals(b.per_sample) and a.ciou == b.ciou and a.auc == b.auc
    # a peak inside the box is a pointing hit, outside a miss
    peak = np.zeros((14, 14), np.float32)
    peak[7, 1] = 1
    assert one(peak, LEFT_HALF, "default").pointing == 1.0
    peak = np.zeros((14, 14), np.float32)
    peak[7, 12] = 1
    assert one(peak, LEFT_HALF, "default").pointing == 0.0


@pytest.mark.slow  # ~2-4 s: kept out of make test-fast
def test_whole_real_set(shared_metadata):
    anns = load_annotations(shared_metadata / "sspl" / "vggss_test_5158.json", "vggss")
    rng = np.random.default_rng(2)
    maps = {c: rng.random((14, 14)).astype(np.float32) for c in anns}
    r = evaluate(maps, anns, "ssltie")
    assert r.n == 5158 and len(r.per_sample) == 5158 and not r.missing
    sample = list(rng.choice(list(anns), 40, replace=False))
    boxes = ref.load_vggss_boxes(shared_metadata / "sspl" / "vggss_test_5158.json")
    expected = [
        ref.iou(ref.prediction(maps[c], "ssltie"), ref.vggss_truth(boxes[c], "ssltie"))
        for c in sample
    ]
    got = r.per_sample.set_index("clip_id").loc[sample, "iou"].to_numpy()
    np.testing.assert_array_equal(got, expected)


def test_import_is_light():
    code = "import sys, avmodels.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
