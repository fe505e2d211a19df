"""Multi-Source's pseudo labels: the MobileCRNN tagger, the two rules, the labels file,
the CLI (random weights, real files), and the loud k-means fallback."""

from __future__ import annotations

import hashlib
import json

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from avmodels import weights
from avmodels.backbones.mobile_crnn import linear_softmax_pool, mobilecrnn_v2
from avmodels.cli import cli
from avmodels.methods import build_method
from avmodels.methods.mssl_labels import (
    PseudoLabeler,
    audio_labels,
    imagenet_classifier,
    load_mapping,
    load_tagger,
    visual_labels,
    write_label_file,
)
from avmodels.methods.pseudo_labels import LabelLookup, read_labels
from avprep.errors import ChecksumError, InputError
from tests.engine_data import write_tiny_store
from tests.httpserver import MediaServer
from tests.method_config import merged, one_thread  # noqa: F401 (autouse fixture)


# -- the tagger ----------------------------------------------------------------------------
def test_mobilecrnn_v2_has_the_released_layout_and_shapes():
    torch.manual_seed(0)
    model = mobilecrnn_v2().eval()
    state = model.state_dict()
    # the names and shapes of mobile_crnn/models/crnn.py's mobilecrnn_v2 (143 tensors)
    assert len(state) == 143
    assert state["features.0.0.running_mean"].shape == (1,)  # BatchNorm2d(1) first
    assert state["features.0.1.weight"].shape == (64, 1, 5, 5)
    assert state["features.0.1.bias"].shape == (64,)
    # max-pools take indices 1, 3, 6, 9: inverted residual blocks at 2, 4, 5, 7, 8, 10, 11
    blocks = sorted({int(k.split(".")[1]) for k in state if ".conv." in k})
    assert blocks == [2, 4, 5, 7, 8, 10, 11]
    assert state["features.2.conv.0.0.weight"].shape == (384, 64, 1, 1)  # expansion 6
    assert state["features.2.conv.1.0.weight"].shape == (384, 1, 3, 3)  # depthwise
    assert state["features.11.conv.2.weight"].shape == (512, 3072, 1, 1)
    assert state["gru.rnn.weight_ih_l0"].shape == (3 * 128, 1024)  # 512 channels x 2 bands
    assert "gru.rnn.weight_hh_l0_reverse" in state
    assert state["outputlayer.weight"].shape == (527, 256)
    spec = torch.randn(2, 251, 64)
    with torch.no_grad():
        clip, steps = model(spec)
    assert clip.shape == (2, 527) and steps.shape == (2, 63, 527)  # 251 -> 126 -> 63 steps
    assert float(steps.min()) >= 1e-7 and float(clip.max()) <= 1.0
    p = steps.double()
    np.testing.assert_allclose(
        clip.double().numpy(), ((p**2).sum(1) / p.sum(1)).clamp(1e-7, 1).numpy(), rtol=1e-5
    )
    x = torch.tensor([[[0.5], [0.25]]])
    assert torch.allclose(linear_softmax_pool(x), torch.tensor([[0.3125 / 0.75]]))


def test_load_tagger_reads_a_state_dict_and_rejects_others(tmp_path):
    torch.manual_seed(1)
    ref = mobilecrnn_v2().eval()
    path = tmp_path / "mobilecrnn_v2.pth"
    torch.save({"module." + k: v for k, v in ref.state_dict().items()}, path)
    loaded = load_tagger(path)
    spec = torch.randn(1, 100, 64)
    with torch.no_grad():
        assert torch.equal(loaded(spec)[0], ref(spec)[0])
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.1.weight": torch.zeros(3)}, bad)
    with pytest.raises(InputError, match="not MobileCRNN"):
        load_tagger(bad)
    with pytest.raises(InputError, match="not found"):
        load_tagger(tmp_path / "missing.pth")


# -- the rules, against restatements written from the scripts --------------------------------
def _audio_new_ref(tags, ca):
    out = np.zeros((tags.shape[0], 7))
    for b in range(tags.shape[0]):
        for c in range(7):
            m = max(tags[b, j] * ca[c, j] for j in range(527))
            out[b, c] = m * 0.4 + 0.6 if m > 0.3 else m
    return out


