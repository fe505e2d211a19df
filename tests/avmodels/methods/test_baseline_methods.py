"""LVS, EZ-VSL, SLAVC and FNAC on the shared engine (issue 19).

Losses against restatements written here from the papers' code conventions
(float64, explicit loops), importer round trips from the released key
layouts, the extended-protocol prediction, the object-saliency blend,
resume, DDP equality and a short learning test.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from avmodels.methods import METHODS, build_method
from avmodels.methods.fnac import FnacSpecMask, fnac_terms
from avmodels.methods.mil import blend_with_saliency, mil_infonce
from avmodels.methods.slavc import slavc_loss, slavc_prediction
from avprep.errors import ConfigError, InputError
from tests.method_config import one_thread  # noqa: F401 (autouse fixture)

SMALL = {
    "model": {
        "backbone": "small",
        "pretrained": False,
        "small_width": 8,
        "small_channels": 32,
        "dim": 16,
    },
    "data": {"image_size": 32},
}
NEW = ("lvs", "ezvsl", "slavc", "fnac")


def small(name: str, **sections) -> dict:
    cfg = {k: dict(v) for k, v in SMALL.items()}
    if name == "lvs":
        del cfg["model"]["dim"]
    for key, value in sections.items():
        cfg.setdefault(key, {}).update(value)
    return cfg


def unit(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    return x / x.norm(dim=dim, keepdim=True)


def feats(b=5, c=6, h=3, w=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    img = unit(torch.randn(b, c, h, w, generator=g, dtype=dtype))
    aud = unit(torch.randn(b, c, generator=g, dtype=dtype))
    return img, aud


# -- registration and defaults -------------------------------------------------------
def test_the_four_are_registered_with_their_papers_defaults():
    assert set(NEW) <= set(METHODS.names())
    ez, fn, sl, lv = (METHODS.get(n).defaults for n in ("ezvsl", "fnac", "slavc", "lvs"))
    assert ez["loss"]["tau"] == 0.03 and ez["model"]["dim"] == 512
    assert ez["optim"] == {"name": "adam", "lr": 1e-4, "weight_decay": 0.0, "scheduler": "constant"}
    assert (ez["train"]["batch_size"], ez["train"]["epochs"]) == (128, 20)
    assert ez["eval_map"] == {"object_saliency": False, "alpha": 0.4, "saliency_weights": None}
    # FNAC's train_*.sh
    assert (fn["train"]["batch_size"], fn["train"]["epochs"], fn["loss"]["warmup_epochs"]) == (
        256, 30, 5,
    )  # fmt: skip
    assert [fn["loss"][k] for k in ("weight_fns1", "weight_tns", "weight_fns2")] == [100.0] * 3
    assert (fn["model"]["dropout_img"], fn["model"]["dropout_aud"]) == (0.9, 0.0)
    assert fn["optim"]["weight_decay"] == 1e-4 and fn["loss"]["high_conf"] == 0.6
    # SLAVC's train_vggsound144k.sh
    assert (sl["model"]["momentum_img"], sl["model"]["momentum_aud"]) == (0.999, 0.999)
    assert sl["model"]["dropout_img"] == 0.9 and sl["optim"]["weight_decay"] == 0.0
    assert (sl["train"]["batch_size"], sl["train"]["epochs"]) == (128, 20)
    # LVS: its AVENet and loader
    assert (lv["loss"]["eps_pos"], lv["loss"]["eps_neg"], lv["loss"]["tau"]) == (0.65, 0.4, 0.03)
    assert lv["loss"]["temperature"] == 0.07 and lv["data"]["audio_seconds"] == 10.0
    assert lv["model"]["pretrained"] is False
    assert [METHODS.get(n).profile for n in NEW] == ["lvs-10s", "ezvsl", "ezvsl", "ezvsl"]
    assert [d["eval"]["preset"] for d in (lv, ez, sl, fn)] == ["lvs", "ezvsl", "ezvsl", "ezvsl"]


def test_full_size_maps_and_bad_values():
    x, s = torch.rand(2, 3, 224, 224), torch.randn(2, 1, 257, 200)
    shapes = {"lvs": (2, 14, 14), "ezvsl": (2, 7, 7)}
    for name, shape in shapes.items():
        model = build_method(name, {"model": {"pretrained": False}}).eval()
        with torch.no_grad():
            assert model.localization_map({"frame": x, "spectrogram": s}).shape == shape
    with pytest.raises(ConfigError):
        build_method("ezvsl", small("ezvsl", eval_map={"alpha": 1.5}))
    with pytest.raises(ConfigError):
        build_method("slavc", small("slavc", model={"momentum_img": 2.0}))
    with pytest.raises(ConfigError):
        build_method("lvs", small("lvs", augment={"image": "moco"}))


# -- losses against restatements ----------------------------------------------------
def ref_ezvsl(img, aud, tau):
    """EZ-VSL: L[n, m] = max_hw <V_n, a_m> / tau; CE over rows + CE over columns."""
    b = img.shape[0]
    L = torch.empty(b, b, dtype=torch.float64)
    for n in range(b):
        for m in range(b):
            L[n, m] = max(float((img[n, :, i, j] * aud[m]).sum()) for i in range(img.shape[2])
                          for j in range(img.shape[3])) / tau  # fmt: skip
    rows = -sum(L[i, i] - torch.logsumexp(L[i], 0) for i in range(b)) / b
    cols = -sum(L[i, i] - torch.logsumexp(L[:, i], 0) for i in range(b)) / b
    return rows + cols, L


def test_ezvsl_loss_matches_the_restatement():
    img, aud = feats()
    ours, logits = mil_infonce(img, aud, img, aud, 0, 0.03)
    ref, L = ref_ezvsl(img, aud, 0.03)
    assert float(ours) == pytest.approx(float(ref), rel=1e-10)
    torch.testing.assert_close(logits, L)
    # each convention matters: one direction only, mean pooling, another tau all differ
    assert float(ref_ezvsl(img, aud, 0.07)[0]) != pytest.approx(float(ours), rel=1e-3)
    assert float(F.cross_entropy(L, torch.arange(5))) != pytest.approx(float(ours), rel=1e-3)


def ref_fnac(img, aud, tau, conf=0.6):
    _, L = ref_ezvsl(img, aud, tau)
    b = img.shape[0]
    sa = torch.stack([torch.stack([aud[i] @ aud[j] for j in range(b)]) for i in range(b)]) / tau
    pooled = img.mean(dim=(2, 3))
    si = pooled @ pooled.t() / tau
    frg = []
    for i in range(b):
        m = torch.einsum("chw,c->hw", img[i], aud[i]) / tau
        m = (m - m.min()) / (m.max() - m.min() + 1e-5)
        frg.append((img[i] * (m > conf)).sum(dim=(1, 2)) / (img.shape[2] * img.shape[3]))
    frg = torch.stack(frg)
    sf = frg @ frg.t() / tau

    def l1(p, q):
        return (torch.softmax(p, 1) - torch.softmax(q, 1)).abs().mean()

    return l1(sa, L), l1(sa, sf), l1(si, L)


def test_fnac_terms_match_the_restatement_and_the_weights_after_warm_up():
    img, aud = feats(seed=3)
    terms = fnac_terms(img, aud, 0.03)
    fns1, tns, fns2 = ref_fnac(img, aud, 0.03)
    assert float(terms["loss_fns1"]) == pytest.approx(float(fns1), rel=1e-9)
    assert float(terms["loss_tns"]) == pytest.approx(float(tns), rel=1e-9)
    assert float(terms["loss_fns2"]) == pytest.approx(float(fns2), rel=1e-9)
    assert float(terms["loss_ezvsl"]) == pytest.approx(float(ref_ezvsl(img, aud, 0.03)[0]))
    # the warm-up trains EZ-VSL's loss alone, then adds 100 x each term
    model = build_method("fnac", small("fnac", model={"dropout_img": 0.0})).eval()
    out_w = model.losses((img.float(), aud.float()), {})
    model.on_epoch_start(5)
    out = model.losses((img.float(), aud.float()), {})
    assert float(out_w["loss"]) == pytest.approx(float(out_w["loss_ezvsl"]))
    total = out["loss_ezvsl"] + 100 * (out["loss_fns1"] + out["loss_tns"] + out["loss_fns2"])
    assert float(out["loss"]) == pytest.approx(float(total), rel=1e-6)


def ref_slavc(v1, v2, a1, a2, t, tau):
    v1t, v2t, a1t, a2t = t
    b = v1.shape[0]

    def score(x1, x2, y1, y2):
        out = torch.empty(b, b, dtype=torch.float64)
        s1 = torch.einsum("nchw,mc->nmhw", x1, y1).flatten(2) / tau
        s2 = torch.einsum("nchw,mc->nmhw", x2, y2).flatten(2) / tau
        for n in range(b):
            for m in range(b):
                match = torch.exp(s1[n, m]) / torch.exp(s1[n]).sum(0)  # over audios
                where = torch.exp(s2[n, m]) / torch.exp(s2[n, m]).sum()  # over positions
                out[n, m] = torch.log((match * where).sum())
        return out

    i2a, a2i = score(v1, v2, a1t, a2t), score(v1t, v2t, a1, a2)
    ce = sum(-(x[i, i] - torch.logsumexp(x[i], 0)) for x in (i2a, a2i) for i in range(b)) / b
    return ce


def test_slavc_loss_matches_the_restatement():
    v1, a1 = feats(seed=5)
    v2, a2 = feats(seed=6)
    tgt = (*feats(seed=7), *feats(seed=8))
    targets = (tgt[0], tgt[2], tgt[1], tgt[3])
    ours = slavc_loss(v1, v2, a1, a2, targets, 0.03)
    assert float(ours) == pytest.approx(float(ref_slavc(v1, v2, a1, a2, targets, 0.03)), rel=1e-9)
    swapped = (targets[1], targets[0], targets[2], targets[3])
    assert float(slavc_loss(v1, v2, a1, a2, swapped, 0.03)) != pytest.approx(float(ours), rel=1e-3)


def test_slavc_momentum_update_and_prediction():
    torch.manual_seed(0)
    model = build_method("slavc", small("slavc", model={"dropout_img": 0.0}))
    opt = model.build_optimizer()
    assert all(not p.requires_grad for n, p in model.named_parameters() if "momentum" in n)
    batch = {"frame": torch.rand(4, 3, 32, 32), "spectrogram": torch.randn(4, 1, 32, 40)}
    model.train()
    model.training_losses(batch)["loss"].backward()
    opt.step()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.training_losses(batch)  # the update runs first: m * momentum + (1 - m) * online
    m = model.cfg["model"]["momentum_img"]
    got = dict(model.named_parameters())["momentum_img_proj1.weight"]
    want = before["momentum_img_proj1.weight"] * m + before["img_proj1.weight"] * (1 - m)
    torch.testing.assert_close(got, want)
    model.eval()
    with torch.no_grad():
        model.training_losses(batch)  # no update outside training
    torch.testing.assert_close(dict(model.named_parameters())["momentum_img_proj1.weight"], got)


def ref_extended(map_tau, tau, relative, pred_size=0.5, pred_thr=0.5):
    """SLAVC's test.py: bicubic align_corners to 224, (x + 1/tau) / (2/tau), top quarter."""
    up = F.interpolate(map_tau[None, None].float(), size=(224, 224), mode="bicubic",
                       align_corners=True)[0, 0].numpy()  # fmt: skip
    scores = (up - (-1 / tau)) / (1 / tau - (-1 / tau))
    n = scores.size
    conf = np.sort(scores.flatten())[-n // 4 :].mean()
    if relative:
        pred = (scores - scores.min()) / (scores.max() - scores.min())
        thr = np.sort(pred.flatten())[int(n * pred_size)]
    else:
        pred, thr = scores, pred_thr
    return conf, pred >= thr


@pytest.mark.parametrize("relative", [False, True])
def test_slavc_extended_prediction_matches_its_test_script(relative):
    g = torch.Generator().manual_seed(2)
    maps = torch.randn(3, 7, 7, generator=g) * 10
    out = slavc_prediction(maps, 0.03, relative=relative)
    for i in range(3):
        conf, fg = ref_extended(maps[i], 0.03, relative)
        assert float(out["confidence"][i]) == pytest.approx(float(conf), rel=1e-5)
        ours = (out["pred"][i] >= out["threshold"][i]).numpy()
        assert (ours != fg).sum() <= 2  # float32 ties at the threshold at most
    assert out["scores"].shape == (3, 224, 224)


def test_lvs_loss_is_the_trimap_restatement():
    img, aud = feats(b=4, c=8, h=5, w=5, seed=9, dtype=torch.float32)
    img, aud = img.abs(), aud.abs()  # ReLU features: cosines in [0, 1]
    img, aud = unit(img), unit(aud)
    model = build_method("lvs", small("lvs", loss={"normaliser": "ratio"}))
    from avmodels.methods.trimap import trimap_loss

    ours = trimap_loss(img, aud, model.loss_cfg).loss
    A = torch.einsum("nchw,nc->nhw", img.double(), aud.double())
    A0 = torch.einsum("nchw,kc->nkhw", img.double(), aud.double())

    def sig(z):
        return 1 / (1 + torch.exp(-z))

    pos = sig((A - 0.65) / 0.03)
    neg = 1 - sig((A - 0.4) / 0.03)
    pos_all = sig((A0 - 0.65) / 0.03)
    s1 = (pos * A).sum((1, 2)) / pos.sum((1, 2))
    s = (pos_all * A0).sum((2, 3)) / pos_all.sum((2, 3)) * (1 - 100 * torch.eye(4))
    s2 = (neg * A).sum((1, 2)) / neg.sum((1, 2))
    logits = torch.cat([s1[:, None], s, s2[:, None]], 1) / 0.07
    ref = -(logits[:, 0] - torch.logsumexp(logits, 1)).mean()
    assert float(ours) == pytest.approx(float(ref), rel=1e-5)


def test_fnac_spectrogram_masks_use_its_ranges():
    spec = torch.ones(1, 257, 200)
    random.seed(4)
    out = FnacSpecMask()(spec)
    random.seed(4)
    f0 = random.randrange(0, 200)  # the "frequency" start is drawn over the time length
    f1 = f0 + random.randrange(0, 10)
    t0 = random.randrange(0, 257)  # and the "time" start over the frequency length
    t1 = t0 + random.randrange(0, 10)
    want = torch.ones(1, 257, 200)
    want[:, f0:f1, :] = 0
    want[:, :, t0:t1] = 0
    assert torch.equal(out, want) and torch.equal(spec, torch.ones(1, 257, 200))


# -- the object-saliency blend ------------------------------------------------------
def test_ezvsl_object_saliency_blend_is_labelled_and_matches_its_test_script(tmp_path):
    rn = torchvision.models.resnet18(weights=None)
    torch.save(rn.state_dict(), tmp_path / "rn18.pth")
    cfg = small(
        "ezvsl", eval_map={"object_saliency": True, "saliency_weights": str(tmp_path / "rn18.pth")}
    )
    model = build_method("ezvsl", cfg).eval()
    assert model.map_label() == "av+obj(alpha=0.4)"
    assert build_method("ezvsl", small("ezvsl")).map_label() == "av"
    assert "object_saliency" not in " ".join(model.state_dict())  # never saved
    frame = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out = model.localization_map({"frame": frame, "spectrogram": torch.randn(2, 1, 32, 40)})
        rn.avgpool, rn.fc = nn.Identity(), nn.Identity()
        obj_ref = rn.eval()(frame).unflatten(1, (512, 2, 2)).abs().mean(1)
    assert out.shape == (2, 224, 224)
    av = torch.randn(2, 2, 2)

    def norm(v):
        return (v - v.min()) / (v.max() - v.min()) if v.max() != v.min() else v

    def up(m):
        return F.interpolate(m[None, None], size=(224, 224), mode="bilinear", align_corners=True)[
            0, 0
        ]

    blend = blend_with_saliency(av, obj_ref, 0.4)
    for i in range(2):
        ref = norm(norm(up(av[i])) * 0.4 + norm(up(obj_ref[i])) * 0.6)
        torch.testing.assert_close(blend[i], ref)


# -- importers: the released layouts -----------------------------------------------
def _tv_resnet(in_channels: int, pool) -> nn.Module:
    net = torchvision.models.resnet18(weights=None)
    if in_channels == 1:
        net.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    net.avgpool, net.fc = pool, nn.Identity()
    return net


class _OfficialMil(nn.Module):
    """The EZ-VSL/FNAC/SLAVC key layout (torchvision ResNets, no fc), written for these tests."""

    def __init__(self, two: bool, momentum: bool):
        super().__init__()
        self.two = two
        self.imgnet = _tv_resnet(3, nn.Identity())
        self.audnet = _tv_resnet(1, nn.AdaptiveMaxPool2d((1, 1)))
        names = ("1", "2") if two else ("",)
        for k in names:
            setattr(self, f"img_proj{k}", nn.Conv2d(512, 512, 1))
            setattr(self, f"aud_proj{k}", nn.Linear(512, 512))
        if momentum:
            self.momentum_imgnet = _tv_resnet(3, nn.Identity())
            self.momentum_audnet = _tv_resnet(1, nn.AdaptiveMaxPool2d((1, 1)))
            for k in names:
                setattr(self, f"momentum_img_proj{k}", nn.Conv2d(512, 512, 1))
                setattr(self, f"momentum_aud_proj{k}", nn.Linear(512, 512))

    def map(self, image, audio, pre="", tau=0.03):
        trunk = getattr(self, pre + "imgnet")
        x = trunk.layer4(trunk.layer3(trunk.layer2(trunk.layer1(
            trunk.maxpool(trunk.relu(trunk.bn1(trunk.conv1(image))))))))  # fmt: skip
        a = getattr(self, pre + "audnet")(audio)
        maps = []
        for k in ("1", "2") if self.two else ("",):
            v = F.normalize(getattr(self, f"{pre}img_proj{k}")(x), dim=1)
            u = F.normalize(getattr(self, f"{pre}aud_proj{k}")(a), dim=1)
            maps.append(torch.einsum("nchw,nc->nhw", v, u) / tau)
        return sum(maps) / len(maps)


def _randomise(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.weight.copy_(1 + 0.1 * torch.randn(m.num_features, generator=g))
    return model.eval()


@pytest.mark.parametrize("name", ["ezvsl", "fnac", pytest.param("slavc", marks=pytest.mark.slow)])
def test_released_checkpoint_imports_and_gives_the_same_maps(tmp_path, name):
    from avmodels.engine.checkpoint import build_model
    from avmodels.importers import import_checkpoint

    torch.manual_seed(0)
    official = _randomise(_OfficialMil(two=name == "slavc", momentum=name == "slavc"), 1)
    ckpt = tmp_path / "best.pth"
    torch.save(
        {
            "model": {"module." + k: v for k, v in official.state_dict().items()},
            "optimizer": {"state": {}, "param_groups": []},
            "epoch": 20,
            "best_cIoU": np.mean(np.array([True, False, True])),  # numpy scalars, as released
            "best_Auc": np.float64(0.5),
        },
        ckpt,
    )
    model, meta = build_model(import_checkpoint(name, {"ckpt": ckpt}, tmp_path / "m.pt"))
    assert meta["method"] == name
    image, audio = torch.rand(2, 3, 64, 64), torch.randn(2, 1, 64, 50)
    batch = {"frame": image, "spectrogram": audio}
    with torch.no_grad():
        torch.testing.assert_close(model.localization_map(batch), official.map(image, audio))
        if name == "slavc":
            model.cfg["eval_map"]["momentum"] = True
            mom = official.map(image, audio, "momentum_")
            torch.testing.assert_close(model.localization_map(batch), mom)
            assert not torch.allclose(mom, official.map(image, audio))


class _OfficialLvsResNet(nn.Module):
    """LVS's ``base_models.ResNet`` layout: three first convs, an unused fc, layer4 stride 1."""

    def __init__(self, modal: str):
        super().__init__()
        tv = torchvision.models.resnet18(weights=None)
        tv.layer4[0].conv1.stride = (1, 1)
        tv.layer4[0].downsample[0].stride = (1, 1)
        self.modal = modal
        self.conv1_a = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        self.conv1 = tv.conv1
        self.conv1_flow = nn.Conv2d(6, 64, 7, 2, 3, bias=False)
        for n in (
            "bn1",
            "relu",
            "maxpool",
            "layer1",
            "layer2",
            "layer3",
            "layer4",
            "avgpool",
            "fc",
        ):
            setattr(self, n, getattr(tv, n))

    def forward(self, x):
        x = self.conv1_a(x) if self.modal == "audio" else self.conv1(x)
        return self.layer4(
            self.layer3(self.layer2(self.layer1(self.maxpool(self.relu(self.bn1(x))))))
        )


def test_lvs_release_imports_and_gives_the_same_maps(tmp_path):
    from avmodels.engine.checkpoint import build_model
    from avmodels.importers import import_checkpoint

    torch.manual_seed(0)
    imgnet = _randomise(_OfficialLvsResNet("vision"), 2)
    audnet = _randomise(_OfficialLvsResNet("audio"), 3)
    state = {f"module.imgnet.{k}": v for k, v in imgnet.state_dict().items()}
    state.update({f"module.audnet.{k}": v for k, v in audnet.state_dict().items()})
    torch.save({"model_state_dict": state, "epoch": 3}, tmp_path / "lvs.pth.tar")
    model, _ = build_model(
        import_checkpoint("lvs", {"ckpt": tmp_path / "lvs.pth.tar"}, tmp_path / "m.pt")
    )
    image, audio = torch.rand(2, 3, 64, 64), torch.randn(2, 1, 64, 50)
    with torch.no_grad():
        ours = model.localization_map({"frame": image, "spectrogram": audio})
        v = F.normalize(imgnet(image), dim=1)
        a = F.normalize(torch.amax(audnet(audio), dim=(2, 3)), dim=1)
    assert ours.shape == (2, 4, 4)
    torch.testing.assert_close(ours, torch.einsum("nchw,nc->nhw", v, a))
    with pytest.raises(InputError, match="unexpected key"):
        import_checkpoint(
            "lvs", {"ckpt": _save(tmp_path, {"encoder.w": torch.zeros(1)})}, tmp_path / "x.pt"
        )


def _save(tmp_path, state):
    path = tmp_path / "other.pth"
    torch.save({"model": state}, path)
    return path


def test_importers_reject_other_layouts(tmp_path):
    from avmodels.importers import import_checkpoint

    with pytest.raises(InputError, match="unexpected key"):
        import_checkpoint(
            "ezvsl", {"ckpt": _save(tmp_path, {"encoder.w": torch.zeros(1)})}, tmp_path / "a.pt"
        )
    official = _OfficialMil(two=False, momentum=False).state_dict()
    del official["img_proj.bias"]
    with pytest.raises(InputError, match="missing"):
        import_checkpoint("fnac", {"ckpt": _save(tmp_path, official)}, tmp_path / "b.pt")


# -- learning, resume and DDP through the engine -------------------------------------
COLOURS = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9], [0.9, 0.9, 0.1]])


