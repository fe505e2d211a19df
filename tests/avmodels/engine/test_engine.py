"""The shared engine: config, data dealing, sync BatchNorm, checkpoints, resume, eval.

Training runs use SSPL at 32 px with random weights and cached VGGish
embeddings on a tiny native store (real h5py shards, real VGG16/VGGish code).
"""

from __future__ import annotations

import csv
import json
import random

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn
from torch.utils.data import default_collate

from avmodels.cli import cli
from avmodels.data import EpochSampler, MethodDataset, Sources, open_sources, split_validation
from avmodels.engine import checkpoint as ckpt
from avmodels.engine.config import ENGINE_DEFAULTS, parse_set, resolve_config
from avmodels.engine.distributed import GlobalBatchNorm, sync_batchnorm_converter
from avmodels.engine.evaluate import predict_maps, score_maps
from avmodels.engine.train import TrainRequest, train
from avmodels.methods.base import Method
from avprep.errors import ConfigError, InputError
from tests.engine_data import write_tiny_store

TINY = [
    "model.pretrained=false",
    "model.image_size=32",
    "train.batch_size=2",
    "train.num_workers=0",
    "train.log_every=1",
]


# -- config -----------------------------------------------------------------------
def test_config_layers_and_types(tmp_path):
    cfg = resolve_config("sspl-pcm")
    assert cfg["optim"]["lr_pcm"] == 2e-5 and cfg["train"]["epochs"] == 20
    assert cfg["train"]["num_workers"] == ENGINE_DEFAULTS["train"]["num_workers"]
    yml = tmp_path / "c.yaml"
    yml.write_text("train:\n  epochs: 3\noptim:\n  lr_head: 1.0e-3\n")
    cfg = resolve_config("sspl", yml, ["train.epochs=5", "optim.lr_sound=1e-4", "model.pcm=true"])
    assert cfg["train"]["epochs"] == 5  # --set wins over the file
    assert cfg["optim"]["lr_head"] == 1e-3
    assert cfg["optim"]["lr_sound"] == pytest.approx(1e-4) and isinstance(
        cfg["optim"]["lr_sound"], float
    )
    assert cfg["model"]["pcm"] is True
    assert cfg["train"]["max_steps"] is None


@pytest.mark.parametrize(
    "item, message",
    [
        ("train.epoch=3", "did you mean 'train.epochs'"),
        ("optim.lr_heda=1", "did you mean 'optim.lr_head'"),
        ("train.epochs=three", "must be an integer"),
        ("model.pcm=maybe", "true or false"),
        ("train=3", "is a section"),
        ("noequals", "section.key=value"),
    ],
)
def test_config_typos_are_errors(item, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config("sspl", sets=[item])


def test_parse_set_nests():
    assert parse_set(["a.b=1", "a.c=x=y"]) == {"a": {"b": "1", "c": "x=y"}}


# -- data dealing -------------------------------------------------------------------
def test_sampler_deals_global_batches_like_one_process():
    n, b = 23, 3
    one = EpochSampler(n, batch_size=2 * b, world_size=1, seed=7)
    r0 = EpochSampler(n, batch_size=b, rank=0, world_size=2, seed=7)
    r1 = EpochSampler(n, batch_size=b, rank=1, world_size=2, seed=7)
    for epoch in (0, 1):
        for s in (one, r0, r1):
            s.set_epoch(epoch)
        g = [p for p, _ in one]
        a, c = [p for p, _ in r0], [p for p, _ in r1]
        assert one.batches_per_epoch() == r0.batches_per_epoch() == n // (2 * b)
        for k in range(one.batches_per_epoch()):
            glob = set(g[k * 2 * b : (k + 1) * 2 * b])
            assert set(a[k * b : (k + 1) * b]) | set(c[k * b : (k + 1) * b]) == glob
    one.set_epoch(0)
    first = [p for p, _ in one]
    one.set_epoch(0, skip_batches=1)  # a resumed run skips the batches it already did
    assert [p for p, _ in one] == first[2 * b :]


def test_validation_split_is_by_id_not_order():
    ids = [f"c{i:03d}" for i in range(200)]
    tr, va = split_validation(ids, 0.1, seed=3)
    assert len(va) == 20 and not set(tr) & set(va) and len(tr) + len(va) == 200
    rev = ids[::-1]
    tr2, va2 = split_validation(rev, 0.1, seed=3)
    assert {ids[i] for i in va} == {rev[i] for i in va2}
    assert {ids[i] for i in split_validation(ids, 0.1, seed=4)[1]} != {ids[i] for i in va}
    with pytest.raises(ConfigError):
        split_validation(ids, 1.5, seed=0)


class _Listed(torch.utils.data.Dataset):
    def __init__(self, n):
        self.ids = [f"s{i}" for i in range(n)]

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"clip_id": self.ids[i], "x": i}


