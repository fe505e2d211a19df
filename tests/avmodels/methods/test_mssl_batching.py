"""Multi-Source's original batching (main.py / utils/dataset.py / utils/audioset_data.py):
scenes of `mix` distinct clips x `frame` consecutive 1 s pairs, the start drawn by the
AVE rule (randint(0, 10 - frame)) or the AudioSet rule (randint(0, 11 - frame))."""

from __future__ import annotations

import csv
import random

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from avmodels.cli import cli
from avmodels.data import MethodDataset, Sources, make_loader
from avmodels.methods import build_method
from avmodels.methods.mssl import balanced_pair_loss
from avmodels.methods.mssl_batching import SceneSampler, original_negatives, validation_scenes
from avprep.errors import ConfigError
from tests.engine_data import write_tiny_store
from tests.method_config import one_thread  # noqa: F401 (autouse fixture)


# -- the rule, restated from the original's loaders -------------------------------------
def allowed_starts(count: int, frames: int, rule: str) -> set[int]:
    """utils/dataset.py: np.random.randint(0, 10 - frame) on 10 pairs (high exclusive);
    utils/audioset_data.py: np.random.randint(0, 11 - frame)."""
    high = (count - frames) if rule == "ave" else (count + 1 - frames)
    return set(range(0, high))


def make_ids(seed=0):
    """8 full clips of 10 pairs, one with pair 5 missing, one of 3 pairs; shuffled rows."""
    ids = [f"v{k}.t{i:02d}" for k in range(8) for i in range(10)]
    ids += [f"gap.t{i:02d}" for i in range(10) if i != 5]
    ids += [f"short.t{i:02d}" for i in range(3)]
    random.Random(seed).shuffle(ids)
    return ids


def parse(pid):
    clip, _, sec = pid.rpartition(".t")
    return clip, int(sec)


def check_scene_batch(ids, rows, scenes, mix, frames, rule):
    """Exactly `frames` pairs of each of `mix` distinct clips per scene, by the rule."""
    got = [parse(ids[r]) for r in rows]
    assert len(got) == scenes * mix * frames
    starts = []
    for s in range(scenes):
        scene = got[s * mix * frames : (s + 1) * mix * frames]
        clips = [scene[m * frames][0] for m in range(mix)]
        assert len(set(clips)) == mix  # distinct videos within a scene
        for m in range(mix):
            block = scene[m * frames : (m + 1) * frames]
            assert {c for c, _ in block} == {clips[m]}
            secs = [t for _, t in block]
            assert secs == list(range(secs[0], secs[0] + frames))  # consecutive, in order
            count = 10 if clips[m] != "short" else 3
            assert secs[0] in allowed_starts(count, frames, rule)
            assert not (clips[m] == "gap" and 5 in secs)  # the missing pair is never drawn
            starts.append((clips[m], secs[0]))
    return starts


