"""The demo chain at toy size, the loopback server, the recipes and the report module.

The chain test runs everything ``make demo`` runs (synth, loopback download,
extract, pack, train, eval, baselines, report) on 14 clips with one epoch of
a tiny model, then runs it again to check that every stage resumes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from avmodels import demo, demo_mssl, report
from avprep.errors import ConfigError, InputError
from avprep.synth.classes import CLASSES

TOY_SETS = (
    "train.batch_size=4",
    "train.num_workers=0",
    "eval.batch_size=8",
    "data.image_size=32",
    "model.small_width=8",
    "model.small_channels=32",
)


def toy_settings(out: Path) -> demo.DemoSettings:
    return demo.DemoSettings(
        clips=14,
        seed=3,
        out=out,
        minutes=None,
        epochs=1,
        jobs=1,
        backend="serial",
        image_size=48,
        synth=demo.SynthSettings(size="96x72", seconds=1.0),
        examples=1,
        progress=False,
        extra_sets=TOY_SETS,
    )


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    s = toy_settings(out)
    return s, demo.run_demo(s)


class Page(HTMLParser):
    """The metrics rows and images of a report page."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-name" in a:
            self.rows.append(a["data-name"])
        if tag == "img":
            self.images.append(a["src"])
        if tag in ("link", "script"):
            self.links.append(tag)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_toy_chain_artefacts(toy):
    s, res = toy
    p = demo.demo_paths(s)
    ids = {split: demo.read_list(p.split_list(split)) for split in demo.SPLITS}
    assert sum(len(v) for v in ids.values()) == 14 and all(ids.values())

    # stages 1-4 are pipelines/synthav.yaml, run by avprep's pipeline runner
    state = json.loads((s.root / ".pipeline" / "synthav.json").read_text())
    assert set(state["stages"]) == {
        "synth", "download", "extract", "pack-train", "pack-val", "pack-test",
    }  # fmt: skip
    assert (s.root / "urls.txt").read_text().count("http://127.0.0.1:") == 14

    # download: every clip came through the loopback server, byte for byte
    for split_ids in ids.values():
        for cid in split_ids:
            assert sha(p.videos / f"{cid}.mp4") == sha(p.synthav / "videos" / f"{cid}.mp4")
    records = [json.loads(x) for x in (p.videos / "manifest.jsonl").read_text().splitlines()]
    ok = {r["clip_id"] for r in records if r.get("status") == "ok"}
    assert ok == {c for v in ids.values() for c in v}
    assert all(r["meta"]["url"].startswith("http://127.0.0.1:") for r in records if "meta" in r)

    # shards: one store per split holding exactly the split's clips, frames at 48 px
    from avprep.store import open_dataset

    for split in demo.SPLITS:
        assert (p.store(split) / "index.json").is_file()
        ds = open_dataset(p.store(split))
        assert ds.ids == ids[split]
        sample = ds[0]
        assert sample["frame"].shape == (48, 48, 3)
        assert sample["spectrogram"].shape[-1] == 64  # the demo's 64-band log-mel

    # run dir: the resolved config carries the demo's overrides
    run = res.run_dir
    for name in ("config.yaml", "run.json", "final.pt", "summary.json", "best.pt"):
        assert (run / name).is_file(), name
    import yaml

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["train"]["epochs"] == 1 and cfg["train"]["seed"] == 3
    assert cfg["data"]["image_size"] == 32 and cfg["model"]["backbone"] == "small"

    # metrics JSON of the test split, and the baselines beside it
    metrics = json.loads((res.eval_dir / "metrics.json").read_text())
    assert metrics["n"] == len(ids["test"]) == res.model["n"]
    for key in ("ciou", "auc", "mean_iou", "pointing"):
        assert 0.0 <= metrics[key] <= 1.0
    maps = np.load(res.eval_dir / "maps.npz")
    assert sorted(maps.files) == sorted(ids["test"])
    assert maps[ids["test"][0]].shape == (4, 4)  # 32 px / stride 8
    assert set(res.baselines) == {"centre", "random", "objects", "ceiling"}
    assert res.baselines["ceiling"]["ciou"] >= 0.5  # large objects: the ceiling is high

    # summary.json and the report
    summary = json.loads((Path(s.out) / "summary.json").read_text())
    assert summary["model"]["ciou"] == pytest.approx(metrics["ciou"])
    assert summary["margin_ciou"] == pytest.approx(metrics["ciou"] - summary["centre"]["ciou"])
    assert set(summary["stage_seconds"]) == set(demo.STAGE_NAMES)
    page_path = Path(s.out) / "report" / "index.html"
    assert res.report == page_path
    page = Page()
    page.feed(page_path.read_text())
    assert page.rows == ["ssl-tie", "centre", "random", "objects", "ceiling"]
    assert page.images == ["success.png", "best-1.png", "worst-1.png"]
    assert page.links == []  # no external assets
    for src in page.images:
        img = cv2.imread(str(page_path.parent / src))
        assert img is not None and img.shape[0] > 100 and img.std() > 5


