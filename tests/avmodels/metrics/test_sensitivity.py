"""Sound-sensitivity: the audio probes (silence, noise, swap) and their measures."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from avmodels.cli import cli
from avmodels.engine import probe as pr
from avmodels.metrics import sensitivity as sens
from avprep.errors import ConfigError
from tests.engine_data import write_tiny_store
from tests.protocol_data import vggss_json, write_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny store and a random-weight SSL-TIE model file that reads the raw audio."""
    root = tmp_path_factory.mktemp("probe")
    path, boxes = write_tiny_store(root, 5, size=32, seconds=1)
    model = write_tiny_model(root / "model.pt")
    ann = vggss_json(root / "gt.json", boxes)
    return path, model, ann, sorted(boxes)


def test_noise_is_seeded_per_clip_and_matches_the_level():
    w = (0.2 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    a = pr.probe_wave("noise", w, "c1", 0, None)
    assert np.array_equal(a, pr.probe_wave("noise", w, "c1", 0, None))
    assert not np.array_equal(a, pr.probe_wave("noise", w, "c2", 0, None))
    assert np.sqrt(np.mean(a.astype(np.float64) ** 2)) == pytest.approx(0.2 / np.sqrt(2), rel=0.05)
    assert not pr.probe_wave("silence", w, "c1", 0, None).any()


def test_derangement_has_no_fixed_point():
    for n in (2, 3, 10):
        src = pr.derangement(n, seed=4)
        assert sorted(src) == list(range(n)) and all(s != i for i, s in enumerate(src))
    with pytest.raises(ConfigError):
        pr.derangement(1)


def test_vssl_map_iou_rules():
    e = np.zeros((3, 3), bool)
    f = e.copy()
    f[0, 0] = True
    assert sens.vssl_map_iou(e, e) == 1.0
    assert sens.vssl_map_iou(f, e) == 0.0
    assert sens.vssl_map_iou(e, f) == 0.0
    assert sens.auc_pia([0.0] * 4) == pytest.approx(1.0)  # every clip below every threshold


def test_unchanged_maps_score_as_insensitive():
    rng = np.random.default_rng(0)
    maps = {f"c{i}": rng.random((7, 7)).astype(np.float32) for i in range(6)}
    r = sens.sensitivity(maps, maps, probe="silence")
    assert r.map_iou == 1.0 and r.max_drop == 0.0
    assert r.pia == pytest.approx(0.5, abs=0.01)  # the probe lights the same half
    # a probe map scaled down: same places, lower level: IoU 1, pIA 0, AP 1
    low = {k: v * 0.1 for k, v in maps.items()}
    r2 = sens.sensitivity(maps, low)
    assert r2.map_iou == 1.0 and r2.pia == 0.0 and r2.ap_sounding == 1.0
    assert r2.max_drop == pytest.approx(np.mean([v.max() * 0.9 for v in maps.values()]), rel=1e-5)


@pytest.mark.slow
def test_probe_reruns_the_model_with_replaced_audio(tiny):
    path, model, _, ids = tiny
    for kind in ("silence", "swap", "noise"):
        r = pr.run_probe(model, [path], kind, seed=1, batch_size=8)
        assert r.n == len(ids) and r.probe == kind
        assert 0 <= r.map_iou <= 1 and 0 <= r.ap_sounding <= 1
        # the maps did change: the model reads the audio
        assert (r.per_sample["max_true"] != r.per_sample["max_probe"]).any(), kind
    # seeded: a rerun of the noise probe gives the same maps
    again = pr.run_probe(model, [path], "noise", seed=1, batch_size=8)
    assert again.per_sample["max_probe"].tolist() == r.per_sample["max_probe"].tolist()


@pytest.mark.slow
def test_eval_cli_prints_the_probe_beside_the_accuracy(tiny):
    path, model, ann, _ = tiny
    res = CliRunner().invoke(
        cli,
        ["eval", "--ckpt", str(model), "--data", str(path), "--benchmark", "vggss",
         "--annotations", str(ann), "--workers", "0", "--audio-probe", "silence",
         "--audio-probe", "swap"],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "ciou" in res.output
    assert "probe silence" in res.output and "probe swap" in res.output
    assert "map IoU" in res.output and "pIA" in res.output


def test_vssl_pair_thresholds_are_strict_and_the_negative_is_not_normalised():
    pos = np.arange(49, dtype=np.float32).reshape(7, 7)
    neg = np.full((7, 7), 0.5, np.float32)  # a flat 0.5 map: not above 0.5
    assert sens.vssl_pair(pos, neg)["pia"] == 0.0
    # the same map scaled by 10 would be normalised away on the positive side, not here
    assert sens.vssl_pair(pos, neg * 10)["pia"] == 1.0
