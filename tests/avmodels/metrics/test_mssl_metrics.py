"""Multi-Source's metrics against restatements written from its scripts: gtscore.py (the
paper's Flickr numbers), new/main.py, new/cal_metric.py, and the class-aware
AudioSet-instrument metric of utils/evaluate.py (with evaluate-maps on class-keyed maps)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from avmodels.cli import cli
from avmodels.metrics import evaluate
from avmodels.metrics.mssl import (
    evaluate_instrument,
    key_of_pair,
    map_key,
    read_instrument_gt,
)
from avprep.annotations import load_annotations
from avprep.errors import InputError
from tests.annotation_fixtures import write_flickr


# -- restatements ---------------------------------------------------------------------------
def _gt_ref(annotators):
    """utils/gtdata.py / new/testdata.py: += 1 on G[ymin-1:ymax-1, xmin-1:xmax-1], min(G/2, 1)."""
    g = np.zeros((256, 256), np.float32)
    for boxes in annotators:
        for xmin, ymin, xmax, ymax in boxes:
            g[ymin - 1 : ymax - 1, xmin - 1 : xmax - 1] += 1.0
    return np.minimum(g / 2.0, 1.0)


def _up_ref(m):
    """torch bilinear to 256 x 256 (align_corners False, the old default)."""
    t = torch.from_numpy(np.asarray(m, np.float32))[None, None]
    return F.interpolate(t, (256, 256), mode="bilinear", align_corners=False)[0, 0].numpy()


def _gtscore_ref(m, g):
    infer = _up_ref(m)
    f = np.zeros((256, 256))
    f[infer >= 0.1] = 1
    return np.sum(f * g) / (np.sum(g) + np.sum(f * (g == 0)))


def _main_ref(m, g, thres=0.5):
    loc = _up_ref(m)
    loc = loc / np.max(loc)
    return np.sum(g[loc > thres]) / (np.sum(g) + np.sum(g[loc > thres] == 0))


def _flickr_clips(rng, n=30):
    clips = {}
    for k in range(n):
        annotators = []
        for _ in range(3):
            boxes = []
            for _ in range(rng.integers(1, 3)):
                x0, x1 = sorted(int(v) for v in rng.integers(0, 257, 2))
                y0, y1 = sorted(int(v) for v in rng.integers(0, 257, 2))
                boxes.append((x0, y0, x1, y1))
            annotators.append(boxes)
        clips[str(30_000_000 + k)] = annotators
    # a box from the top-left corner: the 0 coordinate wraps and empties it
    clips["30000100"] = [[(0, 0, 128, 128)], [(0, 10, 100, 120)], [(20, 0, 200, 90)]]
    clips["30000101"] = [[(1, 1, 256, 256)], [(100, 100, 256, 256)], [(5, 5, 60, 60)]]
    return clips


def _maps(ids, rng):
    out = {}
    for i, cid in enumerate(ids):
        m = rng.random((16, 16)).astype(np.float32) * (0.3 if i % 3 == 0 else 1.0)
        out[cid] = cv2.GaussianBlur(m, (5, 5), 1.0)  # smooth, values around 0.1 and 0.5
    return out


@pytest.fixture(scope="module")
def flickr(tmp_path_factory):
    rng = np.random.default_rng(17)
    clips = _flickr_clips(rng)
    folder = write_flickr(tmp_path_factory.mktemp("flickr"), clips)
    anns = load_annotations(folder, "flickr")
    return clips, anns, _maps(list(anns), rng)


@pytest.mark.parametrize(
    ("preset", "ref"),
    [
        ("mssl", _gtscore_ref),
        ("mssl-main", _main_ref),
        ("mssl-calmetric", lambda m, g: _main_ref(m, g, 0.001)),
    ],
)
def test_flickr_presets_equal_the_scripts(flickr, preset, ref):
    clips, anns, maps = flickr
    got = evaluate(maps, anns, preset).per_sample.set_index("clip_id")["iou"]
    want = {cid: ref(maps[cid], _gt_ref(clips[cid])) for cid in anns}
    for cid, value in want.items():
        assert got[cid] == pytest.approx(value, abs=1e-9, nan_ok=True), cid


def test_the_conventions_have_teeth(flickr):
    """A changed threshold, normalisation or GT shift changes the scores."""
    clips, anns, maps = flickr
    got = evaluate(maps, anns, "mssl").per_sample.set_index("clip_id")["iou"]

    def unshifted(annotators):
        g = np.zeros((256, 256), np.float32)
        for boxes in annotators:
            for xmin, ymin, xmax, ymax in boxes:
                g[ymin:ymax, xmin:xmax] += 1.0
        return np.minimum(g / 2.0, 1.0)

    differs = {
        "no shift": lambda m, c: _gtscore_ref(m, unshifted(clips[c])),
        "threshold 0.5": lambda m, c: _main_ref(m, _gt_ref(clips[c]), 0.5),
        "> instead of >=": lambda m, c: _main_ref(m, _gt_ref(clips[c]), 0.1),
    }
    for name, fn in differs.items():
        other = np.array([fn(maps[c], c) for c in anns])
        assert not np.allclose(
            np.nan_to_num(other, nan=-1), np.nan_to_num(got[list(anns)], nan=-1)
        ), name
    # the wrap: a box starting at 0 adds nothing
    ranges_empty = _gt_ref([[(0, 0, 128, 128)]])
    assert ranges_empty.sum() == 0


# -- AudioSet-instrument -------------------------------------------------------------------------
def _coco(tmp_path, rng, ids):
    keys = sorted(ids)
    images, annotations = [], []
    frames = {}
    for v in range(len(keys)):
        for second in range(10):
            if rng.random() < 0.5:
                continue
            image = 10 * v + second
            cats = rng.choice(15, size=rng.integers(1, 4), replace=False)
            images.append({"id": image, "width": 1280, "height": 720})
            frames[(keys[v], second)] = {}
            for c in cats:
                for _ in range(rng.integers(1, 3)):
                    x, y = rng.random(2) * 0.6
                    w, h = 0.05 + rng.random(2) * 0.35
                    box = [float(x), float(y), float(w), float(h)]
                    annotations.append(
                        {
                            "id": len(annotations),
                            "image_id": image,
                            "category_id": int(c),
                            "bbox": box,
                        }
                    )
                    frames[(keys[v], second)].setdefault(int(c), []).append(box)
    cats = [{"id": i, "name": f"inst{i}"} for i in range(15)]
    path = tmp_path / "normav.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": cats}))
    return path, frames


def _class_eval_ref(frames, maps):
    """utils/evaluate.py class_eval, restated."""
    cious = []
    for (ytid, second), label in frames.items():
        if len(label) != 2:
            continue
        ciou = 0.0
        for cls, boxes in label.items():
            boxes = np.array(boxes) * 256
            g = np.zeros((256, 256))
            for b in boxes:
                g[int(b[1]) : int(b[1] + b[3]), int(b[0]) : int(b[0] + b[2])] = 1.0
            infer = cv2.resize(maps[f"{ytid}/{second}/{cls}"], (256, 256))
            infer[infer < 0] = 0
            fg = infer > 0.1 * np.max(infer)
            ciou += np.sum((g > 0) * fg) / (np.sum(g) + np.sum((g == 0) * fg))
        cious.append(ciou / len(label))
    return np.array(cious)


@pytest.fixture()
def instrument(tmp_path):
    rng = np.random.default_rng(5)
    ids = [f"vid{i:02d}_{chr(97 + i)}X" for i in range(12)]
    coco, frames = _coco(tmp_path, rng, ids)
    maps = {}
    for (ytid, second), label in frames.items():
        for cls in label:
            maps[map_key(ytid, second, cls)] = rng.normal(size=(16, 16)).astype(np.float32)
        maps[map_key(ytid, second)] = rng.normal(size=(16, 16)).astype(np.float32)
    return ids, coco, frames, maps


def test_class_aware_metric_equals_utils_evaluate(instrument):
    ids, coco, frames, maps = instrument
    gt = read_instrument_gt(coco, list(reversed(ids)))  # sorted inside, as the original
    res = evaluate_instrument(maps, gt, "class")
    ref = _class_eval_ref(frames, maps)
    assert res.n == len(ref) == sum(len(v) == 2 for v in frames.values()) > 5
    np.testing.assert_allclose([s for _, s in res.per_frame], ref, rtol=1e-12)
    assert res.ciou == pytest.approx(np.mean(ref >= 0.5))
    # a map per class matters: swapping the two classes' maps changes the score
    swapped = dict(maps)
    for f in gt.two_source():
        a, b = (map_key(f.ytid, f.second, c) for c in f.boxes)
        swapped[a], swapped[b] = maps[b], maps[a]
    other = evaluate_instrument(swapped, gt, "class")
    assert [s for _, s in other.per_frame] != [s for _, s in res.per_frame]


def test_missing_maps_and_bad_ids(instrument):
    ids, coco, frames, maps = instrument
    gt = read_instrument_gt(coco, ids)
    some = next(f for f in gt.two_source())
    partial = {k: v for k, v in maps.items() if not k.startswith(some.key + "/")}
    with pytest.raises(InputError, match="--allow-missing"):
        evaluate_instrument(partial, gt, "class")
    res = evaluate_instrument(partial, gt, "class", allow_missing=True)
    assert res.n == len(gt.two_source()) - 1 and len(res.missing) == 2
    with pytest.raises(InputError, match="ids were given"):
        read_instrument_gt(coco, ids[:3])


def test_evaluate_maps_cli_reads_class_keyed_maps(instrument, tmp_path):
    ids, coco, frames, maps = instrument
    npz = tmp_path / "maps.npz"
    np.savez(npz, **maps)
    id_file = tmp_path / "val_ids.txt"
    id_file.write_text("\n".join(ids) + "\n")
    res = CliRunner().invoke(
        cli,
        ["evaluate-maps", "--maps", str(npz), "--benchmark", "audioset-instrument",
         "--annotations", str(coco), "--video-ids", str(id_file), "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    ref = _class_eval_ref(frames, maps)
    assert out["n"] == len(ref) and out["ciou"] == pytest.approx(np.mean(ref >= 0.5))
    assert out["mode"] == "class"


def test_agnostic_mode_equals_eval_agnostic(instrument):
    """utils/evaluate.py eval_agnostic: one map per frame against both classes' boxes."""
    ids, coco, frames, maps = instrument
    ref = []
    for (ytid, second), label in frames.items():
        if len(label) != 2:
            continue
        boxes = np.array([b for c in label for b in label[c]]) * 256
        g = np.zeros((256, 256))
        for b in boxes:
            g[int(b[1]) : int(b[1] + b[3]), int(b[0]) : int(b[0] + b[2])] = 1.0
        infer = cv2.resize(maps[f"{ytid}/{second}"], (256, 256))
        infer[infer < 0] = 0
        fg = infer > 0.1 * np.max(infer)
        ref.append(np.sum((g > 0) * fg) / (np.sum(g) + np.sum((g == 0) * fg)))
    res = evaluate_instrument(maps, read_instrument_gt(coco, ids), "agnostic")
    np.testing.assert_allclose([s for _, s in res.per_frame], ref, rtol=1e-12)


def test_pair_ids_map_to_keys():
    assert key_of_pair("-0SdAVK79lg.t03", 7) == "-0SdAVK79lg/3/7"
    assert key_of_pair("a.b.t10") == "a.b/10"
    with pytest.raises(InputError, match="pair id"):
        key_of_pair("-0SdAVK79lg")
