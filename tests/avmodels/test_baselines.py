"""Baseline maps (centre prior, random, ceiling) and ``avmodels baselines``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from avmodels.baselines import (
    ceiling,
    centre_prior,
    gt_map,
    random_maps,
    score_baselines,
    soften,
)
from avprep.annotations import load_annotations
from avprep.errors import ConfigError
from avprep.synth import SynthConfig, clip_spec
from avprep.synth.generate import write_groundtruth

CFG = SynthConfig(clips=100, seed=3, test_fraction=0.4)


@pytest.fixture(scope="module")
def synth_gt(tmp_path_factory) -> Path:
    """SynthAV ground truth (no videos needed to score maps against it)."""
    out = tmp_path_factory.mktemp("synthgt")
    write_groundtruth(CFG, [clip_spec(CFG, i) for i in range(CFG.clips)], out)
    return out


def test_centre_prior_peaks_at_the_centre_and_is_shared():
    maps = centre_prior(["a", "b"], size=224)
    g = maps["a"]
    assert g.shape == (224, 224) and g.dtype == np.float32
    assert np.unravel_index(np.argmax(g), g.shape) in {
        (111, 111),
        (111, 112),
        (112, 111),
        (112, 112),
    }
    assert np.allclose(g, g.T) and np.allclose(g, g[::-1, ::-1])
    assert g[0, 0] < 0.05 * g.max()
    assert maps["b"] is g and not g.flags.writeable


def test_random_maps_are_seeded_per_clip():
    a = random_maps(["x", "y"], seed=1)
    b = random_maps(["y"], seed=1)
    c = random_maps(["x", "y"], seed=2)
    assert a["x"].shape == (14, 14)
    assert np.array_equal(a["y"], b["y"])  # independent of the other clips asked for
    assert not np.array_equal(a["x"], a["y"])
    assert not np.array_equal(a["x"], c["x"])


def test_gt_map_union_and_consensus():
    boxes = [[0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]]
    u = gt_map(boxes, "union", 8)
    assert u.sum() == 16 + 16 - 4 and set(np.unique(u)) == {0.0, 1.0}
    c = gt_map(boxes, "consensus", 8)
    assert c[3, 3] == 1.0 and c[0, 0] == 0.5 and c[7, 7] == 0.0


def test_soft_ceiling_keeps_the_boxes_on_top_and_ranks_the_rest_by_distance():
    g = gt_map([[0.25, 0.25, 0.5, 0.5]], "union", 64)
    s = soften(g)
    inside = g > 0
    assert np.array_equal(s[inside], g[inside])
    assert s[~inside].max() < s[inside].min()
    row = s[24, 32:]  # walking right, away from the box
    assert np.all(np.diff(row) < 0)
    assert np.array_equal(soften(np.zeros((4, 4))), np.zeros((4, 4)))


def test_ceiling_accepts_annotations_entries_and_plain_boxes(synth_gt):
    anns = load_annotations(synth_gt / "annotations" / "vggss.json", "vggss")
    cid = next(iter(anns))
    entry = json.loads((synth_gt / "annotations" / "vggss.json").read_text())[0]
    assert entry["file"] == cid
    a = ceiling({cid: anns[cid]}, mode="binary")[cid]
    b = ceiling({cid: entry}, mode="binary")[cid]
    c = ceiling({cid: entry["bbox"]}, mode="binary")[cid]
    assert np.array_equal(b, c)
    # same box, two pixel rules (pixel centres vs int truncation): at most a pixel apart
    assert np.abs(a - b).sum() <= 2 * 224
    with pytest.raises(ConfigError, match="ceiling mode"):
        ceiling({cid: entry}, mode="nope")


@pytest.mark.parametrize("benchmark, path", [("vggss", "vggss.json"), ("flickr", "xml")])
def test_on_synthav_ceiling_beats_centre_and_random_scores_low(synth_gt, benchmark, path):
    anns = load_annotations(synth_gt / "annotations" / path, benchmark)
    test_ids = (synth_gt / "splits" / "test.txt").read_text().split()
    anns = {i: anns[i] for i in test_ids}
    assert len(anns) == 40
    res = score_baselines(anns, "default", seed=0)
    centre, rnd, ceil = res["centre"], res["random"], res["ceiling"]
    assert ceil.ciou >= 0.9 and ceil.pointing == 1.0  # SynthAV's objects are large enough
    assert ceil.ciou >= centre.ciou + 0.5 and ceil.auc >= centre.auc + 0.15
    assert rnd.ciou <= 0.1 and rnd.auc < centre.auc
    assert centre.pointing < 0.8  # elongated objects: the centre is no free hit
    again = score_baselines(anns, "default", seed=0)
    assert {k: v.to_dict() for k, v in again.items()} == {k: v.to_dict() for k, v in res.items()}


def test_binary_ceiling_escapes_the_median_cap_by_a_tie_rule(synth_gt):
    # why the soft ceiling is the default: under LVS's strict '>' the bare 0/1 map keeps
    # exactly its boxes (IoU 1), a score no tie-free map can reach
    anns = load_annotations(synth_gt / "annotations" / "vggss.json", "vggss")
    anns = dict(list(anns.items())[:20])
    binary = score_baselines(anns, "lvs", ceiling_mode="binary")["ceiling"]
    soft = score_baselines(anns, "lvs")["ceiling"]
    assert binary.mean_iou == pytest.approx(1.0)
    areas = [sum(b.area for b in a.boxes) for a in anns.values()]
    # soft: the kept half of the frame holds the box, IoU = box area / half the frame
    assert soft.mean_iou == pytest.approx(min(1.0, 2 * float(np.mean(areas))), abs=0.03)


def test_cli_table_and_json(synth_gt):
    from avmodels.cli import cli

    runner = CliRunner()
    args = [
        "baselines",
        "--annotations", str(synth_gt / "annotations" / "vggss.json"),
        "--benchmark", "vggss",
        "--ids", str(synth_gt / "splits" / "test.txt"),
    ]  # fmt: skip
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "40 clips" in res.output
    assert [line.split()[0] for line in res.output.splitlines()[2:5]] == [
        "centre",
        "random",
        "ceiling",
    ]
    res = runner.invoke(cli, [*args, "--json", "--preset", "lvs"])
    data = json.loads(res.output)
    assert data["n"] == 40 and data["preset"] == "lvs"
    assert data["baselines"]["ceiling"]["ciou"] >= data["baselines"]["centre"]["ciou"]
    bad = runner.invoke(cli, [*args, "--preset", "nope"])
    assert bad.exit_code == 2 and "'nope' is not one of" in bad.output  # a checked choice
    missing = runner.invoke(cli, [*args[:-1], "not_a_clip"])
    assert missing.exit_code != 0 and "no annotation" in str(missing.exception)
