"""SSL-TIE on the shared engine: config, shapes, data path, learning, official checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.data import default_collate

from avmodels.methods import METHODS, build_method
from avmodels.methods.ssl_tie import SslTie, ssl_tie_state_from_official
from avprep.errors import ConfigError, InputError
from avprep.spectrogram import compute
from tests.method_config import merged, one_thread  # noqa: F401 (autouse fixture)

SMALL = {"model": {"backbone": "small", "small_width": 8, "small_channels": 32}}


def _cfg(**sections):
    return merged(SMALL, **sections)


def test_registered_with_the_papers_defaults():
    assert METHODS.get("ssl-tie") is SslTie
    d = SslTie.defaults
    assert d["optim"] == {"name": "adam", "lr": 1e-4, "weight_decay": 1e-4, "scheduler": "constant"}
    assert d["train"]["batch_size"] == 32 and d["train"]["epochs"] == 100
    assert d["equivariance"]["max_angle"] == 30 and d["equivariance"]["scales"] == [1.0, 0.5]
    assert d["equivariance"]["weight"] == 1.0 and d["equivariance"]["consistency"] == "mse"
    assert (d["loss"]["eps_pos"], d["loss"]["eps_neg"], d["loss"]["tau"]) == (0.65, 0.4, 0.03)
    assert d["loss"]["temperature"] == 0.07
    assert d["augment"]["image"] == "moco_v2" and d["augment"]["crop_scale"] == [0.3, 1.0]
    assert (d["augment"]["time_mask"], d["augment"]["freq_mask"]) == (180, 35)
    assert d["model"]["pretrained"] is False
    opt = build_method("ssl-tie", SMALL).build_optimizer()
    assert isinstance(opt, torch.optim.Adam)
    assert opt.param_groups[0]["lr"] == 1e-4 and opt.param_groups[0]["weight_decay"] == 1e-4


@pytest.mark.parametrize(("size", "side"), [(224, 14), (128, 8)])
def test_resnet_map_follows_the_image_size(size, side):
    model = build_method("ssl-tie").eval()
    batch = {"frame": torch.rand(2, 3, size, size), "spectrogram": torch.randn(2, 1, 257, 120)}
    with torch.no_grad():
        assert model.localization_map(batch).shape == (2, side, side)
    # layer4 keeps stride 1: 512 channels at 1/16 of the input
    assert model.vision(torch.rand(1, 3, size, size)).shape == (1, 512, side, side)


def test_small_backbone_and_training_losses():
    model = build_method("ssl-tie", _cfg(data={"image_size": 64}))
    batch = {"frame": torch.rand(4, 3, 64, 64), "spectrogram": torch.randn(4, 1, 64, 80)}
    out = model.training_losses(batch)
    assert set(out) == {"loss", "loss_cl", "loss_cl_t", "loss_equi"}
    expected = 0.5 * (out["loss_cl"] + out["loss_cl_t"]) + out["loss_equi"]
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    out["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())
    maps, losses = model.eval().evaluation_step(batch, with_loss=True)
    assert maps.shape == (4, 8, 8) and torch.isfinite(losses["loss"])
    assert torch.allclose(maps, model.localization_map(batch), atol=1e-6)


def _store_sample(seed=0, seconds=3.0, sr=16000):
    rng = np.random.default_rng(seed)
    audio = (0.3 * rng.standard_normal(int(seconds * sr))).clip(-1, 1).astype(np.float32)
    return {
        "clip_id": f"c{seed}",
        "index": seed,
        "frame": rng.integers(0, 256, (90, 120, 3), dtype=np.uint8),
        "audio": audio,
        "sample_rate": sr,
        "spectrogram": compute("ssltie", audio, sr),
        "frame_time": 1.5,
    }


def test_sample_transforms_from_store_and_on_the_fly():
    sample = _store_sample()
    model = build_method("ssl-tie", _cfg(data={"image_size": 64}))
    ev = model.sample_transform(train=False)(sample)
    assert ev["frame"].shape == (3, 64, 64) and ev["spectrogram"].shape == (1, 257, 670)
    assert torch.equal(ev["spectrogram"], torch.from_numpy(sample["spectrogram"]))
    fly = build_method("ssl-tie", _cfg(data={"image_size": 64, "spectrogram": "audio"}))
    assert fly.required_inputs() == ("frame", "audio")
    assert model.required_inputs() == ("frame", "spectrogram")
    on = fly.sample_transform(train=False)(dict(sample, spectrogram=None))
    assert torch.allclose(on["spectrogram"], ev["spectrogram"], atol=1e-4)
    # training: moco_v2 frames differ per draw; SpecAug (p=1 here) writes the dB floor
    aug = build_method("ssl-tie", _cfg(data={"image_size": 64}, augment={"spec_aug_p": 1.0}))
    tr = aug.sample_transform(train=True)
    torch.manual_seed(0)
    a, b = tr(sample), tr(sample)
    assert a["frame"].shape == (3, 64, 64) and not torch.equal(a["frame"], b["frame"])
    assert (a["spectrogram"] == -100.0).any()
    batch = default_collate([a, b])
    assert batch["clip_id"] == ["c0", "c0"]
    with pytest.raises(InputError, match="no stored spectrogram"):
        model.sample_transform(train=False)(dict(sample, spectrogram=None))


def test_bad_config_values_are_config_errors():
    with pytest.raises(ConfigError):
        build_method("ssl-tie", _cfg(model={"backbone": "vgg"}))
    with pytest.raises(ConfigError):
        build_method("ssl-tie", _cfg(equivariance={"consistency": "huber"}))
    with pytest.raises(ConfigError):
        build_method("ssl-tie", _cfg(data={"spectrogram": "disk"})).sample_transform(True)


def synth_batch(n=8, size=64, seed=0, n_classes=4):
    """SynthAV-like: two coloured squares per frame, the sounding one's class in the audio."""
    g = torch.Generator().manual_seed(seed)
    colours = torch.rand(n_classes, 3, generator=g)
    frames = 0.1 * torch.rand(n, 3, size, size, generator=g)
    specs = 0.1 * torch.randn(n, 1, 32, 32, generator=g)
    side = size // 2
    for i in range(n):
        cls = torch.randperm(n_classes, generator=g)[:2]
        for k, (y, x) in enumerate([(0, 0), (side, side)] if i % 2 else [(0, side), (side, 0)]):
            frames[i, :, y : y + side, x : x + side] = colours[cls[k], :, None, None]
        specs[i, 0, 4 * cls[0] : 4 * cls[0] + 4, :] += 1.0  # a class-specific band
    return {"frame": frames, "spectrogram": specs}


