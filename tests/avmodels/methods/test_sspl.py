"""SSPL's architecture and defaults as the paper and its code state them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate
from torchvision import transforms

from avmodels.backbones import vgg16, vggish
from avmodels.engine.config import resolve_config
from avmodels.layers.attention import attention_pool
from avmodels.methods import build_method
from avmodels.methods.pcm import PredictiveCoding
from avmodels.methods.sspl import EMBEDDING_KEY
from avprep.errors import ConfigError, InputError

TINY = ["model.pretrained=false", "model.image_size=32"]


@pytest.fixture(scope="module")
def sspl():
    torch.manual_seed(0)
    return build_method("sspl", resolve_config("sspl", sets=TINY))


def _trainable(m) -> int:
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


def test_parameter_counts_match_the_paper(sspl):
    # paper / REFERENCE: 11.9 M trainable without PCM, 21.7 M with (PCM ~9.86 M)
    assert _trainable(sspl) == 11_874_304
    assert sum(p.numel() for p in PredictiveCoding().parameters()) == 9_859_712
    assert all(not p.requires_grad for p in sspl.frame_net.parameters())
    assert all(not p.requires_grad for p in sspl.vggish.parameters())
    # features[0:29]: conv5_3 is last, no ReLU/pool after it
    assert isinstance(sspl.frame_net[-1], torch.nn.Conv2d) and len(sspl.frame_net) == 29
    assert sspl.head.projector.layer3[1].affine is False


def test_optimizer_groups_and_defaults():
    cfg = resolve_config("sspl-pcm", sets=[*TINY, "model.image_size=96"])
    assert cfg["train"]["epochs"] == 20 and cfg["train"]["batch_size"] == 128
    m = build_method("sspl-pcm", cfg)
    opt = m.build_optimizer()
    assert isinstance(opt, torch.optim.AdamW)
    groups = {g["name"]: g for g in opt.param_groups}
    assert {k: g["lr"] for k, g in groups.items()} == {
        "sound_fc": 2e-5, "pcm": 2e-5, "pcm_gates": 2e-5, "head": 5e-5,
    }  # fmt: skip
    assert groups["pcm_gates"]["weight_decay"] == 0.0 and groups["head"]["weight_decay"] == 1e-4
    assert opt.defaults["betas"] == (0.9, 0.999)
    assert _trainable(m) == 11_874_304 + 9_859_712
    assert len(groups["pcm_gates"]["params"]) == 6
    base = resolve_config("sspl")
    assert (base["optim"]["lr_sound"], base["optim"]["lr_head"]) == (5e-4, 2e-3)
    assert base["train"]["epochs"] == 100


def test_transforms_match_the_original_pipeline(sspl):
    cfg = resolve_config("sspl")
    m_cfg = cfg["model"]
    assert int(m_cfg["image_size"] * m_cfg["resize_ratio"]) == 246
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
    sample = {"clip_id": "a", "frame": frame, "spectrogram": np.zeros((3, 96, 64), np.float32)}
    test_tf = sspl.sample_transform(train=False)
    out = test_tf(sample)
    ref = transforms.Compose(
        [
            transforms.Resize(32, Image.BICUBIC),
            transforms.CenterCrop(32),
            transforms.ToTensor(),
            transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )(Image.fromarray(frame))
    assert torch.equal(out["view1"], ref) and "view2" not in out
    train_out = sspl.sample_transform(train=True)(sample)
    assert train_out["view1"].shape == train_out["view2"].shape == (3, 32, 32)
    assert not torch.equal(train_out["view1"], train_out["view2"])  # two random views
    assert train_out["spectrogram"].shape == (3, 96, 64)
    # SSPL-layout frames are float32 0-255: accepted
    f32 = test_tf({**sample, "frame": frame.astype(np.float32)})
    assert torch.equal(f32["view1"], out["view1"])
    with pytest.raises(InputError, match="96, 64"):
        test_tf({**sample, "spectrogram": np.zeros((257, 276), np.float32)})


def test_attention_is_the_cosine_map_and_handles_batch_one():
    torch.manual_seed(0)
    v = torch.randn(1, 8, 3, 5)
    a = torch.randn(1, 8)
    pooled, sim = attention_pool(v, a)
    assert sim.shape == (1, 3, 5) and pooled.shape == (1, 8)
    cos = torch.nn.functional.cosine_similarity(v, a[:, :, None, None], dim=1)
    assert torch.allclose(sim, cos, atol=1e-6)
    att = (cos - cos.min()) / (cos.max() - cos.min() + 1e-10)
    assert torch.allclose(pooled, (v * att[:, None]).sum((2, 3)), atol=1e-5)


@pytest.mark.parametrize("side, ok", [(6, True), (10, True), (14, True), (7, False), (12, False)])
def test_pcm_map_sizes_work_or_fail_clearly(side, ok):
    torch.manual_seed(0)
    pcm = PredictiveCoding(cycles=1, channels=512).eval()
    v, a = torch.randn(1, 512, side, side), torch.randn(1, 128)
    if ok:
        assert pcm(v, a).shape == (1, 512, side, side)
    else:
        with pytest.raises(ConfigError, match="4k\\+2"):
            pcm(v, a)


@pytest.mark.slow
def test_cached_embedding_gives_the_same_maps(sspl):
    sspl.eval()
    rng = np.random.default_rng(1)
    samples = [
        {
            "clip_id": f"c{i}",
            "frame": rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8),
            "spectrogram": rng.uniform(-4, 2, size=(3, 96, 64)).astype(np.float32),
        }
        for i in range(2)
    ]
    tf = sspl.sample_transform(train=False)
    live = default_collate([tf(s) for s in samples])
    (spec,) = sspl.feature_caches()
    cached_values = spec.compute(default_collate([spec.prepare(s) for s in samples]))
    assert cached_values.shape == (2, 3, 128)
    cached = default_collate([tf({**s, EMBEDDING_KEY: cached_values[i].numpy()})
                              for i, s in enumerate(samples)])  # fmt: skip
    assert "spectrogram" not in cached
    with torch.no_grad():
        assert torch.allclose(sspl.localization_map(live), sspl.localization_map(cached))
    # the cache version follows the VGGish weights
    torch.manual_seed(1)
    other = build_method("sspl", resolve_config("sspl", sets=TINY))
    assert other.feature_caches()[0].version != spec.version
    other.vggish.load_state_dict(sspl.vggish.state_dict())
    other._vggish_version = None
    assert other.feature_caches()[0].version == spec.version


def test_vggish_matches_torchvggish_layout_and_output():
    tv = pytest.importorskip("torchvggish.torchvggish")
    torch.manual_seed(0)
    ref = tv.VGG(tv.make_layers(), postprocess=False).eval()
    ours = vggish.VGGish().eval()
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in ref.state_dict().items()
    ]
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 1, 96, 64)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), atol=1e-6)


def test_vgg16_imagenet_layout_loads_by_index(tmp_path):
    feats = vgg16.vgg16_features()
    state = {f"features.{k}": torch.randn_like(v) for k, v in feats.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # ignored
    torch.save(state, tmp_path / "vgg16.pth")
    vgg16.load_imagenet(feats, tmp_path / "vgg16.pth")
    assert torch.equal(feats[28].weight, state["features.28.weight"])
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(InputError):
        vgg16.load_imagenet(vgg16.vgg16_features(), tmp_path / "bad.pth")