def synth(n: int, seed: int, size: int = 32) -> dict[str, torch.Tensor]:
    """SynthAV in miniature: a sounding and a silent square; the sounding class is a band."""
    g = torch.Generator().manual_seed(seed)
    frames = 0.1 * torch.rand(n, 3, size, size, generator=g)
    specs = 0.1 * torch.randn(n, 1, 32, 32, generator=g)
    s = size // 2
    for i in range(n):
        cls = torch.randperm(4, generator=g)[:2]
        cells = [(0, 0), (s, s)] if torch.rand(1, generator=g) < 0.5 else [(0, s), (s, 0)]
        if torch.rand(1, generator=g) < 0.5:
            cells = cells[::-1]
        for k, (y, x) in enumerate(cells):
            frames[i, :, y : y + s, x : x + s] = COLOURS[cls[k], :, None, None]
        specs[i, 0, 8 * cls[0] : 8 * cls[0] + 8, :] += 1.0
    return {"frame": frames, "spectrogram": specs}


def _restated_loss(model, batch) -> float:
    """The paper's loss of a whole batch in eval mode, restated here (not the method's code)."""
    model.eval()
    with torch.no_grad():
        if model.name == "lvs":
            from avmodels.methods.trimap import TrimapConfig, trimap_loss

            img, aud = model.encode(batch)
            return float(trimap_loss(img, aud, TrimapConfig()).loss)
        if model.name == "slavc":
            on = [f.double() for f in model.features(batch, momentum=False)]
            return float(ref_slavc(on[0], on[1], on[2], on[3], (on[0], on[1], on[2], on[3]), 0.03))
        img, aud = (x.double() for x in model.encode(batch))
        loss = ref_ezvsl(img, aud, 0.03)[0]
        if model.name == "fnac":
            loss = loss + 100 * sum(ref_fnac(img, aud, 0.03))
        return float(loss)