@pytest.mark.parametrize("rule,mix,frames", [("ave", 4, 4), ("audioset", 1, 4), ("ave", 2, 1)])
def test_scene_batches_follow_the_original_rule(rule, mix, frames):
    ids = make_ids()
    kw = dict(scenes=2, mix=mix, frames=frames, rule=rule, seed=7)
    s = SceneSampler(ids, **kw)
    assert s.rows_per_batch == 2 * mix * frames
    usable = 9 if frames > 3 else 10  # "short" has no window of 4 pairs
    assert s.batches_per_epoch() == usable // 2  # an epoch: as many scenes as clips
    seen = []
    for epoch in range(60):
        s.set_epoch(epoch)
        keys = list(s)
        assert {e for _, e in keys} == {epoch}
        rows = [p for p, _ in keys]
        per = s.rows_per_batch
        for b in range(len(rows) // per):
            seen += check_scene_batch(ids, rows[b * per : (b + 1) * per], 2, mix, frames, rule)
    full = {st for c, st in seen if c.startswith("v")}
    assert full == allowed_starts(10, frames, rule)  # every allowed start occurs, no other
    if rule == "ave":
        assert 10 - frames not in full  # the last window is never drawn on AVE
    assert {c for c, _ in seen} >= {f"v{k}" for k in range(8)}
    # fixed seed: the same batches; another seed: others
    again = SceneSampler(ids, **kw)
    assert again.batch(3, 1) == s.batch(3, 1)
    assert SceneSampler(ids, **{**kw, "seed": 8}).batch(3, 1) != s.batch(3, 1)


def test_processes_and_resume_see_the_one_process_batches():
    ids = make_ids()
    one = SceneSampler(ids, scenes=4, mix=2, frames=3, rule="ave", seed=1)
    ranks = [
        SceneSampler(ids, scenes=2, mix=2, frames=3, rule="ave", seed=1, rank=r, world_size=2)
        for r in range(2)
    ]
    for k in range(one.batches_per_epoch()):
        assert ranks[0].batch(0, k) + ranks[1].batch(0, k) == one.batch(0, k)
    one.set_epoch(2, skip_batches=1)
    tail = [p for p, _ in one]
    assert tail == [r for k in range(1, one.batches_per_epoch()) for r in one.batch(2, k)]
    assert len(one) == len(tail)


def test_validation_scenes_start_with_each_clip():
    ids = make_ids()
    scenes = validation_scenes(ids, mix=3, frames=2, rule="ave", seed=0)
    names = sorted({parse(i)[0] for i in ids})  # every clip has a window of 2
    assert len(scenes) == len(names)
    for i, rows in enumerate(scenes):
        clips = [parse(ids[r])[0] for r in rows[::2]]
        assert clips[0] == names[i] and len(set(clips)) == 3


def test_bad_choices_and_too_few_clips_are_config_errors():
    ids = make_ids()
    with pytest.raises(ConfigError, match="window_rule"):
        SceneSampler(ids, scenes=1, mix=2, frames=2, rule="flickr")
    with pytest.raises(ConfigError, match="data.mix"):
        SceneSampler(ids, scenes=1, mix=0, frames=2, rule="ave")
    with pytest.raises(ConfigError, match="need 11 clips"):
        SceneSampler(ids, scenes=1, mix=11, frames=2, rule="ave")
    with pytest.raises(ConfigError, match="twice"):
        SceneSampler([*ids, ids[0]], scenes=1, mix=2, frames=2, rule="ave")
    with pytest.raises(ConfigError, match="data.batching"):
        build_method("mssl", {"data": {"batching": "clips"}, "model": {"pretrained": False}})


def test_original_negatives():
    other, sec = original_negatives(6, 1)
    assert other[:, 0].tolist() == [1, 0, 3, 2, 5, 4] and sec.eq(0).all()
    g = torch.Generator().manual_seed(0)
    other, sec = original_negatives(5, 4, g)
    for c in range(5):
        assert c not in other[c].tolist()
        assert sorted(sec[c].tolist()) == [0, 1, 2, 3]
    assert len({tuple(r) for r in sec.tolist()}) > 1  # permuted, not fixed


def test_pair_loss_keeps_same_clip_seconds_out_of_the_negatives():
    torch.manual_seed(0)
    b, n = 6, 3  # two clips x three seconds
    logits = torch.randn(b, b, 2)

    def ce(i, j, target):
        return float(torch.nn.functional.cross_entropy(logits[i, j][None], torch.tensor([target])))

    pos = np.mean([ce(i, i, 1) for i in range(b)])
    neg_all = np.mean([ce(i, j, 0) for i in range(b) for j in range(b) if i != j])
    neg_other = np.mean([ce(i, j, 0) for i in range(b) for j in range(b) if i // n != j // n])
    assert float(balanced_pair_loss(logits)) == pytest.approx(pos / 2 + neg_all / 2, rel=1e-6)
    got = float(balanced_pair_loss(logits, pairs_per_clip=n))
    assert got == pytest.approx(pos / 2 + neg_other / 2, rel=1e-6)
    assert got != pytest.approx(pos / 2 + neg_all / 2, rel=1e-3)


SMALL = ["model.backbone=small", "model.pretrained=false", "model.small_width=8",
         "model.small_channels=32", "model.proj_hidden=64", "data.image_size=32",
         "data.spectrogram=audio"]  # fmt: skip


@pytest.fixture(scope="module")
def pair_stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    return [
        write_tiny_store(root, n, size=32, seconds=1, sample_rate=22050, prefix=f"{v}.t",
                         name=f"{v}.h5", seed=k)[0]
        for k, (v, n) in enumerate((("vidA", 4), ("vidB", 3), ("vidC", 4)))
    ]  # fmt: skip


def test_the_method_loader_yields_scene_batches(pair_stores):
    from avprep.store import open_dataset

    cfg = {"data": {"batching": "scenes", "mix": 2, "frames_per_clip": 2,
                    "window_rule": "audioset", "spectrogram": "audio", "image_size": 32},
           "model": {"backbone": "small", "pretrained": False}}  # fmt: skip
    method = build_method("mssl", cfg)
    src = Sources([open_dataset(p) for p in pair_stores])
    ds = MethodDataset(src, method.sample_transform(True), seed=0, augment="sample")
    sampler = method.train_sampler(ds.ids, batch_size=1, rank=0, world_size=1, seed=0)
    loader = make_loader(ds, batch_size=sampler.rows_per_batch, sampler=sampler)
    batches = list(loader)
    assert len(batches) == 3  # three clips, one scene per batch
    for b in batches:
        assert b["frame"].shape[0] == 4 and b["spectrogram"].shape[0] == 4
        got = [parse(c) for c in b["clip_id"]]
        assert got[0][0] == got[1][0] != got[2][0] == got[3][0]
        assert got[1][1] == got[0][1] + 1 and got[3][1] == got[2][1] + 1


def test_train_mssl_on_scenes_runs_one_step_per_scene_batch(pair_stores, tmp_path):
    data = [a for s in pair_stores for a in ("--data", str(s))]
    run = tmp_path / "run"
    sets = [*SMALL, "train.epochs=1", "train.batch_size=1", "train.log_every=1",
            "train.num_workers=0", "data.batching=scenes", "data.mix=2",
            "data.frames_per_clip=2", "data.window_rule=audioset"]  # fmt: skip
    args = ["train", "mssl", *data, "--out", str(run), "--no-progress"]
    for s in sets:
        args += ["--set", s]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    with open(run / "train_log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3  # 3 clips -> 3 scenes of one batch each (11 rows as pairs)
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    bad = CliRunner().invoke(cli, [*args, "--set", "data.window_rule=flickr", "--overwrite"])
    assert isinstance(bad.exception, ConfigError) and "window_rule" in str(bad.exception)


# the original's shell scripts / argparse defaults, restated: (--mix, --frame, --train-batch)
SCRIPTS = {
    "ave": (4, 4, 1, "ave"),  # main.py defaults, utils/dataset.py AVE_C: randint(0, 10 - frame)
    "audioset-instrument": (1, 4, 32, "audioset"),  # train_audioset_avc.sh
    "flickr-original": (2, 1, 16, "audioset"),  # train_avc.sh (one pair per clip)
}


@pytest.mark.parametrize("preset", sorted(SCRIPTS))
def test_presets_carry_the_scripts_batching(preset):
    from avmodels.engine.config import resolve_config
    from avmodels.engine.config_presets import presets

    assert preset in presets("mssl")
    cfg = resolve_config("mssl", preset)
    d = cfg["data"]
    mix, frame, batch, rule = SCRIPTS[preset]
    assert (d["batching"], d["mix"], d["frames_per_clip"]) == ("scenes", mix, frame)
    assert (cfg["train"]["batch_size"], d["window_rule"]) == (batch, rule)
    assert resolve_config("mssl")["data"]["batching"] == "pairs"  # new/ stays the default
