"""Multi-Source (coarse to fine) on the shared engine: shapes, losses, maps, pseudo labels,
the two stages (stage 2 from a stage-1 model), and checkpoints of the original code."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from avmodels.engine.checkpoint import save_model
from avmodels.methods import METHODS, build_method
from avmodels.methods.mssl import (
    MultiSource,
    balanced_pair_loss,
    cam_pool,
    combine_classes,
    distance_loss,
    effective_pairs,
    mssl_state_from_original,
    pair_logits,
)
from avmodels.methods.pseudo_labels import OnlineKMeans, read_labels, write_labels
from avprep.errors import ConfigError, InputError
from avprep.spectrogram import compute
from tests.method_config import merged, one_thread  # noqa: F401 (autouse fixture)

SMALL = {
    "model": {
        "backbone": "small",
        "pretrained": False,
        "small_width": 8,
        "small_channels": 32,
        "proj_hidden": 64,
    },
    "data": {"image_size": 64},
}


def _cfg(**sections):
    return merged(SMALL, **sections)


def _batch(b=4, size=64, seed=0, labels=True):
    g = torch.Generator().manual_seed(seed)
    batch = {
        "frame": torch.randn(b, 3, size, size, generator=g),
        "spectrogram": torch.randn(b, 1, 251, 64, generator=g),
    }
    if labels:
        batch["labels"] = (torch.rand(b, 2, 7, generator=g) > 0.6).float()
        batch["label_mask"] = torch.ones(b)
    return batch


def test_registered_with_the_papers_defaults():
    assert METHODS.get("mssl") is MultiSource
    d = MultiSource.defaults
    assert d["optim"]["name"] == "sgd" and d["optim"]["momentum"] == 0.9
    assert d["optim"]["weight_decay"] == 5e-4 and d["optim"]["lr"] is None
    assert (d["train"]["batch_size"], d["train"]["epochs"], d["train"]["stage"]) == (16, 20, 1)
    assert d["model"]["pretrained"] is True and d["model"]["num_classes"] == 7
    assert (d["model"]["avc_hidden"], d["model"]["proj_hidden"], d["model"]["embed_dim"]) == (
        128,
        1024,
        128,
    )
    assert (d["mssl"]["prob_threshold"], d["mssl"]["margin"]) == (0.3, 1.4)
    assert d["data"]["image_size"] == 256 and d["data"]["spectrogram_name"] == "mssl"
    assert MultiSource.profile == "mssl"
    for stage, lr in ((1, 1e-3), (2, 1e-4)):
        model = build_method("mssl", _cfg(train={"stage": stage}))
        opt = model.build_optimizer()
        assert isinstance(opt, torch.optim.SGD)
        group = opt.param_groups[0]
        assert (group["lr"], group["momentum"], group["weight_decay"]) == (lr, 0.9, 5e-4)
        trained = {id(p) for g in opt.param_groups for p in g["params"]}
        # the projections are trained in stage 2 only
        assert (id(model.project_a[0].weight) in trained) == (stage == 2)
        assert id(model.class_v.weight) in trained and id(model.avc[0].weight) in trained
    explicit = build_method("mssl", _cfg(train={"stage": 2}, optim={"lr": 0.05}))
    assert explicit.build_optimizer().param_groups[0]["lr"] == 0.05


@pytest.mark.parametrize(("size", "side"), [(256, 16), (128, 8)])
def test_resnet_streams_and_maps_follow_the_image_size(size, side):
    torch.manual_seed(0)
    model = build_method(
        "mssl",
        {"model": {"pretrained": False}, "train": {"stage": 2}, "data": {"image_size": size}},
    ).eval()
    batch = _batch(b=1, size=size, labels=False)
    with torch.no_grad():
        enc = model.encode(batch)
        maps = model.localization_map(batch)
        per_class = model.class_maps(batch)
    # layer4 stride 1: 512 maps at 1/16 of the frame; the (251, 64) log-mel -> 16 x 4
    assert enc["feat_v"].shape == (1, 512, side, side)
    assert enc["feat_a"].shape == (1, 512, 16, 4)
    assert enc["cls_a"].shape == enc["cls_v"].shape == (1, 7)
    assert maps.shape == (1, side, side) and per_class.shape == (1, 7, side, side)
    assert torch.isfinite(maps).all() and (per_class >= 0).all()
    # the stage-1 (coarse) map is the visual CAM, same grid
    model.stage = 1
    with torch.no_grad():
        assert model.localization_map(batch).shape == (1, side, side)


def test_pair_head_and_balanced_pair_loss():
    torch.manual_seed(0)
    head = torch.nn.Sequential(torch.nn.Linear(16, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    aud, img = torch.randn(3, 8), torch.randn(3, 8)
    logits = pair_logits(head, aud, img)
    # the original concatenates [a_i, v_j] for every pair
    cat = torch.cat([aud[:, None].expand(3, 3, 8), img[None].expand(3, 3, 8)], dim=2)
    torch.testing.assert_close(logits, head(cat), atol=1e-6, rtol=1e-6)

    ce = F.cross_entropy(logits.reshape(-1, 2), torch.eye(3).long().reshape(-1), reduction="none")
    ce = ce.reshape(3, 3)
    diag = ce.diagonal().mean()
    off = ce[~torch.eye(3, dtype=torch.bool)].mean()
    torch.testing.assert_close(balanced_pair_loss(logits), diag / 2 + off / 2)
    # balanced: 3 matched pairs weigh as much as 6 mismatched ones
    assert balanced_pair_loss(torch.zeros(4, 4, 2)).item() == pytest.approx(math.log(2))
    right = torch.where(torch.eye(4, dtype=torch.bool)[..., None], 1.0, -1.0) * torch.tensor(
        [-10.0, 10.0]
    )
    assert balanced_pair_loss(right).item() < 1e-4
    assert balanced_pair_loss(-right).item() > 10
    single = balanced_pair_loss(torch.tensor([[[0.0, 2.0]]]))
    assert math.isfinite(single.item())  # a batch of one has no mismatched pair


def _unit(x):
    return F.normalize(x, dim=1)


def test_distance_loss_is_zero_when_the_margin_holds_and_gradients_stay_finite():
    # 2 samples x 1 class: matched pairs identical (d = 0), unmatched orthogonal (d = 2,
    # sqrt 2 > 1.4): nothing to pull or push
    e = torch.eye(4)
    fine_a = e[:2, :, None].clone().requires_grad_(True)  # (B=2, D=4, K=1)
    fine_v = e[:2, :, None].clone().requires_grad_(True)
    eff = torch.ones(2, 2)
    loss, pos, neg = distance_loss(fine_a, fine_v, eff)
    assert loss.item() == pytest.approx(0.0, abs=1e-6) and pos.item() == pytest.approx(0, abs=1e-6)
    assert neg.item() == 0.0
    loss.backward()  # sqrt at d = 0 on the diagonal: the original's gradient is NaN here
    assert torch.isfinite(fine_a.grad).all() and torch.isfinite(fine_v.grad).all()

    # unmatched pair closer than the margin: pushed with (1.4 - sqrt d)^2
    v1 = _unit(torch.tensor([[1.0, 1.0, 0.0, 0.0]]))
    fine_v = torch.stack([e[0], v1[0]])[:, :, None]
    _, pos, neg = distance_loss(e[:2, :, None], fine_v, eff)
    d01 = 2 - 2 * float(e[0] @ v1[0])  # a_0 vs v_1
    d10 = 2 - 2 * float(e[1] @ v1[0])  # a_1 vs v_1 is the matched pair
    assert pos.item() == pytest.approx(d10 / 2, rel=1e-5)
    expected_neg = (max(0.0, 1.4 - math.sqrt(d01)) ** 2 + 0.0) / 2  # a_1 vs v_0: d = 2
    assert neg.item() == pytest.approx(expected_neg, rel=1e-5)


def test_distance_loss_pulls_matched_and_pushes_unmatched():
    torch.manual_seed(0)
    base = torch.randn(3, 16, 1)
    a = torch.nn.Parameter(base + 0.5 * torch.randn(3, 16, 2))
    v = torch.nn.Parameter(base + 0.5 * torch.randn(3, 16, 2))
    eff = torch.ones(6, 6)

    def dists():
        with torch.no_grad():
            fa, fv = _unit(a).permute(0, 2, 1).reshape(6, 16), _unit(v).permute(0, 2, 1)
            d = 2 - 2 * fa @ fv.reshape(6, 16).t()
        eye = torch.eye(6, dtype=torch.bool)
        return d[eye].mean().item(), d[~eye].mean().item()

    pos0, neg0 = dists()
    opt = torch.optim.SGD([a, v], lr=0.5)
    for _ in range(30):
        loss, _, _ = distance_loss(_unit(a), _unit(v), eff)
        opt.zero_grad()
        loss.backward()
        opt.step()
    pos1, neg1 = dists()
    assert pos1 < pos0 / 2 and neg1 > neg0
    # pairs outside the effective set do not count
    eff_one = torch.zeros(6, 6)
    eff_one[0, 0] = 1
    only, _, neg = distance_loss(_unit(a), _unit(v), eff_one)
    assert neg.item() == 0.0
    assert only.item() == pytest.approx(dists_00(a, v), rel=1e-4)


def dists_00(a, v):
    with torch.no_grad():
        return float(2 - 2 * _unit(a)[0, :, 0] @ _unit(v)[0, :, 0])


def test_effective_pairs_cam_pool_and_class_combination():
    prob_a = torch.tensor([[0.9, 0.1], [0.2, 0.5]])
    prob_v = torch.tensor([[0.4, 0.31], [0.3, 0.0]])
    eff = effective_pairs(prob_a, prob_v, 0.3)
    # rows: audio (0,0) (0,1) (1,0) (1,1); columns: visual likewise; > 0.3 strictly
    assert eff.tolist() == [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0]]

    feat = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)
    cam = torch.zeros(1, 2, 3, 4)
    cam[0, 0, 1, 2] = 5.0  # class 0 looks at one position
    cam[0, 1] = 1.0  # class 1 everywhere
    pooled = cam_pool(feat, cam) * 12  # the original's mean over the 12 positions
    torch.testing.assert_close(pooled[0, :, 0], feat[0, :, 1, 2])
    torch.testing.assert_close(pooled[0, :, 1], feat[0].flatten(1).mean(1))

    maps = torch.stack([torch.full((2, 2), 1.0), torch.full((2, 2), 3.0), torch.zeros(2, 2)])[None]
    logits = torch.tensor([[2.0, -0.5, -3.0]])  # sigmoid: 0.88, 0.38, 0.05
    p = torch.sigmoid(logits)[0]
    aware = combine_classes(maps, logits, "class_aware", 0.3)
    expected = (p[0] * 1 + p[1] * 3) / (p[0] + p[1])
    torch.testing.assert_close(aware, torch.full((1, 2, 2), float(expected)))
    # the original's second sigmoid puts every class above 0.5: all three count, max-normalised
    torch.testing.assert_close(combine_classes(maps, logits, "original"), torch.ones(1, 2, 2))
    torch.testing.assert_close(combine_classes(maps, logits, "sum"), torch.full((1, 2, 2), 4.0))
    # the most probable class always counts, even below the threshold
    low = combine_classes(maps, torch.tensor([[-3.0, -2.0, -4.0]]), "class_aware", 0.3)
    torch.testing.assert_close(low, torch.full((1, 2, 2), 3.0))


def _store_sample(seed=0, clip="c0", size=80):
    rng = np.random.default_rng(seed)
    wave = (0.3 * rng.standard_normal(22050 * 5)).astype(np.float32)
    return {
        "clip_id": clip,
        "index": seed,
        "frame": rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8),
        "audio": wave,
        "sample_rate": 22050,
        "spectrogram": compute("mssl", wave, 22050),
        "frame_time": 2.5,
    }


def test_sample_transform_labels_and_spectrogram_sources(tmp_path):
    sample = _store_sample()
    model = build_method("mssl", _cfg())
    out = model.sample_transform(train=False)(sample)
    assert out["frame"].shape == (3, 64, 64) and out["spectrogram"].shape == (1, 251, 64)
    assert out["label_mask"].item() == 0.0 and out["labels"].shape == (2, 7)
    flip = build_method("mssl", _cfg(augment={"hflip": 1.0})).sample_transform(train=True)
    torch.testing.assert_close(flip(sample)["frame"], torch.flip(out["frame"], dims=[-1]))
    # on the fly from the stored audio: the same front end, same numbers
    fly = build_method("mssl", _cfg(data={"spectrogram": "audio", "image_size": 64}))
    assert fly.required_inputs() == ("frame", "audio")
    torch.testing.assert_close(
        fly.sample_transform(False)(sample)["spectrogram"], out["spectrogram"]
    )
    # the original's test loader divides the wave by its peak first
    peak = build_method(
        "mssl", _cfg(data={"spectrogram": "audio", "image_size": 64, "peak_normalize": "test"})
    )
    wave = sample["audio"] / (np.abs(sample["audio"]).max() + np.spacing(1))
    want = torch.from_numpy(compute("mssl", wave.astype(np.float32), 22050))[None]
    torch.testing.assert_close(peak.sample_transform(False)(sample)["spectrogram"], want)
    torch.testing.assert_close(
        peak.sample_transform(True)(sample)["spectrogram"], out["spectrogram"]
    )

    # labels from a file (npz or json), from the sample, or missing
    a = np.zeros((2, 7), np.float32)
    a[0, 3], a[1, 5] = 1.0, 0.7
    npz = write_labels(tmp_path / "labels.npz", ["c0", "c1"], a, a[::-1].copy())
    tf = build_method("mssl", _cfg(labels={"file": str(npz)})).sample_transform(train=True)
    got = tf(sample)
    assert got["label_mask"].item() == 1.0
    np.testing.assert_array_equal(got["labels"].numpy(), np.stack([a[0], a[1]]))
    assert tf(_store_sample(clip="zz"))["label_mask"].item() == 0.0  # not in the file
    js = tmp_path / "labels.json"
    js.write_text(json.dumps({"c0": [0, 1, 0, 0, 0, 0, 0.5]}))
    assert read_labels(js, 7)["c0"].tolist()[1] == [0, 1, 0, 0, 0, 0, 0.5]
    own = tf({**sample, "labels_a": np.eye(7)[2], "labels_v": np.eye(7)[4]})
    assert own["labels"].argmax(1).tolist() == [2, 4]  # sample fields win over the file

    strict = build_method("mssl", _cfg(labels={"file": str(npz), "require": True}))
    with pytest.raises(InputError, match="no pseudo label"):
        strict.sample_transform(train=True)(_store_sample(clip="zz"))
    js.write_text(json.dumps({"c0": [0, 2, 0, 0, 0, 0, 0]}))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        read_labels(js, 7)
    with pytest.raises(InputError, match="7 classes"):
        tf({**sample, "labels": np.ones(5)})
    with pytest.raises(InputError, match="not found"):
        read_labels(tmp_path / "none.npz", 7)


def test_bad_config_values_are_config_errors():
    for patch, match in [
        ({"train": {"stage": 3}}, "stage"),
        ({"mssl": {"map": "max"}}, "mssl.map"),
        ({"labels": {"fallback": "random"}}, "labels.fallback"),
        ({"data": {"peak_normalize": "test", "image_size": 64}}, "spectrogram=audio"),
    ]:
        with pytest.raises(ConfigError, match=match):
            build_method("mssl", _cfg(**patch))


def test_online_kmeans_finds_clusters_and_reseeds_dead_ones():
    torch.manual_seed(0)
    centres = F.normalize(torch.randn(3, 8), dim=1) * 4
    km = OnlineKMeans(3, 8, momentum=0.5)
    assert (km.assign(torch.randn(4, 8)) == -1).all()  # not initialised yet
    for _ in range(20):
        who = torch.randint(0, 3, (24,))
        km.update(centres[who] + 0.3 * torch.randn(24, 8))
    who = torch.arange(3).repeat(5)
    got = km.assign(centres[who] + 0.3 * torch.randn(15, 8))
    # the same blob -> the same cluster, different blobs -> different clusters
    mapping = {int(w): int(g) for w, g in zip(who, got, strict=True)}
    assert len(set(mapping.values())) == 3
    assert all(mapping[int(w)] == int(g) for w, g in zip(who, got, strict=True))
    # a cluster nobody joins any more is re-seeded from the batch
    for _ in range(10):
        km.update(centres[0] + 0.01 * torch.randn(8, 8))
    assert (km.usage >= 0.1 / 3).all()


def test_label_fallbacks_in_the_losses():
    batch = _batch(labels=False)
    torch.manual_seed(0)
    none = build_method("mssl", _cfg(labels={"fallback": "none"})).train()
    out = none.training_losses(batch)
    assert out["loss_cls_a"].item() == 0.0 and out["loss_cls_v"].item() == 0.0
    km = build_method("mssl", _cfg()).train()
    out = km.training_losses(batch)
    assert out["loss_cls_a"].item() > 0 and bool(km.kmeans.ready)
    lab_a, lab_v, w = km._targets(batch, km.encode(batch))
    # one cluster for the pair: audio and visual share the category
    torch.testing.assert_close(lab_a, lab_v)
    assert (lab_a.sum(1) == 1).all() and (w == 1).all()
    # given labels are kept as they are
    labelled = _batch()
    lab_a, lab_v, w = km._targets(labelled, km.encode(labelled))
    torch.testing.assert_close(lab_a, labelled["labels"][:, 0])


def _steps(model, batch, n, lr):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=0.9)
    losses = []
    model.train()
    for _ in range(n):
        out = model.training_losses(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append({k: float(v.detach()) for k, v in out.items()})
    return losses


def test_a_few_cpu_steps_reduce_the_loss_in_both_stages(tmp_path):
    batch = _batch(b=4, seed=1)
    torch.manual_seed(0)
    stage1 = build_method("mssl", _cfg())
    losses = _steps(stage1, batch, 6, lr=0.05)
    assert losses[-1]["loss"] < losses[0]["loss"]
    assert all(math.isfinite(v) for row in losses for v in row.values())

    # stage 2 starts from the stage-1 model file and keeps its weights
    path = save_model(tmp_path / "stage1.pt", stage1.eval(), stage1.cfg)
    stage2 = build_method(
        "mssl",
        _cfg(
            train={"stage": 2}, model={**SMALL["model"], "pretrained": True, "init_from": str(path)}
        ),
    )
    for key in ("vision.body.0.weight", "audio.body.0.weight", "avc.0.weight", "class_a.weight"):
        torch.testing.assert_close(stage2.state_dict()[key], stage1.state_dict()[key])
    assert stage2.project_a[0].weight.requires_grad
    losses = _steps(stage2, batch, 6, lr=0.05)
    assert "loss_dist" in losses[0]
    assert losses[-1]["loss"] < losses[0]["loss"]
    assert losses[-1]["loss_dist"] < losses[0]["loss_dist"]

    stage2.eval()
    with torch.no_grad():
        maps, val = stage2.evaluation_step(batch, with_loss=True)
        single = stage2.localization_map({k: v[:1] for k, v in batch.items()})
    torch.testing.assert_close(maps, stage2.localization_map(batch))
    torch.testing.assert_close(single[0], maps[0], atol=1e-5, rtol=1e-5)
    assert set(val) >= {"loss", "loss_avc", "loss_dist"}


def test_init_from_checks_the_file_and_is_skipped_without_pretrained(tmp_path):
    other = build_method("mssl", _cfg(model={**SMALL["model"], "small_channels": 16}))
    path = save_model(tmp_path / "other.pt", other, other.cfg)
    with pytest.raises(InputError, match="not a stage-1 model"):
        build_method(
            "mssl",
            _cfg(
                train={"stage": 2},
                model={**SMALL["model"], "pretrained": True, "init_from": str(path)},
            ),
        )
    with pytest.raises(InputError, match="not found"):
        build_method(
            "mssl",
            _cfg(
                train={"stage": 2},
                model={**SMALL["model"], "pretrained": True, "init_from": str(tmp_path / "x")},
            ),
        )
    # model files carry every weight: the engine rebuilds them with pretrained=false
    build_method(
        "mssl", _cfg(train={"stage": 2}, model={**SMALL["model"], "init_from": str(tmp_path / "x")})
    )


def _as_original(state):
    """Our ResNet-18 state in new/main.py's layout (what a model trained there saves)."""
    out = {}
    for key, value in state.items():
        if key.startswith("kmeans."):
            continue
        if key.startswith("audio.conv1."):
            key = "audio.conv1_a." + key[len("audio.conv1.") :]
        out[key] = value
    # each of its ResNets also holds the other modality's first conv and an unused fc
    out["vision.conv1_a.weight"] = torch.zeros(64, 1, 7, 7)
    out["audio.conv1.weight"] = torch.zeros(64, 3, 7, 7)
    for net in ("vision", "audio"):
        out[f"{net}.fc.weight"], out[f"{net}.fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    return out


@pytest.mark.slow
def test_checkpoints_of_the_original_code_load_and_give_the_same_maps(tmp_path):
    torch.manual_seed(0)
    cfg = {"model": {"pretrained": False}, "train": {"stage": 2}, "data": {"image_size": 64}}
    ours = build_method("mssl", cfg).eval()
    original = _as_original(ours.state_dict())
    assert set(mssl_state_from_original(original)) == {
        k for k in ours.state_dict() if not k.startswith("kmeans.")
    }
    loaded = MultiSource.from_original(original, cfg).eval()
    batch = _batch(b=2, size=64, labels=False)
    with torch.no_grad():
        torch.testing.assert_close(loaded.localization_map(batch), ours.localization_map(batch))
    # a stage-1 state dict of the original (no projections) initialises stage 2
    stage1 = {k: v for k, v in original.items() if not k.startswith("project_")}
    torch.save(stage1, tmp_path / "stage_1_19_0.123.pth")
    again = build_method(
        "mssl",
        {
            **cfg,
            "model": {"pretrained": True, "init_from": str(tmp_path / "stage_1_19_0.123.pth")},
        },
    )
    torch.testing.assert_close(again.audio.conv1.weight, ours.audio.conv1.weight)
    with pytest.raises(InputError, match="stage-2"):
        MultiSource.from_original(stage1, cfg)


def test_smoke_sample_batches_through_the_transforms():
    model = build_method("mssl", _cfg())
    tf = model.sample_transform(train=True)
    batch = default_collate([tf(model.smoke_sample(i)) for i in range(2)])
    assert batch["spectrogram"].shape == (2, 1, 251, 64) and batch["labels"].shape == (2, 2, 7)


def test_stage_two_under_bf16_autocast_stays_finite():
    torch.manual_seed(0)
    model = build_method("mssl", _cfg(train={"stage": 2})).train()
    batch = _batch(b=3, seed=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.training_losses(batch)
        maps = model.eval().localization_map(batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and torch.isfinite(maps).all()
    assert out["loss_dist"].dtype == torch.float32
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