@pytest.mark.slow
def test_toy_chain_resumes(toy, capsys):
    s, first = toy
    final = first.run_dir / "final.pt"
    before = (final.stat().st_mtime_ns, sha(final))
    capsys.readouterr()
    again = demo.run_demo(s)
    out = capsys.readouterr().out
    assert "0 generated, 14 already there" in out  # synth (every step is called: each resumes)
    assert re.search(r"14 clip\(s\) in the list, 14 already done, 0 attempted now", out)  # download
    assert "is finished: kept" in out  # train
    assert again.run_dir == first.run_dir
    assert (final.stat().st_mtime_ns, sha(final)) == before
    assert again.model == first.model


def test_serve_folder_serves_and_closes(tmp_path):
    from avprep.loopback import serve_folder

    (tmp_path / "a.bin").write_bytes(b"x" * 1000)
    with serve_folder(tmp_path) as base:
        assert base.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(base + "a.bin", timeout=5) as r:  # noqa: S310 - loopback
            assert r.read() == b"x" * 1000
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "missing.bin", timeout=5)  # noqa: S310
        assert err.value.code == 404
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(base + "a.bin", timeout=2)  # noqa: S310


def test_loopback_server_counts_requests_and_binds_loopback_only(tmp_path):
    from avprep.loopback import LoopbackServer

    (tmp_path / "v.mp4").write_bytes(b"0123456789")
    with LoopbackServer(tmp_path) as srv:
        assert srv.httpd.server_address[0] == "127.0.0.1"
        req = urllib.request.Request(srv.url("v.mp4"), headers={"X-Probe": "1"})
        with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310 - loopback
            assert r.read() == b"0123456789"
    assert srv.hits["/v.mp4"] == 1
    assert srv.requests[0][0] == "/v.mp4" and srv.requests[0][1]["X-Probe"] == "1"
    assert srv.httpd.stopping.is_set()


def test_recipes_match_the_registries():
    from avmodels.engine.config import resolve_config
    from avprep.profiles import get_profile

    for name, r in demo.RECIPES.items():
        assert r.method == name
        opts = dict(r.extract)
        get_profile(r.profile, **opts)  # every override is a valid profile parameter
        cfg = resolve_config(r.method, sets=r.sets(seed=5, epochs=2))  # every key exists
        assert cfg["train"]["epochs"] == 2 and cfg["train"]["seed"] == 5
    assert demo.DEFAULT_METHOD in demo.RECIPES


def test_unknown_method_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="valid: .*ssl-tie"):
        _ = demo.DemoSettings(method="nope", out=tmp_path).recipe


def test_run_key_changes_with_what_decides_the_model(tmp_path):
    s = demo.DemoSettings(out=tmp_path)
    k = demo.run_key(s, 5)
    assert demo.run_key(s, 5) == k
    assert demo.run_key(s, 6) != k
    assert demo.run_key(demo.DemoSettings(out=tmp_path, clips=801), 5) != k
    assert demo.run_key(demo.DemoSettings(out=tmp_path, extra_sets=("optim.lr=0.1",)), 5) != k
    assert demo.run_key(demo.DemoSettings(out=tmp_path / "x"), 5) == k  # not the folder


# -- report module --------------------------------------------------------------
def _metrics(ciou: float, pointing: float) -> dict:
    curve = [1.0] * 10 + [ciou] + [0.0] * 10
    return {"ciou": ciou, "auc": 0.5, "mean_iou": 0.4, "pointing": pointing, "curve": curve, "n": 3}


