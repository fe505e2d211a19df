"""Batched frame augmentation: the same random parameters as the per-sample transforms, and
the same pixels wherever the operation is the same (resize kernels measured against PIL)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageFilter
from torch.utils.data import default_collate

from avmodels.data import MethodDataset, Sources, sample_seed, seeded_rngs
from avmodels.engine.config import resolve_config
from avmodels.methods import batch_augment as ba
from avmodels.methods.augment import IMAGENET_MEAN, IMAGENET_STD
from avmodels.methods.htf import HtfSample
from avmodels.methods.ssl_tie import SslTieSample
from avmodels.methods.sspl import SsplTransform
from avprep.store import ShardDataset
from avprep.store.index import NATIVE_FORMAT
from avprep.store.native import NativeSpec, write_shard
from avprep.store.source import Clip
from tests.method_config import one_thread  # noqa: F401 - autouse fixture

STD255 = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255


def write_store(folder: Path, n: int, hw: tuple[int, int], flow_hw=None, seed=0) -> Path:
    """A native shard of ``n`` clips: textured JPEG frames (h, w), a spectrogram, a flow."""
    rng = np.random.default_rng(seed)
    raw = folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    clips = []
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        # smooth colour gradients plus noise: JPEG keeps them, resizing has work to do
        img = np.stack([(xx * (3 + c + i) + yy * (2 + c)) % 256 for c in range(3)], -1)
        img = np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)
        frame = raw / f"c{i}.jpg"
        cv2.imwrite(str(frame), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        spec = raw / f"c{i}.npy"
        np.save(spec, rng.normal(size=(1, 96, 64)).astype(np.float16))
        flow = None
        if flow_hw:
            flow = raw / f"c{i}.flow.npy"
            np.save(flow, rng.normal(0, 3, size=(2, *flow_hw)).astype(np.float16))
        clips.append(Clip(f"c{i}", frame=frame, spectrogram=spec, flow=flow))
    mods = ("frame", "spectrogram", "flow") if flow_hw else ("frame", "spectrogram")
    spec = NativeSpec(
        modalities=mods,
        spectrogram_shape=(1, 96, 64),
        spectrogram_name="test",
        flow_shape=(2, *flow_hw) if flow_hw else None,
    )
    path = folder / "s.h5"
    write_shard(path, clips, spec, {"format": NATIVE_FORMAT, "modalities": json.dumps(list(mods))})
    return path


def _sources(path: Path) -> Sources:
    return Sources([ShardDataset(path)], [path])


def _pair(tf, path, keys, seed=5):
    """(per-sample batch, batched batch, deferred-then-finished-on-CPU batch) for ``keys``."""
    src = _sources(path)
    one = MethodDataset(src, tf, seed=seed, augment="sample")
    bat = MethodDataset(src, tf, seed=seed, augment="batch")
    dfr = MethodDataset(src, tf, seed=seed, augment="batch", defer_frames=True)
    assert bat.batched is not None
    a = default_collate([one[k] for k in keys])
    b = dict(bat.__getitems__(keys))
    c = dfr.finish(dict(dfr.__getitems__(keys)), "cpu")
    return a, b, c


def _levels(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b| of two normalised frame batches in 0-255 levels."""
    return (a - b).abs() * STD255


def _ssl_tie_cfg(**aug):
    cfg = resolve_config("ssl-tie", overrides_dict={"data": {"image_size": 32}})
    cfg["augment"].update(aug)
    return cfg


def _htf_cfg():
    return resolve_config("htf", overrides_dict={"data": {"image_size": 32}})


KEYS = [(3, 0), (0, 2), (5, 1), (1, 0), (4, 7)]


def test_sspl_same_params_give_the_same_pixels_when_no_resize_is_needed(tmp_path):
    # frames already at the resize target (int(20 * 1.1) = 22): crops and flips alone,
    # so equal pixels prove equal parameters; the CPU "gpu" path is bit-identical too
    path = write_store(tmp_path, 6, (22, 30))
    a, b, c = _pair(SsplTransform(20, 1.1, True), path, KEYS)
    for view in ("view1", "view2"):
        assert torch.equal(a[view], b[view]) and torch.equal(b[view], c[view])
    assert not torch.equal(a["view1"], a["view2"])  # two independent draws
    assert torch.equal(a["spectrogram"], b["spectrogram"]) and a["clip_id"] == b["clip_id"]


def test_sspl_resize_kernel_is_within_two_levels_of_pil(tmp_path):
    path = write_store(tmp_path, 6, (64, 80))
    a, b, c = _pair(SsplTransform(40, 1.1, True), path, KEYS)
    d = _levels(a["view1"], b["view1"])
    # torch's uint8 antialiased bicubic vs PIL's: measured max 1-2 levels, mean < 0.05
    assert float(d.max()) <= 2.01 and float(d.mean()) < 0.05
    assert torch.equal(b["view1"], c["view1"])