@pytest.mark.slow
@pytest.mark.parametrize("name", NEW)
def test_a_short_synthetic_run_learns(name):
    extra = {"optim": {"lr": 1e-3}}
    if name in ("fnac", "slavc"):
        extra["model"] = {"dropout_img": 0.0}
    if name == "slavc":
        extra["model"].update(momentum_img=0.9, momentum_aud=0.9)
    if name == "fnac":
        extra["loss"] = {"warmup_epochs": 0}
    torch.manual_seed(0)
    model = build_method(name, small(name, **extra))
    opt = model.build_optimizer()
    data = synth(32, seed=1)  # a fixed small training set, minibatches of 16
    before = _restated_loss(model, data)
    for step in range(60):
        model.train()
        rows = torch.randperm(32, generator=torch.Generator().manual_seed(step))[:16]
        loss = model.training_losses({k: v[rows] for k, v in data.items()})["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = _restated_loss(model, data)
    assert math.isfinite(after) and after < before - 0.5, (before, after)


@pytest.mark.slow
def test_fnac_resumes_exactly_across_its_warm_up(tmp_path):
    import csv

    from avmodels.engine.checkpoint import load_model_file
    from avmodels.engine.train import TrainRequest, train
    from tests.engine_data import write_tiny_store

    data, _ = write_tiny_store(tmp_path / "data", 8, size=40)
    sets = [
        "model.backbone=small", "model.pretrained=false", "model.small_width=8",
        "model.small_channels=32", "model.dim=16", "data.image_size=32",
        "data.spectrogram=audio", "loss.warmup_epochs=1", "train.batch_size=4",
        "train.epochs=2", "train.num_workers=0", "train.log_every=1", "eval.every=0",
    ]  # fmt: skip

    def run(out, *extra, resume=False):
        req = TrainRequest(None if resume else "fnac", [] if resume else [str(data)], str(out),
                           sets=list(extra) if resume else [*sets, *extra])  # fmt: skip
        req.resume, req.progress = resume, False
        return train(req)

    def losses(out):
        with open(out / "train_log.csv") as fh:
            return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(fh)}

    assert run(tmp_path / "a", "train.max_steps=4").steps == 4
    run(tmp_path / "b", "train.max_steps=2")
    assert run(tmp_path / "b", "train.max_steps=4", resume=True).steps == 4
    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert b[3] == pytest.approx(a[3], abs=1e-5) and b[4] == pytest.approx(a[4], abs=1e-5)
    # the second epoch adds FNAC's weighted terms: a run still warming up differs from there
    run(tmp_path / "c", "train.max_steps=3", "loss.warmup_epochs=5")
    c = losses(tmp_path / "c")
    assert c[2] == pytest.approx(a[2], abs=1e-6) and c[3] < a[3] - 1e-3
    wa = load_model_file(tmp_path / "a" / "final.pt")["state_dict"]
    wb = load_model_file(tmp_path / "b" / "final.pt")["state_dict"]
    assert all(torch.allclose(wa[k].float(), wb[k].float(), atol=1e-6) for k in wa)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ezvsl", "slavc"])