def test_overlay_draws_map_boxes_and_peak():
    frame = np.full((40, 40, 3), 128, np.uint8)
    heat = np.zeros((4, 4), np.float32)
    heat[3, 0] = 1.0  # peak at the bottom-left cell
    img = report.overlay(frame, heat, [[0.5, 0.0, 1.0, 0.5]], side=200)
    assert img.shape == (200, 200, 3) and img.dtype == np.uint8
    assert tuple(img[0, 150]) == report.GT_COLOUR  # the box's top edge
    assert tuple(img[175, 25]) == report.PEAK_COLOUR  # the peak's dot
    # jet: the low corner is blue, the hot corner red
    assert img[100, 190, 2] > img[100, 190, 0] and img[190, 5, 0] > img[190, 5, 2]
    flat = report.overlay(frame, np.zeros((4, 4)), [], side=64)
    assert flat.shape == (64, 64, 3)  # a constant map draws no peak and does not fail
    with pytest.raises(InputError):
        report.overlay(np.zeros((4, 4)), heat)


def test_pick_examples_is_deterministic_and_disjoint():
    ps = pd.DataFrame({"clip_id": ["c", "a", "b", "d"], "iou": [0.5, 0.5, float("nan"), 0.9]})
    best, worst = report.pick_examples(ps, 2)
    assert best == ["d", "a"]  # ties by clip id
    assert worst == ["b", "c"]  # NaN counts as worst; never one of the best
    best, worst = report.pick_examples(ps, 3)
    assert best == ["d", "a", "c"] and worst == ["b"]


def test_page_escapes_and_orders_rows(tmp_path):
    rows = [
        report.Row("ceiling", "ceiling", _metrics(1.0, 1.0)),
        report.Row("centre", "baseline", _metrics(0.1, 0.5)),
        report.Row("<b>model</b>", "model", _metrics(0.8, 0.9)),
    ]
    page = report.write_report(tmp_path, rows, title="T & <x>", meta={"a": [1, 2]})
    text = page.read_text()
    assert "&lt;b&gt;model&lt;/b&gt;" in text and "<b>model</b>" not in text
    assert "T &amp; &lt;x&gt;" in text
    assert (
        text.index("&lt;b&gt;model")
        < text.index('data-name="centre"')
        < text.index('data-name="ceiling"')
    )
    assert "(+0.700)" in text  # model cIoU minus the centre prior's
    assert (tmp_path / "success.png").is_file()
    table = report.text_table(rows)
    assert table.splitlines()[2].startswith("<b>model</b>")
    assert "+0.700" in table.splitlines()[-1]
    with pytest.raises(InputError):
        report.write_report(tmp_path, [report.Row("x", "bogus", _metrics(0, 0))])


def test_report_from_eval_needs_an_eval_folder(tmp_path):
    with pytest.raises(InputError, match="metrics.json"):
        report.report_from_eval(tmp_path, tmp_path / "r", {})


def test_nan_metrics_render_as_na(tmp_path):
    m = _metrics(0.2, 0.3)
    m["ciou"] = None
    row = report.Row("model", "model", m)
    assert math.isnan(row.value("ciou"))
    assert "n/a" in report.text_table([row])


def test_loopback_is_kept_away_from_a_proxy(monkeypatch):
    monkeypatch.setenv("no_proxy", "example.org")
    monkeypatch.delenv("NO_PROXY", raising=False)
    from avprep.loopback import bypass_proxy_for_loopback

    bypass_proxy_for_loopback()
    bypass_proxy_for_loopback()  # idempotent
    import os

    assert os.environ["no_proxy"] == "example.org,127.0.0.1,localhost"
    assert os.environ["NO_PROXY"] == "127.0.0.1,localhost"