def _noisy(sample):
    return {"noise": torch.rand(3), "np": float(np.random.rand()), "py": random.random()}


def test_augmentation_is_seeded_per_epoch_and_row():
    ds = MethodDataset(Sources([_Listed(5)]), _noisy, seed=11)
    before = torch.get_rng_state()
    a = ds[(2, 0)]
    b = [ds[(i, 0)] for i in (4, 2)][1]  # another order, same (epoch, row)
    c = ds[(2, 1)]
    assert torch.equal(a["noise"], b["noise"]) and a["np"] == b["np"] and a["py"] == b["py"]
    assert not torch.equal(a["noise"], c["noise"])
    assert torch.equal(before, torch.get_rng_state())  # the caller's RNG is untouched


# -- BatchNorm conversion -----------------------------------------------------------
def test_global_batchnorm_conversion_keeps_state_and_math():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1))
    keys = list(net.state_dict())
    bn = net[1]
    x = torch.randn(6, 4)
    ref = net[1](net[0](x))
    sync_batchnorm_converter(torch.device("cpu"))(net)
    assert isinstance(net[1], GlobalBatchNorm) and isinstance(net[3], GlobalBatchNorm)
    assert net[1].weight is bn.weight and list(net.state_dict()) == keys
    # without a process group it is ordinary BatchNorm
    assert torch.allclose(net[1](net[0](x)), ref, atol=1e-6)


# -- checkpoints ------------------------------------------------------------------
def test_rng_state_round_trip_and_safe_load(tmp_path):
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    net = nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=0.1)
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    path = ckpt.save_checkpoint(
        tmp_path / "c.pt", method="x", model=net, optimizer=opt, scheduler=None, scaler=None,
        progress={"epoch": 1, "batch": 2, "step": 5, "best": None},
    )  # fmt: skip
    expected = (random.random(), float(np.random.rand()), torch.rand(2))
    data = ckpt.load_checkpoint(path)  # weights_only=True inside
    ckpt.set_rng_state(data["rng"])
    got = (random.random(), float(np.random.rand()), torch.rand(2))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])
    assert data["progress"]["step"] == 5
    assert not list(tmp_path.glob(".tmp-*"))
    with pytest.raises(InputError):
        ckpt.load_model_file(path)  # a checkpoint is not a model file


# -- training runs ----------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    path, boxes = write_tiny_store(root, 6, size=40)
    ann = root / "gt.json"
    ann.write_text(
        json.dumps([{"file": c, "class": "x", "bbox": [list(b)]} for c, b in boxes.items()])
    )
    return path, boxes, ann


def _losses(run):
    with open(run / "train_log.csv") as fh:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(fh)}


@pytest.mark.slow
def test_resume_continues_exactly(store, tmp_path):
    path, _, _ = store
    sets = [*TINY, "train.epochs=2", "eval.every=0"]
    full = train(TrainRequest("sspl", [str(path)], str(tmp_path / "a"), sets=[*sets,
                 "train.max_steps=4"], progress=False))  # fmt: skip
    assert full.steps == 4 and full.epochs_done == 1  # 3 steps per epoch: crosses epoch 1
    half = tmp_path / "b"
    train(TrainRequest("sspl", [str(path)], str(half), sets=[*sets, "train.max_steps=2"],
                       progress=False))  # fmt: skip
    res = train(TrainRequest(None, [], str(half), sets=["train.max_steps=4"], resume=True,
                             progress=False))  # fmt: skip
    assert res.steps == 4
    a, b = _losses(tmp_path / "a"), _losses(half)
    assert sorted(b) == [1, 2, 3, 4]
    for step in (3, 4):
        assert b[step] == pytest.approx(a[step], abs=1e-6), (step, a, b)
    wa = ckpt.load_model_file(tmp_path / "a" / "final.pt")["state_dict"]
    wb = ckpt.load_model_file(half / "final.pt")["state_dict"]
    for k in wa:
        assert torch.allclose(wa[k].float(), wb[k].float(), atol=1e-6), k
    # the cache of frozen VGGish embeddings was made once, beside the shard
    assert len(list(path.parent.glob("features/*.h5"))) == 1