def _visual_new_ref(probs, cv):
    out = np.zeros((probs.shape[0], 7))
    for b in range(probs.shape[0]):
        keep = sorted(range(1000), key=lambda j: -probs[b, j])[:10]
        for c in range(7):
            out[b, c] = sum(probs[b, j] * cv[j, c] for j in keep)
        out[b] /= out[b].max()
    return out


def _visual_full_ref(probs, cv):
    out = np.zeros((probs.shape[0], 7))
    for b in range(probs.shape[0]):
        order = sorted(range(1000), key=lambda j: -probs[b, j])
        weight = {j: probs[b, j] / probs[b].max() * 0.95 ** (r + 1) for r, j in enumerate(order)}
        for c in range(7):
            vals = sorted((weight[j] * cv[j, c] for j in range(1000)), reverse=True)
            out[b, c] = (vals[0] + vals[1]) / 2
    return out


def _mappings(seed=0):
    rng = np.random.default_rng(seed)
    ca = (rng.random((7, 527)) < 0.15).astype(np.float32)
    cv = np.zeros((1000, 7), np.float32)
    cv[np.arange(1000), rng.integers(0, 7, 1000)] = 1  # each ImageNet class in one category
    return ca, cv


def test_audio_rules_match_the_scripts():
    ca, _ = _mappings()
    rng = np.random.default_rng(2)
    tags = rng.random((3, 527)).astype(np.float32) * 0.5
    tags[0] *= 0.1  # everything below the 0.3 boost
    got = audio_labels(tags, ca, "new")
    np.testing.assert_allclose(got, _audio_new_ref(tags, ca), rtol=1e-6)
    assert (got[0] < 0.3).all() and (got[1:][got[1:] > 0.3] >= 0.6 + 0.4 * 0.3).all()
    m = np.array(
        [[max(tags[b, j] * ca[c, j] for j in range(527)) for c in range(7)] for b in (0, 1, 2)]
    )
    np.testing.assert_allclose(audio_labels(tags, ca, "full"), np.minimum(2 * m, 1), rtol=1e-6)
    # the boost is strict: exactly 0.3 stays
    edge = np.zeros((1, 527), np.float32)
    edge[0, np.flatnonzero(ca[0])[0]] = np.float32(0.3)
    assert audio_labels(edge, ca, "new")[0, 0] == np.float32(0.3)


def test_visual_rules_match_the_scripts():
    _, cv = _mappings()
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(3, 1000)) * 3
    probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    got = visual_labels(probs, cv, "new")
    np.testing.assert_allclose(got, _visual_new_ref(probs, cv), rtol=1e-5)
    assert np.allclose(got.max(1), 1.0)
    full = visual_labels(probs, cv, "full")
    np.testing.assert_allclose(full, _visual_full_ref(probs, cv), rtol=1e-5)