# -- DEMO_METHOD=mssl: two stages on two-source SynthAV, class-aware scores --------------
@pytest.mark.slow
def test_mssl_demo_trains_both_stages_and_scores_class_aware(tmp_path):
    import h5py
    import yaml

    s = dataclasses.replace(
        toy_settings(tmp_path), method="mssl", extra_sets=(*TOY_SETS, "model.proj_hidden=32")
    )
    res = demo.run_demo(s)
    p = demo.demo_paths(s)
    assert s.root.name == "seed3-two-source"
    meta = json.loads((p.synthav / "synthav.json").read_text())
    assert meta["config"]["sources"] == 2
    clips = {c["id"]: c for c in meta["clips"]}

    # labels: every stored clip's two sounding classes, the same for both streams
    names = [c.name for c in CLASSES[:5]]
    (labels,) = (s.root / "labels").glob("*.h5")
    with h5py.File(labels) as f:
        ids = [c.decode() for c in f["clip_id"][()]]
        audio, visual = f["audio"][()], f["visual"][()]
    assert sorted(ids) == sorted(
        c for split in demo.SPLITS for c in demo.read_list(p.split_list(split))
    )
    for cid, row in zip(ids, audio):
        assert [names[i] for i in np.flatnonzero(row)] == sorted(
            clips[cid]["sounding"], key=names.index
        )
    assert np.array_equal(audio, visual)

    # two runs: stage 1, then stage 2 started from stage 1's final weights
    s1 = res.run_dir.with_name(res.run_dir.name[: -len("-s2")] + "-s1")
    cfg1 = yaml.safe_load((s1 / "config.yaml").read_text())
    cfg2 = yaml.safe_load((res.run_dir / "config.yaml").read_text())
    assert cfg1["train"]["stage"] == 1 and cfg2["train"]["stage"] == 2
    assert cfg2["model"]["init_from"] == str(s1 / "final.pt")
    assert cfg1["labels"]["file"] == cfg2["labels"]["file"] == str(labels)
    assert cfg2["model"]["num_classes"] == 5 and cfg2["labels"]["require"] is True
    for run in (s1, res.run_dir):
        assert (run / "final.pt").is_file()
    assert cfg1["optim"]["lr"] == 10 * cfg2["optim"]["lr"]  # the paper's ratio of rates
    # stage 2 really starts from stage 1: its model, built from its config as training
    # builds it, holds stage 1's final weights (all but the stage-2 projections)
    import torch

    from avmodels.engine.checkpoint import load_model_file
    from avmodels.methods import build_method

    start = build_method("mssl", cfg2).state_dict()
    final1 = load_model_file(s1 / "final.pt")["state_dict"]
    shared = [k for k in start if not k.startswith(("project_", "kmeans."))]
    assert any(k.startswith("vision.") for k in shared)
    for k in shared:
        torch.testing.assert_close(start[k], final1[k], msg=k)
    assert "notes" not in json.loads((res.run_dir / "run.json").read_text())

    # class-aware ground truth: each sounding box under its own class (vggss.json has the
    # same boxes without classes)
    test = demo.test_ids(p)
    gt = demo_mssl.class_ground_truth(p, test)
    vggss = json.loads(p.annotations.read_text())
    by_id = {e["file"]: e for e in vggss}
    for f in gt.frames:
        assert len(f.boxes) == 2  # two distinct classes: every test clip is scored
        entry = by_id[f.ytid]
        for name, box in zip(entry["class"].split("+"), entry["bbox"]):
            ((x, y, w, h),) = f.boxes[names.index(name)]
            assert np.allclose([x, y, x + w, y + h], box)

    # scores: both stages class-agnostic, and class-aware beside the references
    summary = json.loads((Path(s.out) / "summary.json").read_text())
    aware = summary["class_aware"]
    assert set(aware) == {"mssl stage 2", "mssl stage 1", "centre", "random", "ceiling", "swapped"}
    assert all(m["n"] == len(test) for m in aware.values())
    assert aware["ceiling"]["ciou"] == 1.0 and aware["swapped"]["ciou"] < 1.0
    assert summary["model"]["n"] == summary["stage1"]["n"] == len(test)
    assert set(summary["stage_seconds"]) == set(demo_mssl.STAGE_NAMES)
    page = Page()
    page.feed((Path(s.out) / "report" / "index.html").read_text())
    assert page.rows[:2] == ["mssl stage 2", "mssl stage 1"]


def test_mssl_stage_two_says_when_init_from_is_not_loaded():
    """model.init_from is read only with model.pretrained=true; a run that names it but
    turns pretrained off (the demo's first recipe) starts from random weights: the run
    record must say so rather than the log's INFO line alone."""
    from avmodels.methods import build_method

    small = {"backbone": "small", "small_width": 8, "small_channels": 16, "small_stride": 8}
    m = build_method(
        "mssl",
        {"model": {**small, "pretrained": False, "init_from": "/nowhere/final.pt"},
         "train": {"stage": 2}, "labels": {"fallback": "none"}},
    )  # fmt: skip
    assert any("NOT LOADED" in n and "/nowhere/final.pt" in n for n in m.run_notes)
    m = build_method(
        "mssl", {"model": {**small, "pretrained": False}, "train": {"stage": 2},
                 "labels": {"fallback": "none"}},
    )  # fmt: skip
    assert not any("NOT LOADED" in n for n in m.run_notes)