def test_a_few_cpu_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = build_method("ssl-tie", _cfg(data={"image_size": 32}, optim={"lr": 3e-3})).train()
    batch = synth_batch(n=6, size=32)
    opt = model.build_optimizer()

    def loss_at(seed):
        torch.manual_seed(seed)  # the same transformation T before and after
        with torch.no_grad():
            return model.training_losses(batch)["loss"].item()

    before = loss_at(123)
    for _ in range(10):
        opt.zero_grad()
        model.training_losses(batch)["loss"].backward()
        opt.step()
    after = loss_at(123)
    assert after < before - 0.3, (before, after)


# -- official checkpoints ------------------------------------------------------
class _OfficialResNet(nn.Module):
    """The key layout of SSL-TIE's ``networks/base_models.ResNet`` (written for this test)."""

    def __init__(self, modal: str):
        super().__init__()
        tv = torchvision.models.resnet18(weights=None)
        tv.layer4[0].conv1.stride = (1, 1)
        tv.layer4[0].downsample[0].stride = (1, 1)
        self.modal = modal
        self.conv1_a = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        self.conv1 = tv.conv1
        self.conv1_flow = nn.Conv2d(6, 64, 7, 2, 3, bias=False)
        for name in ("bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool"):
            setattr(self, name, getattr(tv, name))
        self.fc = tv.fc

    def forward(self, x):
        x = self.conv1_a(x) if self.modal == "audio" else self.conv1(x)
        x = self.maxpool(self.relu(self.bn1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class _OfficialAVENet(nn.Module):
    """SSL-TIE's ``AVENet`` parameters and map ``A`` (the cosine of both streams)."""

    def __init__(self):
        super().__init__()
        self.imgnet = _OfficialResNet("vision")
        self.audnet = _OfficialResNet("audio")
        self.avgpool = nn.AdaptiveMaxPool2d((1, 1))
        self.vision_fc1 = nn.Conv2d(1024, 512, kernel_size=1)
        self.conv3 = nn.Conv2d(1, 1, 1)
        self.norm3 = nn.BatchNorm2d(1)

    def forward(self, image, audio):
        img = F.normalize(self.imgnet(image), dim=1)
        aud = F.normalize(self.avgpool(self.audnet(audio)).flatten(1), dim=1)
        return torch.einsum("nchw,nc->nhw", img, aud)


def _randomise(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.weight.copy_(1 + 0.1 * torch.randn(m.num_features, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.num_features, generator=g))
    return model.eval()


def test_official_checkpoint_imports_and_gives_the_same_maps(tmp_path):
    from avmodels.engine.checkpoint import build_model
    from avmodels.importers import import_checkpoint

    torch.manual_seed(0)
    official = _randomise(_OfficialAVENet(), 1)
    ckpt = tmp_path / "epoch33.pth.tar"
    torch.save(
        {
            "epoch": 33,
            "state_dict": official.state_dict(),
            "best_miou": 0.4,
            "optimizer": {"state": {}, "param_groups": []},
            "iteration": 1000,
        },
        ckpt,
    )
    out = import_checkpoint("ssl-tie", {"ckpt": ckpt}, tmp_path / "model.pt")
    model, meta = build_model(out)
    assert meta["method"] == "ssl-tie"
    image, audio = torch.rand(2, 3, 96, 96), torch.randn(2, 1, 64, 50)
    with torch.no_grad():
        ours = model.localization_map({"frame": image, "spectrogram": audio})
        theirs = official(image, audio)
    assert ours.shape == (2, 6, 6)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_import_rejects_other_layouts():
    official = _OfficialAVENet().state_dict()
    mapped = ssl_tie_state_from_official({"module." + k: v for k, v in official.items()})
    assert "audio.conv1.weight" in mapped and mapped["audio.conv1.weight"].shape[1] == 1
    assert not any(k.startswith(("vision.fc", "vision.conv1_a", "conv3")) for k in mapped)
    with pytest.raises(InputError, match="unexpected key"):
        ssl_tie_state_from_official({"encoder.weight": torch.zeros(1)})
    broken = dict(official)
    del broken["imgnet.layer2.0.conv1.weight"]
    with pytest.raises(InputError, match="missing"):
        SslTie.from_official(broken)


def test_resume_through_the_engine_continues_exactly(tmp_path):
    """The random T and moco_v2 draws come back exactly after --resume (engine RNG state)."""
    import csv

    from avmodels.engine.checkpoint import load_model_file
    from avmodels.engine.train import TrainRequest, train
    from tests.engine_data import write_tiny_store

    data, _ = write_tiny_store(tmp_path / "data", 8, size=40)
    sets = [
        "model.backbone=small",
        "model.small_width=8",
        "model.small_channels=32",
        "data.image_size=32",
        "data.spectrogram=audio",
        "data.spectrogram_name=lvs",  # a smaller front end than ssltie's 257x670
        "train.batch_size=4",
        "train.epochs=2",
        "train.num_workers=0",
        "train.log_every=1",
        "eval.every=0",
    ]

    def run(out, *extra, resume=False):
        method = None if resume else "ssl-tie"
        data_arg = [] if resume else [str(data)]
        req = TrainRequest(
            method, data_arg, str(out), sets=list(extra) if resume else [*sets, *extra]
        )
        req.resume, req.progress = resume, False
        return train(req)

    def losses(out):
        with open(out / "train_log.csv") as fh:
            return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(fh)}

    assert run(tmp_path / "a", "train.max_steps=3").steps == 3  # crosses the epoch
    run(tmp_path / "b", "train.max_steps=2")
    assert run(tmp_path / "b", "train.max_steps=3", resume=True).steps == 3
    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert sorted(b) == [1, 2, 3] and b[3] == pytest.approx(a[3], abs=1e-6)
    wa = load_model_file(tmp_path / "a" / "final.pt")["state_dict"]
    wb = load_model_file(tmp_path / "b" / "final.pt")["state_dict"]
    assert all(torch.allclose(wa[k].float(), wb[k].float(), atol=1e-6) for k in wa)