def test_two_ranks_with_shared_negatives_equal_one_process(tmp_path, name):
    import json
    import os
    import subprocess
    import sys

    from avmodels.engine.checkpoint import load_model_file
    from avmodels.engine.train import TrainRequest, train
    from tests.avmodels.engine.test_ddp import _free_port, _losses
    from tests.engine_data import write_tiny_store

    data, _ = write_tiny_store(tmp_path / "data", 8, size=40)
    sets = [
        "model.backbone=small", "model.pretrained=false", "model.small_width=8",
        "model.small_channels=32", "model.dim=16", "data.image_size=32",
        "data.spectrogram=audio", "loss.global_negatives=true", "optim.name=sgd",
        "optim.lr=0.05", "train.num_workers=0", "train.log_every=1", "train.epochs=1",
        "train.max_steps=1", "eval.every=0", "data.shuffle=false",
    ]  # fmt: skip
    if name == "slavc":
        sets += ["model.dropout_img=0.0", "model.momentum_img=0.5", "model.momentum_aud=0.5"]
    single = tmp_path / "single"
    train(
        TrainRequest(
            name, [str(data)], str(single), sets=[*sets, "train.batch_size=4"], progress=False
        )
    )
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "-m", "avmodels",
           "train", name, "--data", str(data), "--out", str(run), "--no-progress"]  # fmt: skip
    for s in [*sets, "train.batch_size=2"]:
        cmd += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 1
    one = load_model_file(single / "final.pt")["state_dict"]
    two = load_model_file(run / "final.pt")["state_dict"]
    for k in one:
        assert torch.allclose(one[k].float(), two[k].float(), atol=1e-5, rtol=1e-4), k
    assert _losses(run) == pytest.approx(_losses(single), abs=1e-5)
    init = tmp_path / "init"
    train(TrainRequest(name, [str(data)], str(init), sets=[*sets, "train.batch_size=4",
                       "train.max_steps=0"], progress=False))  # fmt: skip
    zero = load_model_file(init / "final.pt")["state_dict"]
    assert not torch.allclose(zero["img_proj1.weight" if name == "slavc" else "img_proj.weight"],
                              one["img_proj1.weight" if name == "slavc" else "img_proj.weight"])  # fmt: skip


def test_the_saliency_blend_is_an_evaluation_switch_on_a_model_file(tmp_path):
    from avmodels.engine.checkpoint import build_model, save_model

    rn = torchvision.models.resnet18(weights=None)
    torch.save(rn.state_dict(), tmp_path / "rn18.pth")
    model = build_method("ezvsl", small("ezvsl"))
    path = save_model(tmp_path / "m.pt", model, model.cfg)
    sets = ["eval_map.object_saliency=true", f"eval_map.saliency_weights={tmp_path / 'rn18.pth'}"]
    blended, _ = build_model(path, "cpu", sets)  # `avmodels eval ... --set` does this
    plain, _ = build_model(path, "cpu")
    assert (blended.map_label(), plain.map_label()) == ("av+obj(alpha=0.4)", "av")
    batch = {"frame": torch.rand(1, 3, 64, 64), "spectrogram": torch.randn(1, 1, 32, 40)}
    with torch.no_grad():
        assert blended.localization_map(batch).shape == (1, 224, 224)
        assert plain.localization_map(batch).shape == (1, 8, 8)