def test_htf_same_params_and_flow(tmp_path):
    path = write_store(tmp_path, 6, (35, 40), flow_hw=(35, 40))  # int(32 * 1.1) = 35
    a, b, c = _pair(HtfSample(_htf_cfg(), True), path, KEYS)
    assert torch.equal(a["frame"], b["frame"])
    # on the CPU both paths resize, scale, crop and mirror the flow with the same float32
    # operations (cv2's INTER_CUBIC): the same values, bit for bit
    assert torch.equal(a["flow"], b["flow"])
    assert torch.equal(b["frame"], c["frame"]) and torch.equal(b["flow"], c["flow"])
    flipped = (a["flow"][:, 0] < 0).float().mean()
    assert 0 < float(flipped) < 1
    # a real resize: cv2's INTER_CUBIC and torch's bicubic share a = -0.75
    path2 = write_store(tmp_path / "r", 6, (48, 64), flow_hw=(24, 32))
    a, b, _ = _pair(HtfSample(_htf_cfg(), True), path2, KEYS)
    assert torch.equal(a["flow"], b["flow"])
    assert 0 < float((a["flow"][:, 0] < 0).float().mean()) < 1
    assert float(_levels(a["frame"], b["frame"]).max()) <= 2.01


def test_ssl_tie_draws_the_same_parameters(tmp_path):
    path = write_store(tmp_path, 6, (48, 64))
    tf = SslTieSample(_ssl_tie_cfg(), True)
    bt = ba.batched(tf)
    src = _sources(path)
    for row in range(6):
        sample = src[row]
        with seeded_rngs(sample_seed(1, 0, row)):
            ref = tf(sample)
            after_ref = torch.get_rng_state()
        with seeded_rngs(sample_seed(1, 0, row)):
            out, params = bt.prepare({**sample, "frame_hw": sample["frame"].shape[:2]})
            after = torch.get_rng_state()
        assert torch.equal(after, after_ref)  # the same number and kinds of draws
        assert torch.equal(out["spectrogram"], ref["spectrogram"])  # SpecAugment as is
        # the box: the same as an independent RandomResizedCrop draw from that stream
        with seeded_rngs(sample_seed(1, 0, row)):
            tf.spec_aug(tf.spec(sample)) if tf.spec_aug is not None else None
            from torchvision import transforms as T

            box = T.RandomResizedCrop.get_params(
                Image.fromarray(sample["frame"]), [0.3, 1.0], [3 / 4, 4 / 3]
            )
        assert tuple(params["box"].tolist()) == tuple(box)


def test_ssl_tie_pixels_close_to_pil(tmp_path):
    path = write_store(tmp_path, 8, (48, 64))
    keys = [(i, 0) for i in range(8)]
    tf = SslTieSample(_ssl_tie_cfg(), True)
    a, b, c = _pair(tf, path, keys)
    # CPU: batched crop+resize (uint8 kernel), then PIL's own colour steps per image
    d = _levels(a["frame"], b["frame"])
    assert float(d.mean()) < 0.2, float(d.mean())
    assert torch.equal(b["frame"], c["frame"])
    # the device's colour steps (batched tensor ops), run here on the CPU
    src = _sources(path)
    dev = MethodDataset(src, tf, seed=5, augment="batch")
    dev.batched.pil_colour = False
    e = dict(dev.__getitems__(keys))
    d = _levels(b["frame"], e["frame"])
    assert 0 < float(d.mean()) < 2.0, float(d.mean())  # SynthAV frames: 0.07
    # without jitter and blur only crop, resize, grayscale and flip remain: near exact
    tf = SslTieSample(_ssl_tie_cfg(), True)
    steps = tf.frame.pipeline.transforms
    steps[1].p = 0.0
    steps[3].p = 0.0
    a, b, _ = _pair(tf, path, keys)
    d = _levels(a["frame"], b["frame"])
    # (measured: max 1 level, mean 0.11 on these upsampled crops)
    assert float(d.max()) <= 1.01 and float(d.mean()) < 0.2


def test_pil_restatements_are_exact():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(2, 24, 31, 3), dtype=np.uint8)
    x = torch.from_numpy(img).permute(0, 3, 1, 2).float()
    gray = np.stack([np.array(Image.fromarray(i).convert("L")) for i in img])
    assert torch.equal(ba.luma(x)[:, 0], torch.from_numpy(gray).int())
    f = torch.tensor([0.7, 1.3])
    for op, enh in (
        (ba.adjust_brightness, ImageEnhance.Brightness),
        (ba.adjust_contrast, ImageEnhance.Contrast),
        (ba.adjust_saturation, ImageEnhance.Color),
    ):
        ref = np.stack(
            [np.array(enh(Image.fromarray(i)).enhance(float(v))) for i, v in zip(img, f)]
        )
        got = op(x, f).permute(0, 2, 3, 1).numpy()
        assert np.abs(got - ref).max() <= 1, op.__name__  # PIL's blend: at most its rounding
    # hue: PIL's own on the CPU; the device's float HSV within a few levels of it
    from torchvision.transforms import functional as TF

    ref = np.stack([np.array(TF.adjust_hue(Image.fromarray(i), 0.07)) for i in img])
    got = ba.adjust_hue(x, torch.tensor([0.07, 0.07])).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(got, ref)
    flt = ba.adjust_hue_float(x, torch.tensor([0.07, 0.07])).permute(0, 2, 3, 1).numpy()
    assert np.abs(flt - ref).mean() < 3