def test_existing_run_dir_is_refused_and_kept(store, tmp_path):
    path, _, _ = store
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="--overwrite"):
        train(TrainRequest("sspl", [str(path)], str(run), sets=TINY, progress=False))
    assert (run / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_train_cli_validates_and_eval_cli_reports(store, tmp_path):
    path, boxes, ann = store
    run = tmp_path / "run"
    args = ["train", "sspl", "--data", str(path), "--val-fraction", "0.34", "--annotations",
            str(ann), "--benchmark", "vggss", "--out", str(run), "--no-progress"]  # fmt: skip
    for s in [*TINY, "train.epochs=2", "train.batch_size=2"]:
        args += ["--set", s]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "best ciou" in res.output
    with open(run / "val_log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(float(r["epoch"])) for r in rows] == [1, 2]
    assert all(0.0 <= float(r["ciou"]) <= 1.0 and r["val_loss"] not in ("", "nan") for r in rows)
    assert (run / "best.pt").is_file() and (run / "plots" / "loss.png").is_file()
    assert (run / "config.yaml").read_text().count("image_size: 32") == 1
    summary = json.loads((run / "summary.json").read_text())
    assert summary["select"] == "ciou" and summary["epochs_done"] == 2

    report = tmp_path / "report"
    res = CliRunner().invoke(
        cli,
        ["eval", "--run", str(run), "--data", str(path), "--benchmark", "vggss",
         "--annotations", str(ann), "--report", str(report), "--workers", "0"],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["n"] == len(boxes)
    maps = dict(np.load(report / "maps.npz"))
    assert sorted(maps) == sorted(boxes) and all(m.shape == (2, 2) for m in maps.values())
    from avmodels.metrics import evaluate
    from avprep.annotations import load_annotations

    again = evaluate(maps, load_annotations(ann, "vggss"))
    assert again.ciou == pytest.approx(metrics["ciou"]) and again.auc == pytest.approx(
        metrics["auc"]
    )
    with open(report / "per_sample.csv") as fh:
        assert len(list(csv.DictReader(fh))) == len(boxes)
    # a paper's subset: --ids
    two = sorted(boxes)[:2]
    res = CliRunner().invoke(
        cli,
        ["eval", "--ckpt", str(run / "final.pt"), "--data", str(path), "--benchmark", "vggss",
         "--annotations", str(ann), "--ids", ",".join(two), "--json", "--workers", "0"],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n"] == 2


class _Orange(Method):
    """Not registered: its map is the orange square of the tiny store's frames."""

    name = "orange"

    def sample_transform(self, train):
        return _orange_tf

    def encode(self, batch):
        return batch["frame"].float()

    def losses(self, features, batch):
        return {"loss": torch.zeros(())}

    def maps(self, features, batch):
        f = features
        mask = ((f[..., 0] > 180) & (f[..., 1] < 140) & (f[..., 2] < 100)).float()
        # peak at the square's centroid so the maximum (pointing) is well inside it
        h, w = mask.shape[1:]
        yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        n = mask.sum((1, 2)).clamp_min(1)
        cy = (mask * yy).sum((1, 2)) / n
        cx = (mask * xx).sum((1, 2)) / n
        d2 = (yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2
        return mask * (1 + torch.exp(-d2 / 10))


def _orange_tf(sample):
    return {"clip_id": sample["clip_id"], "frame": torch.from_numpy(np.asarray(sample["frame"]))}


def test_eval_scores_known_maps_per_clip(store):
    path, boxes, ann = store
    from avprep.annotations import load_annotations

    method = _Orange({})
    method.register_parameter("p", nn.Parameter(torch.zeros(1)))
    ds = MethodDataset(open_sources([path], ["frame"]), method.sample_transform(False))
    maps, _ = predict_maps(method, ds, batch_size=4, progress=False)
    assert sorted(maps) == sorted(boxes)
    anns = load_annotations(ann, "vggss")
    res = score_maps(maps, anns)
    assert res.ciou == 1.0 and res.pointing == 1.0
    # the same maps given to the wrong clips score worse: ids and maps stay paired
    ids = sorted(maps)
    shifted = {ids[i]: maps[ids[(i + 1) % len(ids)]] for i in range(len(ids))}
    assert score_maps(shifted, anns).mean_iou < res.mean_iou


def test_sspl_batch_of_one_trains_error_and_evaluates(store):
    path, _, _ = store
    cfg = resolve_config("sspl", sets=TINY)
    from avmodels.methods import build_method

    m = build_method("sspl", cfg)
    ds = MethodDataset(open_sources([path], m.required_inputs()), m.sample_transform(True))
    batch = default_collate([ds[0]])
    m.train()
    with pytest.raises(ConfigError, match="batch of 1"):
        m.training_losses(batch)
    m.eval()
    assert m.localization_map(batch).shape == (1, 2, 2)


def test_model_selection_and_early_stopping():
    from avmodels.engine.train import update_selection

    p = {"best": None, "best_epoch": None, "bad_validations": 0, "stopped_early": False}
    assert update_selection(p, 0.30, 1, higher=True, patience=2)
    assert not update_selection(p, 0.30, 2, higher=True, patience=2, min_delta=0.01)
    assert update_selection(p, 0.35, 3, higher=True, patience=2)
    assert (p["best"], p["best_epoch"], p["bad_validations"]) == (0.35, 3, 0)
    assert not update_selection(p, float("nan"), 4, higher=True, patience=2)
    assert not p["stopped_early"]
    assert not update_selection(p, 0.2, 5, higher=True, patience=2)
    assert p["stopped_early"] and p["best_epoch"] == 3
    q = {"best": None}
    assert update_selection(q, 1.0, 1, higher=False) and update_selection(q, 0.5, 2, higher=False)
    assert not update_selection(q, 0.7, 3, higher=False) and q["best"] == 0.5


@pytest.mark.slow
def test_select_on_test_warns_and_bf16_autocast_trains(store, tmp_path):
    path, _, _ = store
    run = tmp_path / "run"
    sets = [*TINY, "train.epochs=1", "train.amp=bf16", "train.channels_last=true"]
    with pytest.warns(UserWarning, match="selected on the test set"):
        res = train(TrainRequest("sspl", [str(path)], str(run), select_on_test=[str(path)],
                                 sets=sets, progress=False))  # fmt: skip
    assert res.select == "loss" and res.best_epoch == 1
    with open(run / "val_log.csv") as fh:
        before, row = list(csv.DictReader(fh))  # the original's evaluation before training too
    assert int(float(before["epoch"])) == 0 and int(float(row["epoch"])) == 1
    assert np.isfinite(float(row["val_loss"]))
    assert all(np.isfinite(v) for v in _losses(run).values())
    assert json.loads((run / "summary.json").read_text())["validation"] == "the TEST set"


@pytest.mark.slow
def test_ring_loader_trains_the_same_steps_as_torch_dataloader(store, tmp_path):
    path, _, _ = store
    sets = [*TINY, "train.epochs=2", "eval.every=0", "train.num_workers=2", "train.max_steps=5"]
    runs = {}
    for kind in ("torch", "ring"):
        out = tmp_path / kind
        res = train(TrainRequest("sspl", [str(path)], str(out), sets=[*sets,
                    f"train.loader={kind}"], progress=False))  # fmt: skip
        assert res.steps == 5
        runs[kind] = _losses(out)
    assert sorted(runs["ring"]) == [1, 2, 3, 4, 5]  # crosses an epoch: the slots are re-dealt
    for step, loss in runs["torch"].items():
        assert runs["ring"][step] == pytest.approx(loss, abs=1e-6), step
    with pytest.raises(ConfigError, match="train.loader"):
        train(TrainRequest("sspl", [str(path)], str(tmp_path / "bad"),
                           sets=[*TINY, "train.loader=fast"], progress=False))  # fmt: skip
