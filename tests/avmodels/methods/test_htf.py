"""Hear-The-Flow on the shared engine: flow attention, paired flow augmentation, learning,
official checkpoints (released .pth and Lightning .ckpt layouts)."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from avmodels.layers.attention import FlowAttention
from avmodels.methods import METHODS, build_method
from avmodels.methods.augment import FrameFlowCrop
from avmodels.methods.htf import HearTheFlow, htf_state_from_official
from avprep.errors import ConfigError, InputError
from avprep.spectrogram import compute
from tests.method_config import merged, one_thread  # noqa: F401 (autouse fixture)

SMALL = {
    "model": {"backbone": "small", "pretrained": False, "small_width": 8, "small_channels": 32}
}


def _cfg(**sections):
    return merged(SMALL, **sections)


def test_registered_with_the_papers_defaults():
    assert METHODS.get("htf") is HearTheFlow
    d = HearTheFlow.defaults
    assert d["optim"]["name"] == "adam" and d["optim"]["lr"] == 1e-3
    assert d["optim"]["weight_decay"] == 0.0
    assert d["train"]["batch_size"] == 128 and d["train"]["epochs"] == 100
    assert d["model"]["pretrained"] is True and d["model"]["freeze_vision"] is True
    assert d["model"]["flowtype"] == "cnn" and d["htf"]["legacy_flow"] is False
    loss = d["loss"]
    assert (loss["eps_pos"], loss["eps_pos"] - 0.25, loss["tau"], loss["temperature"]) == (
        0.65,
        pytest.approx(loss["eps_neg"]),
        0.03,
        0.07,
    )
    assert d["data"]["spectrogram_name"] == "htf" and d["data"]["audio_seconds"] == 3.0


def test_flow_attention_shapes_and_rows_sum_to_one():
    torch.manual_seed(0)
    att = FlowAttention(64, 2)
    img, flow = torch.randn(3, 64, 4, 5), torch.randn(3, 2, 4, 5)
    out, weights = att(img, flow)
    assert out.shape == (3, 64, 4, 5) and weights.shape == (3, 20, 20)
    assert torch.allclose(weights.sum(-1), torch.ones(3, 20), atol=1e-6)
    assert (weights >= 0).all()
    # position p of the output is the attention-weighted sum of the value vectors
    v = att.value_conv(img).flatten(2)
    q = att.query_conv(img).flatten(2)[0, :, 7]
    k = att.key_conv(flow).flatten(2)[0]
    w7 = torch.softmax(q @ k / math.sqrt(8), dim=0)
    torch.testing.assert_close(out.flatten(2)[0, :, 7], v[0] @ w7, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="differs"):
        att(img, torch.randn(3, 2, 2, 2))


def _frame_and_flow(h=40, w=60, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        (3 * rng.standard_normal((2, h, w))).astype(np.float32),
    )


def test_horizontal_flip_of_frame_and_flow_negates_x():
    frame, flow = _frame_and_flow()
    keep, flip = FrameFlowCrop(32, True, p_flip=0.0), FrameFlowCrop(32, True, p_flip=1.0)
    torch.manual_seed(5)
    f0, fl0 = keep(frame, flow)
    torch.manual_seed(5)  # the same crop
    f1, fl1 = flip(frame, flow)
    assert f0.shape == (3, 32, 32) and fl0.shape == (2, 32, 32)
    assert torch.equal(f1, f0.flip(-1))
    assert torch.allclose(fl1[0], -fl0[0].flip(-1))
    assert torch.allclose(fl1[1], fl0[1].flip(-1))
    # legacy (the original): uint8 JPEG flow in [0, 1], flipped without negation
    old_keep = FrameFlowCrop(32, True, legacy=True, p_flip=0.0)
    old_flip = FrameFlowCrop(32, True, legacy=True, p_flip=1.0)
    torch.manual_seed(5)
    _, lg0 = old_keep(frame, flow)
    torch.manual_seed(5)
    _, lg1 = old_flip(frame, flow)
    assert torch.allclose(lg1, lg0.flip(-1))
    assert lg0.min() >= 0 and lg0.max() <= 1


def test_resizing_scales_the_flow_vectors():
    frame = np.zeros((100, 200, 3), dtype=np.uint8)
    flow = np.stack([np.full((100, 200), 3.0), np.full((100, 200), -1.0)]).astype(np.float32)
    _, out = FrameFlowCrop(64, train=False)(frame, flow)  # squash 200x100 -> 64x64
    assert torch.allclose(out[0], torch.full((64, 64), 3.0 * 64 / 200), atol=1e-5)
    assert torch.allclose(out[1], torch.full((64, 64), -1.0 * 64 / 100), atol=1e-5)
    _, legacy = FrameFlowCrop(64, train=False, legacy=True)(frame, flow)
    # the original keeps pixels of the source size and loses negative motion
    assert torch.allclose(legacy[0], torch.full((64, 64), 3 / 255), atol=1 / 255)
    assert torch.all(legacy[1] == 0)


def test_sample_transform_and_on_the_fly_spectrogram():
    frame, flow = _frame_and_flow()
    sr = 22050
    rng = np.random.default_rng(1)
    audio = (0.2 * rng.standard_normal(2 * sr)).astype(np.float32)  # 2 s: tiled to 3 s
    sample = {"clip_id": "v1", "index": 0, "frame": frame, "flow": flow, "audio": audio}
    sample |= {"sample_rate": sr, "frame_time": 1.0, "spectrogram": None}
    model = build_method("htf", _cfg(data={"image_size": 64, "spectrogram": "audio"}))
    assert model.required_inputs() == ("frame", "audio", "flow")
    out = model.sample_transform(train=True)(sample)
    assert out["frame"].shape == (3, 64, 64) and out["flow"].shape == (2, 64, 64)
    assert out["spectrogram"].shape == (1, 257, 276)
    tiled = np.tile(audio, 2)[: 3 * sr]
    np.testing.assert_allclose(out["spectrogram"][0].numpy(), compute("htf", tiled, sr), atol=1e-5)
    stored = build_method("htf", _cfg(data={"image_size": 64}))
    assert stored.required_inputs() == ("frame", "spectrogram", "flow")
    spec = compute("htf", tiled, sr)
    ev = stored.sample_transform(train=False)(dict(sample, spectrogram=spec))
    assert torch.equal(ev["spectrogram"][0], torch.from_numpy(spec))
    legacy = build_method("htf", _cfg(data={"image_size": 64}, htf={"legacy_flow": True}))
    lg = legacy.sample_transform(train=False)(dict(sample, spectrogram=spec))
    assert lg["flow"].min() >= 0


@pytest.mark.parametrize(("flowtype", "size", "side"), [("cnn", 224, 7), ("maxpool", 128, 4)])
def test_resnet_maps_follow_the_image_size(flowtype, size, side):
    model = build_method("htf", {"model": {"pretrained": False, "flowtype": flowtype}}).eval()
    batch = {
        "frame": torch.rand(2, 3, size, size),
        "flow": torch.randn(2, 2, size, size),
        "spectrogram": torch.randn(2, 1, 257, 276),
    }
    with torch.no_grad():
        assert model.localization_map(batch).shape == (2, side, side)


def test_frozen_vision_and_batchnorm_modes():
    model = build_method("htf", _cfg(data={"image_size": 64}))
    assert not any(p.requires_grad for p in model.vision.parameters())
    trainable = {id(p) for g in model.build_optimizer().param_groups for p in g["params"]}
    assert not any(id(p) in trainable for p in model.vision.parameters())
    assert all(id(p) in trainable for p in model.audio.parameters())
    batch = _moving_batch(n=4, size=64)
    bn = next(m for m in model.vision.modules() if isinstance(m, nn.BatchNorm2d))
    before = bn.running_mean.clone()
    model.train().training_losses(batch)
    assert not torch.equal(bn.running_mean, before)  # as the original: BN stats still move
    frozen = build_method("htf", _cfg(data={"image_size": 64}, model={"vision_bn": "eval"}))
    bn = next(m for m in frozen.vision.modules() if isinstance(m, nn.BatchNorm2d))
    before = bn.running_mean.clone()
    frozen.train().training_losses(batch)
    assert torch.equal(bn.running_mean, before) and frozen.audio.training
    with pytest.raises(ConfigError):
        build_method("htf", _cfg(model={"flowtype": "rnn"}))


def _moving_batch(n=6, size=32, n_classes=4, seed=0):
    """Two coloured squares a frame; the sounding one moves (flow) and sets the audio band."""
    g = torch.Generator().manual_seed(seed)
    colours = torch.rand(n_classes, 3, generator=g)
    frames = 0.1 * torch.rand(n, 3, size, size, generator=g)
    flows = 0.05 * torch.randn(n, 2, size, size, generator=g)
    specs = 0.1 * torch.randn(n, 1, 32, 32, generator=g)
    side = size // 2
    for i in range(n):
        cls = torch.randperm(n_classes, generator=g)[:2]
        spots = [(0, 0), (side, side)] if i % 2 else [(0, side), (side, 0)]
        for k, (y, x) in enumerate(spots):
            frames[i, :, y : y + side, x : x + side] = colours[cls[k], :, None, None]
        y, x = spots[0]
        flows[i, 0, y : y + side, x : x + side] += 2.0  # the sounding object moves right
        specs[i, 0, 4 * cls[0] : 4 * cls[0] + 4, :] += 1.0
    return {"frame": frames, "flow": flows, "spectrogram": specs}


def test_a_few_cpu_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = build_method("htf", _cfg(data={"image_size": 32}, model={"freeze_vision": False}))
    model.train()
    batch = _moving_batch()
    opt = model.build_optimizer()

    def loss_now():
        with torch.no_grad():
            return model.training_losses(batch)["loss"].item()

    before = loss_now()
    for _ in range(10):
        opt.zero_grad()
        model.training_losses(batch)["loss"].backward()
        opt.step()
    after = loss_now()
    assert after < before - 0.3, (before, after)
    maps, losses = model.eval().evaluation_step(batch, with_loss=True)
    assert maps.shape == (6, 4, 4) and torch.isfinite(losses["loss"])


# -- official checkpoints ------------------------------------------------------
class _OfficialAttn(nn.Module):
    """The parameters and arithmetic of HTF's ``Self_Attn`` (written for this test)."""

    def __init__(self, in_dim, key_in_dim):
        super().__init__()
        self.query_conv = nn.Conv2d(in_dim, in_dim // 8, 1)
        self.key_conv = nn.Conv2d(key_in_dim, in_dim // 8, 1)
        self.value_conv = nn.Conv2d(in_dim, in_dim, 1)

    def forward(self, x, v):
        b, c, h, w = x.shape
        q = self.query_conv(x).view(b, -1, h * w).permute(0, 2, 1)
        k = self.key_conv(v).view(b, -1, h * w)
        att = torch.softmax(torch.bmm(q, k) / math.sqrt(c // 8), dim=-1)
        return torch.bmm(self.value_conv(x).view(b, -1, h * w), att.permute(0, 2, 1)).view(
            b, c, h, w
        )


class _OfficialHTF(nn.Module):
    """``HearTheFlowVSSLModel``'s key layout: torchvision ResNet-18s with swapped layers."""

    def __init__(self, flowtype="cnn", side=7):
        super().__init__()
        self.side = side
        self.imgnet = torchvision.models.resnet18(weights=None)
        self.imgnet.avgpool, self.imgnet.fc = nn.Identity(), nn.Identity()
        self.audnet = torchvision.models.resnet18(weights=None)
        self.audnet.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        self.audnet.avgpool, self.audnet.fc = nn.AdaptiveMaxPool2d((1, 1)), nn.Identity()
        if flowtype == "cnn":
            self.flownet = torchvision.models.resnet18(weights=None)
            self.flownet.conv1 = nn.Conv2d(2, 64, 7, 2, 3, bias=False)
            self.flownet.avgpool, self.flownet.fc = nn.Identity(), nn.Identity()
            self.flowatt = _OfficialAttn(512, 512)
        else:
            self.flownet = nn.AdaptiveMaxPool2d((side, side))
            self.flowatt = _OfficialAttn(512, 2)
        self.flowtype = flowtype

    def forward(self, image, flow, audio):
        img = self.imgnet(image).view(-1, 512, self.side, self.side)
        aud = F.normalize(self.audnet(audio), dim=1)
        flow = self.flownet(flow)
        if self.flowtype == "cnn":
            flow = flow.view(-1, 512, self.side, self.side)
        img = F.normalize(img + self.flowatt(img, flow), dim=1)
        return torch.einsum("nchw,nc->nhw", img, aud)


def _randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
    return model.eval()


@pytest.mark.parametrize(("layout", "flowtype"), [("pth", "cnn"), ("ckpt", "maxpool")])
def test_official_checkpoints_import_and_give_the_same_maps(tmp_path, layout, flowtype):
    from avmodels.engine.checkpoint import build_model
    from avmodels.importers import import_checkpoint

    torch.manual_seed(0)
    official = _randomise(_OfficialHTF(flowtype, side=3), 1)
    state = official.state_dict()
    if layout == "pth":
        path = tmp_path / "flickr.pth"
        torch.save({"model": state}, path)
    else:  # what PyTorch Lightning writes for HearTheFlowModule (self.model = ...)
        path = tmp_path / "best.ckpt"
        args = argparse.Namespace(lr=0.001, flowtype=flowtype, trimap=1, epsilon=0.65)
        torch.save(
            {
                "epoch": 7,
                "global_step": 560,
                "pytorch-lightning_version": "1.8.6",
                "state_dict": {"model." + k: v for k, v in state.items()},
                "hyper_parameters": {"args": args},
                "optimizer_states": [{"state": {}, "param_groups": []}],
                "lr_schedulers": [],
                "callbacks": {"ModelCheckpoint": {"best_model_score": torch.tensor(0.7)}},
            },
            path,
        )
    out = import_checkpoint("htf", {"ckpt": path}, tmp_path / "model.pt")
    model, meta = build_model(out)
    assert meta["method"] == "htf" and model.cfg["model"]["flowtype"] == flowtype
    image, flow = torch.rand(2, 3, 96, 96), torch.randn(2, 2, 96, 96)
    audio = torch.randn(2, 1, 64, 50)
    with torch.no_grad():
        ours = model.localization_map({"frame": image, "flow": flow, "spectrogram": audio})
        theirs = official(image, flow, audio)
    assert ours.shape == (2, 3, 3)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_import_rejects_other_layouts():
    with pytest.raises(InputError, match="unexpected key"):
        htf_state_from_official({"encoder.weight": torch.zeros(1)})
    state = {"model.imgnet.conv1.weight": torch.zeros(64, 3, 7, 7)}
    assert set(htf_state_from_official(state)) == {"vision.conv1.weight"}
    with pytest.raises(InputError, match="missing"):
        HearTheFlow.from_official({"flowatt.key_conv.weight": torch.zeros(64, 512, 1, 1), **state})


def test_trains_through_the_engine_from_shards_with_flow(tmp_path):
    """The engine reads frame, stored spectrogram and signed float16 flow from a native
    shard and trains HTF with no method-specific code."""
    from avmodels.engine.checkpoint import build_model
    from avmodels.engine.train import TrainRequest, train
    from avprep.store.pack import pack
    from tests.store_fixtures import make_extract_dir

    ext, ids = make_extract_dir(
        tmp_path / "ext",
        8,
        frame_size=(48, 64),
        sample_rate=22050,
        spect_shape=(257, 276),
        spect_name="htf",
        flow=True,
        profile="htf",
    )
    pack(ext, tmp_path / "store", "train", jobs=1, progress=False)
    sets = [
        "model.backbone=small",
        "model.pretrained=false",
        "model.small_width=8",
        "model.small_channels=32",
        "data.image_size=32",
        "train.batch_size=4",
        "train.epochs=1",
        "train.num_workers=0",
        "eval.every=0",
    ]
    result = train(
        TrainRequest(
            "htf", [str(tmp_path / "store")], str(tmp_path / "run"), sets=sets, progress=False
        )
    )
    assert result.steps == 2
    model, meta = build_model(tmp_path / "run" / "final.pt")
    assert meta["method"] == "htf" and model.cfg["data"]["image_size"] == 32
    sample = {"clip_id": ids[0], "frame": np.zeros((48, 64, 3), np.uint8)}
    sample |= {"flow": np.zeros((2, 48, 64), np.float32), "spectrogram": np.zeros((257, 276))}
    batch = torch.utils.data.default_collate([model.sample_transform(False)(sample)])
    with torch.no_grad():
        assert model.localization_map(batch).shape == (1, 4, 4)


def test_imagenet_weights_load_into_vision_and_flow_streams(tmp_path):
    tv = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(tv.state_dict(), path)
    cfg = {"model": {"pretrained": True, "pretrained_path": str(path)}}
    model = build_method("htf", cfg)
    ref = tv.state_dict()
    for name, value in model.vision.state_dict().items():
        assert torch.equal(value, ref[name]), name
    assert torch.equal(model.flow.layer3[1].conv2.weight, ref["layer3.1.conv2.weight"])
    assert model.flow.conv1.weight.shape == (64, 2, 7, 7)  # fresh, as the original
    assert not torch.equal(model.audio.layer1[0].conv1.weight, ref["layer1.0.conv1.weight"])
    torch.save({"fc.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(InputError, match="not a torchvision ResNet-18"):
        build_method(
            "htf", {"model": {"pretrained": True, "pretrained_path": str(tmp_path / "bad.pth")}}
        )


def test_the_papers_test_lists_are_selectable_by_name(shared_metadata, tmp_path, monkeypatch):
    """``avmodels eval --ids htf/flickr-test-trimmed`` (and the 1,666 / 4,670 lists)."""
    import shutil

    from avprep.annotations.idlist import read_ids

    mirror = tmp_path / "mirror"
    (mirror / "htf").mkdir(parents=True)
    for name in ("flickr_test_trimmed", "flickr_test_expanded", "vggss_test_trimmed"):
        target = name.replace("_", "-", 2).replace("_", "-") + ".csv"
        shutil.copy(shared_metadata / "htf" / f"{name}.csv", mirror / "htf" / target)
    monkeypatch.setenv("AVPREP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AVPREP_METADATA_MIRROR", str(mirror))
    trimmed = read_ids("htf/flickr-test-trimmed")
    assert len(trimmed) == 178 and trimmed[0] == "10000130166"
    assert len(read_ids("htf/flickr-test-expanded")) == 1666
    vggss = read_ids("vggss/test-4670")  # the alias of htf/vggss-test-trimmed
    assert len(vggss) == 4670 and vggss[0] == "zpWuikVorYg_000032"