def test_blur_uses_pils_extended_box_kernel():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size=(1, 40, 40, 3), dtype=np.uint8)
    x = torch.from_numpy(img).permute(0, 3, 1, 2).float()
    for radius in (0.1, 0.9, 2.0):
        ref = np.array(Image.fromarray(img[0]).filter(ImageFilter.GaussianBlur(radius)))
        got = ba.blur(x, torch.tensor([True]), torch.tensor([radius]))[0].permute(1, 2, 0)
        d = np.abs(got.numpy() - ref)
        # PIL rounds after each of its box passes (measured: mean 0.5-1.0, max 3)
        assert d.mean() < 1.5 and d.max() <= 4, (radius, d.mean(), d.max())
    k = ba.pil_blur_kernel(2.0)
    assert abs(float(k.sum()) - 1) < 1e-6 and torch.allclose(k, k.flip(0))


def test_methods_without_a_batched_form_keep_the_per_sample_path(tmp_path):
    from avprep.errors import ConfigError

    legacy = resolve_config("htf", overrides_dict={"htf": {"legacy_flow": True}})
    assert ba.batched(HtfSample(legacy, True)) is None
    assert ba.batched(SsplTransform(32, 1.1, False)) is None  # test transform
    path = write_store(tmp_path, 4, (40, 40))
    src = _sources(path)
    ds = MethodDataset(src, SsplTransform(32, 1.1, False), augment="batch")
    assert ds.batched is None and isinstance(ds.__getitems__([0, 1]), list)
    with pytest.raises(ConfigError, match="train.input=gpu"):
        MethodDataset(src, SsplTransform(32, 1.1, False), augment="batch", defer_frames=True)


def test_normalize_matches_to_tensor_then_normalize():
    from torchvision.transforms import functional as TF

    x = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)
    ref = torch.stack([TF.normalize(i.float() / 255, IMAGENET_MEAN, IMAGENET_STD) for i in x])
    assert torch.equal(ba.normalize(x), ref)


def test_shared_code_knows_no_method_and_reads_each_methods_hook():
    """batch_augment imports no method module: each method's transform declares its
    batched form (``batch_augment()``); one without the hook keeps the per-sample path."""
    import ast
    import inspect

    from avmodels.methods import METHODS

    method_modules = {type.__module__ for _, type in METHODS.items()}
    assert {"avmodels.methods.sspl", "avmodels.methods.htf"} <= method_modules
    tree = ast.parse(inspect.getsource(ba))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not imported & method_modules, imported & method_modules
    # the hooks the methods declare give the shared classes
    assert isinstance(ba.batched(SsplTransform(32, 1.1, True)), ba.CropFlipViews)
    assert isinstance(ba.batched(SslTieSample(_ssl_tie_cfg(), True)), ba.MocoV2Batch)
    assert isinstance(ba.batched(HtfSample(_htf_cfg(), True)), ba.FrameFlowCropBatch)
    assert ba.batched(SslTieSample(_ssl_tie_cfg(image="none"), True)) is None

    class NoHook:
        def __call__(self, sample):
            return sample

    assert ba.batched(NoHook()) is None


def test_finished_tensors_are_written_into_the_loaders_buffers(tmp_path):
    """read_batch(out=...) (a RingLoader slot) receives the views, frame and flow in place,
    with the values read_batch gives without it; a buffer that does not fit is left alone."""
    path = write_store(tmp_path, 6, (35, 40), flow_hw=(35, 40))
    keys = [(3, 0), (0, 2), (5, 1)]
    for tf, names in (
        (SsplTransform(32, 1.1, True), ("view1", "view2")),
        (HtfSample(_htf_cfg(), True), ("frame", "flow")),
        (SslTieSample(_ssl_tie_cfg(), True), ("frame",)),
    ):
        ds = MethodDataset(_sources(path), tf, seed=2, augment="batch")
        ref = ds.read_batch(keys)
        slots = {k: torch.full((4, *ref[k].shape[1:]), float("nan")) for k in names}
        got = ds.read_batch(keys, out=slots)
        for k in names:
            assert got[k].data_ptr() == slots[k].data_ptr(), k  # written in place
            assert torch.equal(got[k], ref[k]) and torch.equal(slots[k][:3], ref[k]), k
            assert torch.isnan(slots[k][3]).all()  # rows past the batch untouched
        wrong = {names[0]: torch.zeros((4, 3, 8, 8))}
        got = ds.read_batch(keys, out=wrong)
        assert got[names[0]].data_ptr() != wrong[names[0]].data_ptr()
        assert torch.equal(got[names[0]], ref[names[0]])