def test_load_mapping_refuses_pickles_shapes_and_values(tmp_path):
    ca, cv = _mappings()
    np.save(tmp_path / "a.npy", ca)
    assert load_mapping(tmp_path / "a.npy", (7, 527), "audio").dtype == np.float32
    with pytest.raises(InputError, match="shape"):
        load_mapping(tmp_path / "a.npy", (1000, 7), "visual")
    np.save(tmp_path / "obj.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="not a plain .npy"):
        load_mapping(tmp_path / "obj.npy", (1,), "audio")
    np.save(tmp_path / "soft.npy", ca * 0.5)
    with pytest.raises(InputError, match="only 0 and 1"):
        load_mapping(tmp_path / "soft.npy", (7, 527), "audio")


# -- the labels file and the command -----------------------------------------------------------
@pytest.fixture(scope="module")
def label_files(tmp_path_factory):
    """Random-weight tagger and classifier files, mapping files and a tiny store."""
    root = tmp_path_factory.mktemp("mssl-labels")
    torch.manual_seed(0)
    torch.save(mobilecrnn_v2().state_dict(), root / "mobilecrnn_v2.pth")
    torch.save(imagenet_classifier().state_dict(), root / "resnet18.pth")
    ca, cv = _mappings()
    np.save(root / "cluster_a.npy", ca)
    np.save(root / "cluster_v3.npy", cv.astype(np.float64))  # as published: float64
    store, _ = write_tiny_store(root, 5, size=48, seconds=2, sample_rate=22050)
    return root, store


def _labeler(root, rule="new"):
    return PseudoLabeler(
        load_tagger(root / "mobilecrnn_v2.pth"),
        imagenet_classifier().eval(),
        load_mapping(root / "cluster_a.npy", (7, 527), "a"),
        load_mapping(root / "cluster_v3.npy", (1000, 7), "v"),
        rule,
    )


def test_label_file_is_resumable_and_read_by_the_training_lookup(label_files, tmp_path):
    root, store = label_files
    torch.manual_seed(0)
    labeler = _labeler(root)
    out = tmp_path / "labels.h5"
    counts = write_label_file([store], out, labeler, batch_size=2, progress=False)
    assert counts == {"clips": 5, "labelled": 5, "resumed": 0}
    table = read_labels(out, 7)
    assert sorted(table) == [f"clip{i:04d}" for i in range(5)]
    full = {k: v.copy() for k, v in table.items()}
    for lab in full.values():
        assert lab.shape == (2, 7) and lab.min() >= 0 and lab.max() <= 1
        assert np.isclose(lab[1].max(), 1.0)  # the visual rule divides by the maximum
    # an interrupted run: rows 2.. never finished
    partial = out.with_name(out.name + ".partial")
    out.rename(partial)
    with h5py.File(partial, "r+") as f:
        f["done"][2:] = False
        f["audio"][2:] = 0
        f["visual"][2:] = 0
    with pytest.raises(InputError, match="interrupted"):
        read_labels(partial.rename(tmp_path / "half.h5"), 7)
    (tmp_path / "half.h5").rename(partial)
    counts = write_label_file([store], out, labeler, batch_size=2, progress=False)
    assert counts == {"clips": 5, "labelled": 3, "resumed": 2}
    assert not partial.exists()
    again = read_labels(out, 7)
    for cid, lab in full.items():
        np.testing.assert_allclose(again[cid], lab, rtol=1e-5, atol=1e-6)
    lookup = LabelLookup(str(out), 7, strict=True)
    lab, mask = lookup({"clip_id": "clip0003"})
    assert mask == 1.0 and np.allclose(lab, full["clip0003"])
    # a partial file of another rule is not silently continued
    out.rename(partial)
    with pytest.raises(InputError, match="another rule"):
        write_label_file([store], out, _labeler(root, "full"), progress=False)


def test_a_second_run_on_the_same_output_is_refused_while_one_writes(label_files, tmp_path):
    from avprep.lock import FolderBusyError, folder_lock

    root, store = label_files
    out = tmp_path / "labels.h5"
    with folder_lock(tmp_path, f"pseudo-labels-{out.name}"):  # a run in progress
        with pytest.raises(FolderBusyError, match="use another --out"):
            write_label_file([store], out, _labeler(root), progress=False)
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()
    assert write_label_file([store], out, _labeler(root), progress=False)["clips"] == 5


def test_cli_writes_labels_from_weight_files(label_files, tmp_path):
    root, store = label_files
    out = tmp_path / "labels.h5"
    args = ["pseudo-labels", "--data", str(store), "--out", str(out), "--quiet", "--no-download"]
    args += ["--tagger-weights", str(root / "mobilecrnn_v2.pth")]
    args += ["--vision-weights", str(root / "resnet18.pth")]
    args += [
        "--cluster-a",
        str(root / "cluster_a.npy"),
        "--cluster-v",
        str(root / "cluster_v3.npy"),
    ]
    res = CliRunner().invoke(cli, [*args, "--rule", "full", "--batch-size", "3"])
    assert res.exit_code == 0, res.output
    assert "5 clips: 5 labelled now" in res.output and "rule full" in res.output
    with h5py.File(out, "r") as f:
        assert f.attrs["rule"] == "full" and f["done"][:].all()
    bad = CliRunner().invoke(cli, [*args[:-2], "--cluster-v", str(root / "cluster_a.npy")])
    assert isinstance(bad.exception, InputError) and "expected (1000, 7)" in str(bad.exception)


def test_missing_files_name_the_fetch_command(tmp_path, monkeypatch, label_files):
    root, store = label_files
    monkeypatch.setenv("AVPREP_HOME", str(tmp_path / "home"))
    res = CliRunner().invoke(
        cli,
        ["pseudo-labels", "--data", str(store), "--out", str(tmp_path / "l.h5"), "--no-download"],
    )
    assert res.exit_code != 0
    assert "avmodels weights fetch mssl-cluster-a" in str(res.exception)


# -- the registry entries and their download -------------------------------------------------------
def test_registry_has_the_official_files():
    raw = "https://raw.githubusercontent.com/shvdiwnkozbw/Multi-Source-Sound-Localization/master/"
    tagger = weights.WEIGHTS.get("mobilecrnn-v2")
    assert tagger.url == raw + "mobile_crnn/models/mobilecrnn_v2.pth"
    assert tagger.git_blob_sha1 == "2e31c730e9ab8310ebcc27a5b318ee11745e32e2"
    ca = weights.WEIGHTS.get("mssl-cluster-a")
    assert ca.url == raw + "utils/cluster_a.npy" and ca.size == 14884 and len(ca.sha256) == 64
    cv = weights.WEIGHTS.get("mssl-cluster-v3")
    assert cv.url == raw + "utils/cluster_v3.npy" and cv.size == 56128 and len(cv.sha256) == 64


def test_git_blob_check_against_a_loopback_server(tmp_path, monkeypatch):
    monkeypatch.setenv("AVPREP_HOME", str(tmp_path / "home"))
    srv_root = tmp_path / "srv"
    srv_root.mkdir()
    torch.manual_seed(0)
    torch.save(mobilecrnn_v2().state_dict(), srv_root / "mobilecrnn_v2.pth")
    data = (srv_root / "mobilecrnn_v2.pth").read_bytes()
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # what `git hash-object` says
    spec = weights.WEIGHTS.get("mobilecrnn-v2")
    fake = weights.WeightFile("mobilecrnn-v2", spec.url, git_blob_sha1=blob)
    monkeypatch.setitem(weights.WEIGHTS._items, "mobilecrnn-v2", fake)
    with MediaServer(srv_root) as srv:
        path = weights.fetch("mobilecrnn-v2", mirror=srv.base)
        assert load_tagger(path).outputlayer.weight.shape == (527, 256)
        wrong = weights.WeightFile("mobilecrnn-v2", spec.url, git_blob_sha1="0" * 40)
        monkeypatch.setitem(weights.WEIGHTS._items, "mobilecrnn-v2", wrong)
        with pytest.raises(ChecksumError, match="git blob"):
            weights.fetch("mobilecrnn-v2", mirror=srv.base, force=True)


# -- the fallback is loud -------------------------------------------------------------------------
SMALL = {
    "model": {"backbone": "small", "pretrained": False, "small_width": 8, "small_channels": 32},
    "data": {"image_size": 64},
}


def test_kmeans_fallback_is_announced_in_the_run_record(label_files, tmp_path):
    model = build_method("mssl", merged(SMALL))
    assert any("NOT the paper's labels" in n for n in model.run_notes)
    given = build_method("mssl", merged(SMALL, labels={"file": "labels.h5", "require": True}))
    assert given.run_notes == []
    _, store = label_files
    run = tmp_path / "run"
    res = CliRunner().invoke(
        cli,
        ["train", "mssl", "--data", str(store), "--out", str(run), "--no-progress",
         "--set", "train.max_steps=1", "--set", "train.epochs=1", "--set", "train.batch_size=4",
         "--set", "data.spectrogram=audio", "--set", "model.backbone=small",
         "--set", "model.pretrained=false", "--set", "model.small_width=8",
         "--set", "model.small_channels=32", "--set", "model.proj_hidden=64",
         "--set", "data.image_size=32"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    notes = json.loads((run / "run.json").read_text())["notes"]
    assert "NOT the paper's labels" in notes[0]
