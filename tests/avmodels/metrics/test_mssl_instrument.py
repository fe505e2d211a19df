"""AudioSet-instrument end to end at toy size: pair rows (<ytid>.tNN), labels from the tag
pickle, a 15-class mssl model, and `avmodels eval --benchmark audioset-instrument`."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from click.testing import CliRunner

from avmodels.cli import cli
from avmodels.methods.pseudo_labels import read_labels
from avprep.errors import InputError
from tests.engine_data import write_tiny_store
from tests.method_config import one_thread  # noqa: F401 (autouse fixture)

TAGS = {"vidB": [3, 7], "vidA": [0, 11]}  # two instruments each


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("instrument")
    stores = [
        write_tiny_store(root, 4, size=48, seconds=1, sample_rate=22050, prefix="vidA.t", name="a.h5")[0],
        write_tiny_store(root, 3, size=48, seconds=1, sample_rate=22050, prefix="vidB.t", name="b.h5")[0],
    ]  # fmt: skip
    table = {}
    for vid, cats in TAGS.items():
        t = np.zeros(15)
        t[cats] = 1.0
        table[vid] = t
    (root / "val_audio.pkl").write_bytes(pickle.dumps(table, protocol=3))
    # frames: vidA seconds 1, 2 (two instruments), 3 (one); vidB seconds 0, 3 (3: no row)
    keys = sorted(TAGS)
    anns = []
    for vid, seconds in (("vidA", (1, 2)), ("vidB", (0, 3))):
        for s in seconds:
            for c in TAGS[vid]:
                anns.append({"image_id": 10 * keys.index(vid) + s, "category_id": c,
                             "bbox": [0.1 + 0.1 * (c % 3), 0.2, 0.3, 0.4]})  # fmt: skip
    anns.append({"image_id": 3, "category_id": 0, "bbox": [0.0, 0.0, 0.5, 0.5]})
    (root / "normav.json").write_text(json.dumps({"annotations": anns, "categories": []}))
    return root, stores


@pytest.mark.slow
def test_labels_from_tags_and_the_class_aware_eval(toy, tmp_path):
    root, stores = toy
    data = [a for s in stores for a in ("--data", str(s))]
    labels = tmp_path / "tags.h5"
    res = CliRunner().invoke(
        cli,
        ["pseudo-labels", *data, "--from-tags", str(root / "val_audio.pkl"), "--out", str(labels)],
    )
    assert res.exit_code == 0, res.output
    table = read_labels(labels, 15)
    assert sorted(np.flatnonzero(table["vidA.t0002"][0])) == TAGS["vidA"]
    assert np.array_equal(table["vidB.t0001"][0], table["vidB.t0001"][1])  # both streams
    run = tmp_path / "run"
    sets = ["train.max_steps=1", "train.epochs=1", "train.batch_size=4", "data.spectrogram=audio",
            "model.backbone=small", "model.pretrained=false", "model.small_width=8",
            "model.small_channels=32", "model.proj_hidden=64", "data.image_size=32",
            "model.num_classes=15", f"labels.file={labels}", "labels.require=true"]  # fmt: skip
    args = ["train", "mssl", *data, "--out", str(run), "--no-progress"]
    for s in sets:
        args += ["--set", s]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "notes" not in json.loads(
        (run / "run.json").read_text()
    )  # the paper's labels: no fallback
    ev = ["eval", "--run", str(run), *data, "--benchmark", "audioset-instrument",
          "--annotations", str(root / "normav.json"), "--video-ids", str(root / "val_audio.pkl"),
          "--device", "cpu", "--json"]  # fmt: skip
    res = CliRunner().invoke(cli, ev)
    assert isinstance(res.exception, InputError) and "vidB/3" in str(res.exception)
    res = CliRunner().invoke(cli, [*ev, "--allow-missing", "--report", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["n"] == 3 and out["mode"] == "class" and out["n_missing"] == 2  # vidB/3's two maps
    assert 0.0 <= out["ciou"] <= 1.0
    assert json.loads((tmp_path / "rep" / "metrics.json").read_text())["n"] == 3


def test_tags_must_cover_every_row(toy, tmp_path):
    root, stores = toy
    (tmp_path / "few.pkl").write_bytes(pickle.dumps({"vidA": np.zeros(15)}, protocol=3))
    res = CliRunner().invoke(
        cli,
        ["pseudo-labels", "--data", str(stores[1]), "--from-tags", str(tmp_path / "few.pkl"),
         "--out", str(tmp_path / "x.h5")],
    )  # fmt: skip
    assert isinstance(res.exception, InputError) and "vidB" in str(res.exception)
    assert not (tmp_path / "x.h5").exists()


def test_model_maps_keys_each_scored_frame_per_class(toy):
    """engine/class_maps.model_maps: only rows of scored frames are run, each class's map
    under <ytid>/<second>/<class>, equal to the model's own class_maps on that row."""
    import torch

    from avmodels.data import MethodDataset, make_loader, open_sources
    from avmodels.engine.class_maps import model_maps, pair_frame
    from avmodels.methods import build_method

    _, stores = toy
    method = build_method(
        "mssl",
        {"model": {"backbone": "small", "pretrained": False, "small_width": 8,
                   "small_channels": 32, "proj_hidden": 64, "num_classes": 3},
         "data": {"image_size": 32, "spectrogram": "audio"}, "train": {"stage": 2},
         "labels": {"fallback": "none"}},
    )  # fmt: skip
    wanted = {"vidA/1", "vidB/2", "vidB/9"}  # vidB/9 has no row: nothing to run
    maps = model_maps(method, stores, pair_frame, wanted)
    assert sorted(maps) == [f"{f}/{k}" for f in ("vidA/1", "vidB/2") for k in range(3)]
    sources = open_sources([str(s) for s in stores], method.required_inputs())
    row = sources.ids.index("vidB.t0002")
    ds = MethodDataset(sources, method.sample_transform(train=False), [row])
    with torch.no_grad():
        own = method.class_maps(next(iter(make_loader(ds, batch_size=1))))[0].numpy()
    for k in range(3):
        np.testing.assert_allclose(maps[f"vidB/2/{k}"], own[k], atol=1e-6)
    agnostic = model_maps(method, stores, pair_frame, wanted, mode="agnostic")
    assert sorted(agnostic) == ["vidA/1", "vidB/2"]
    with pytest.raises(InputError, match="no row of the data"):
        model_maps(method, stores, lambda cid: None, wanted)
