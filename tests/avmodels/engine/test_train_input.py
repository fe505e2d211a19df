"""The engine's training input: batch reads through MethodDataset, the batched augmentation,
the torch and ring loaders, and train.input=cpu|gpu (the device path run on the CPU)."""

from __future__ import annotations

import csv

import pytest
import torch
from torch.utils.data import default_collate

from avmodels.data import MethodDataset, Sources
from avmodels.engine.loaders import DeviceInput, input_mode, loader_kind, make_loader
from avmodels.engine.train import TrainRequest, train
from avmodels.methods.sspl import SsplTransform
from avprep.errors import ConfigError
from avprep.store import ShardDataset
from tests.engine_data import write_tiny_store

TINY = [
    "model.pretrained=false",
    "model.image_size=32",
    "train.batch_size=2",
    "train.log_every=1",
    "eval.every=0",
    "train.max_steps=3",
]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("input")
    a, _ = write_tiny_store(root, 5, size=40, seed=1, prefix="a", name="a.h5")
    b, _ = write_tiny_store(root, 4, size=40, seed=2, prefix="b", name="b.h5")
    return a, b


def _sources(*paths):
    return Sources([ShardDataset(p) for p in paths], list(paths))


def _equal(x, y):
    assert sorted(x) == sorted(y)
    for k in x:
        if isinstance(x[k], torch.Tensor):
            assert torch.equal(x[k], y[k]), k
        else:
            assert x[k] == y[k], k


def test_getitems_is_the_per_sample_path_over_several_stores(stores):
    src = _sources(*stores)
    ds = MethodDataset(src, SsplTransform(32, 1.1, True), seed=3, augment="sample")
    keys = [(7, 1), (0, 1), (4, 0), (5, 2), (2, 0)]  # rows from both stores, out of order
    got = default_collate(ds.__getitems__(keys))
    _equal(got, default_collate([ds[k] for k in keys]))
    # the sources' batch read is the per-row reads collated, frames in one uint8 buffer
    batch = src.read_batch([7, 0, 4, 5])
    rows = [src[r] for r in (7, 0, 4, 5)]
    assert batch["frame"].dtype == torch.uint8 and batch["frame"].shape == (4, 40, 40, 3)
    for j, s in enumerate(rows):
        assert torch.equal(batch["frame"][j], torch.from_numpy(s["frame"]))
        assert torch.equal(batch["spectrogram"][j], torch.from_numpy(s["spectrogram"]))
        assert batch["clip_id"][j] == s["clip_id"] and int(batch["index"][j]) == s["index"]
    raw = src.read_batch([7, 0], decode=False)
    assert [len(f) for f in raw["frame_jpeg"]] and "frame" not in raw


def test_torch_and_ring_loaders_give_the_same_batched_batches(stores):
    src = _sources(stores[0])
    ds = MethodDataset(src, SsplTransform(32, 1.1, True), seed=3, augment="batch")
    assert ds.batched is not None
    out = {}
    for kind in ("torch", "ring"):
        loader = make_loader(ds, batch_size=2, num_workers=1, kind=kind, drop_last=True)
        out[kind] = [{k: (v.clone() if isinstance(v, torch.Tensor) else v)
                      for k, v in b.items()} for b in loader]  # fmt: skip
        if kind == "ring":
            loader.close()
    assert len(out["torch"]) == 2
    for a, b in zip(out["torch"], out["ring"], strict=True):
        _equal(a, b)
    # the device path (JPEG bytes + parameters, finished here) gives the same tensors
    dfr = MethodDataset(src, SsplTransform(32, 1.1, True), seed=3, augment="batch",
                        defer_frames=True)  # fmt: skip
    dev = DeviceInput(make_loader(dfr, batch_size=2, drop_last=True), dfr.finish,
                      torch.device("cpu"))  # fmt: skip
    for a, b in zip(out["torch"], list(dev), strict=True):
        _equal(a, b)


def test_input_mode_resolution():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert input_mode("auto", cuda, "batch", True, True) == "gpu"
    assert input_mode("auto", cpu, "batch", True, True) == "cpu"
    assert input_mode("auto", cuda, "batch", False, True) == "cpu"  # no batched form
    assert input_mode("gpu", cpu, "batch", True, True) == "gpu"  # the same code on the CPU
    with pytest.raises(ConfigError, match="raw"):
        input_mode("gpu", cuda, "batch", True, False)
    with pytest.raises(ConfigError, match="train.input"):
        input_mode("fast", cpu, "batch", True, True)


def test_loader_auto_is_the_ring_for_finished_batches(stores):
    from avprep.store import RingLoader

    src = _sources(stores[0])
    batched = MethodDataset(src, SsplTransform(32, 1.1, True), augment="batch")
    deferred = MethodDataset(src, SsplTransform(32, 1.1, True), augment="batch",
                             defer_frames=True)  # fmt: skip
    per_sample = MethodDataset(src, SsplTransform(32, 1.1, True), augment="sample")
    assert loader_kind("auto", batched) == "ring"
    assert loader_kind(None, batched) == "ring"
    assert loader_kind("auto", deferred) == "torch"  # JPEG bytes: lists of any length
    assert loader_kind("auto", per_sample) == "torch"
    assert loader_kind("torch", batched) == "torch" and loader_kind("ring", per_sample) == "ring"
    with pytest.raises(ConfigError, match="train.loader"):
        loader_kind("fast", batched)
    from avmodels.engine.config import resolve_config

    assert resolve_config("sspl")["train"]["loader"] == "auto"
    loader = make_loader(batched, batch_size=2, drop_last=True)  # the default kind: auto
    assert isinstance(loader, RingLoader)
    loader.close()


def _losses(run):
    with open(run / "train_log.csv") as fh:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(fh)}


@pytest.mark.slow
def test_engine_input_paths_train_the_same_steps(stores, tmp_path):
    path = str(stores[0])
    runs = {}
    for name, extra in {
        "cpu": ["train.input=cpu"],
        # JPEG bytes + parameters through the RingLoader, finished in the main process
        "gpu": ["train.input=gpu", "train.loader=ring"],
    }.items():
        res = train(TrainRequest("sspl", [path], str(tmp_path / name),
                                 sets=[*TINY, "train.num_workers=0", *extra], progress=False))  # fmt: skip
        assert res.steps == 3
        runs[name] = _losses(tmp_path / name)
    assert sorted(runs["cpu"]) == [1, 2, 3]
    for step, loss in runs["cpu"].items():
        assert runs["gpu"][step] == pytest.approx(loss, abs=1e-6), step
