"""``avmodels report``: the page of a real evaluation, baselines, provenance, --compare.

The evaluations are real: randomly initialised SSPL models saved as model
files and scored by ``avmodels eval --report`` on a tiny native store.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from avmodels import report
from avmodels.cli import cli
from avprep.annotations import load_annotations
from avprep.annotations.model import Annotation, Box
from tests.avmodels.test_report_browser import chromium, run_chromium  # noqa: F401 - fixture
from tests.engine_data import write_tiny_store

pytestmark = pytest.mark.slow

SETS = ["model.pretrained=false", "model.image_size=32"]


def _model(path: Path, seed: int) -> Path:
    from avmodels.engine.checkpoint import save_model
    from avmodels.engine.config import resolve_config
    from avmodels.methods import METHODS

    cfg = resolve_config("sspl", None, [*SETS, f"train.seed={seed}"])
    torch.manual_seed(seed)
    return save_model(path, METHODS.get("sspl")(cfg), cfg, {"epoch": 3, "select": "ciou"})


def _eval(model: Path, store: Path, ann: Path, out: Path, *extra: str) -> None:
    res = CliRunner().invoke(
        cli,
        ["eval", "--ckpt", str(model), "--data", str(store), "--benchmark", "vggss",
         "--annotations", str(ann), "--report", str(out), "--workers", "0", "--device", "cpu",
         *extra],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0, res.output


@pytest.fixture(scope="module")
def evals(tmp_path_factory):
    root = tmp_path_factory.mktemp("evals")
    store, boxes = write_tiny_store(root, 6, size=40)
    ann = root / "gt.json"
    entries = [
        {"file": c, "class": "dog" if i % 2 else "cat", "bbox": [list(b)]}
        for i, (c, b) in enumerate(boxes.items())
    ]
    ann.write_text(json.dumps(entries))
    out = {}
    for seed in (0, 1):
        model = _model(root / f"model-{seed}.pt", seed)
        _eval(model, store, ann, root / "runs" / f"s{seed}" / "eval")
        out[seed] = root / "runs" / f"s{seed}"
    return {"root": root, "store": store, "ann": ann, "runs": out, "boxes": boxes}


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[str] = []
        self.classes: list[str] = []
        self.meta: dict[str, str] = {}
        self.imgs: list[str] = []
        self._key: str | None = None
        self._cells: list[str] = []
        self._in_td = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-name" in a:
            self.rows.append(a["data-name"])
        if tag == "tr" and "data-class" in a:
            self.classes.append(a["data-class"])
        if tag == "tr" and "data-key" in a:
            self._key, self._cells = a["data-key"], []
        if tag == "img":
            self.imgs.append(a["src"])
        if tag == "td":
            self._in_td = True

    def handle_endtag(self, tag):
        if tag == "td":
            self._in_td = False
        if tag == "tr" and self._key:
            self.meta[self._key] = self._cells[-1] if len(self._cells) > 1 else ""
            self._key = None

    def handle_data(self, data):
        if self._in_td and self._key and data.strip():
            self._cells.append(data.strip())


def test_report_cli_page_has_baselines_classes_and_provenance(evals, tmp_path):
    eval_dir = evals["runs"][0] / "eval"
    res = CliRunner().invoke(cli, ["report", str(eval_dir), "--out", str(tmp_path / "html")])
    assert res.exit_code == 0, res.output
    page = Page()
    page.feed((tmp_path / "html" / "index.html").read_text())
    assert page.rows == ["sspl", "centre", "random", "whole image", "ceiling"]
    assert page.classes == ["cat", "dog"]  # 3 clips each: ties sorted by label
    sha = hashlib.sha256((evals["root"] / "model-0.pt").read_bytes()).hexdigest()
    assert page.meta["checkpoint sha256"] == sha
    assert page.meta["epoch"] == "3" and page.meta["selection rule"] == "ciou"
    assert page.meta["benchmark"] == "vggss" and page.meta["preset"] == "default"
    assert page.meta["training seed"] == "0"
    assert page.meta["clips scored"] == "6"
    assert str(evals["store"]) in page.meta["data"]
    assert page.meta["code version (eval)"].startswith("avmodels ")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", page.meta["evaluated at"])
    # overlays come from the evaluated store's frames (found through metrics.json)
    assert page.imgs[0] == "success.png" and "best-1.png" in page.imgs
    for src in page.imgs:
        assert cv2.imread(str(tmp_path / "html" / src)) is not None


def test_report_from_eval_takes_an_annotation_path(evals, tmp_path):
    """The documented call passed the annotations' path: it raised TypeError."""
    eval_dir = evals["runs"][0] / "eval"
    page = report.report_from_eval(eval_dir, tmp_path / "p", str(evals["ann"]), frames=None)
    assert "whole image" in page.read_text()
    # the per-class table restated: cIoU per label from per_sample.csv
    with open(eval_dir / "per_sample.csv") as fh:
        rows = list(csv.DictReader(fh))
    anns = load_annotations(evals["ann"], "vggss")
    table = report.class_table(
        {k: [r[k] for r in rows] for k in ("clip_id",)}
        | {"iou": [float(r["iou"]) for r in rows]}
        | {"pointing_hit": [r["pointing_hit"] == "True" for r in rows]},
        anns,
    )
    for entry in table:
        ious = [float(r["iou"]) for r in rows if anns[r["clip_id"]].label == entry["label"]]
        assert entry["n"] == len(ious)
        assert entry["ciou"] == pytest.approx(sum(v >= 0.5 for v in ious) / len(ious))
        assert entry["mean_iou"] == pytest.approx(sum(ious) / len(ious))


def test_whole_image_baseline_is_the_box_area():
    """Whole frame as the prediction: IoU = box area / frame area (boxes on the 224 grid)."""
    from avmodels.baselines import score_whole_image

    anns = {
        "a": Annotation("a", "vggss", [Box(0.0, 0.0, 0.5, 0.5)]),  # area 0.25
        "b": Annotation("b", "vggss", [Box(0.0, 0.0, 1.0, 0.75)]),  # area 0.75
    }
    m = score_whole_image(anns, "default")
    assert m["mean_iou"] == pytest.approx(0.5)
    assert m["ciou"] == pytest.approx(0.5)  # only b reaches IoU 0.5
    assert m["pointing"] is None and m["n"] == 2
    assert m["curve"][0] == 1.0 and m["curve"][-1] == 0.0


def test_compare_mean_and_std_over_seeds(evals, tmp_path):
    runs = [str(p) for p in evals["runs"].values()]
    out = tmp_path / "cmp"
    res = CliRunner().invoke(cli, ["report", "--compare", *runs, "--out", str(out)])
    assert res.exit_code == 0, res.output
    m = [json.loads((p / "eval" / "metrics.json").read_text()) for p in evals["runs"].values()]
    with open(out / "compare.csv") as fh:
        (row,) = list(csv.DictReader(fh))  # two seeds of one method: one row
    assert row["runs"] == "2" and row["seeds"] == "0 1" and row["method"] == "sspl"
    for key in ("ciou", "auc", "mean_iou", "pointing"):
        vals = np.array([x[key] for x in m], dtype=np.float64)
        assert float(row[f"{key}_mean"]) == pytest.approx(vals.mean())
        assert float(row[f"{key}_std"]) == pytest.approx(vals.std(ddof=1))
    md = (out / "compare.md").read_text()
    assert md.startswith("| method | benchmark |") and "±" in md
    assert f"{np.mean([x['auc'] for x in m]):.3f} ±" in md
    with open(out / "runs.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 2
    assert "compare.csv" in (out / "index.html").read_text()


def test_report_errors_speak_cli(evals, tmp_path):
    res = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert res.exit_code != 0
    assert "avmodels eval" in str(res.exception) and "--report" in str(res.exception)
    res = CliRunner().invoke(cli, ["report", str(evals["runs"][0]), "--benchmark", "nope"])
    assert res.exit_code == 2 and "'nope' is not one of" in res.output


def test_report_page_in_chromium(chromium, evals, tmp_path):  # noqa: F811
    out = tmp_path / "html"
    res = CliRunner().invoke(cli, ["report", str(evals["runs"][1] / "eval"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    dom = run_chromium(chromium, tmp_path / "profile", "--dump-dom", (out / "index.html").as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = Page()
    page.feed(dom.stdout)
    assert page.rows == ["sspl", "centre", "random", "whole image", "ceiling"]
    assert page.classes == ["cat", "dog"] and len(page.meta["checkpoint sha256"]) == 64
    shot = tmp_path / "shot.png"
    res = run_chromium(
        chromium, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1100,2200",
        (out / "index.html").as_uri(),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (2200, 1100) and img.std() > 10
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)  # the curves and jet overlays are on screen
    assert ((hsv[..., 1] > 150) & (hsv[..., 2] > 80)).mean() > 0.005


def test_eval_scores_the_annotated_clips_in_the_data_by_default(evals, tmp_path):
    """Ground truth for more clips than the store holds: scored what is there, said so."""
    entries = json.loads(evals["ann"].read_text())
    more = [*entries, {"file": "notinstore_000001", "class": "cat", "bbox": [[0, 0, 1, 1]]}]
    ann = tmp_path / "gt.json"
    ann.write_text(json.dumps(more))
    res = CliRunner().invoke(
        cli,
        ["eval", "--ckpt", str(evals["root"] / "model-0.pt"), "--data", str(evals["store"]),
         "--benchmark", "vggss", "--annotations", str(ann), "--report", str(tmp_path / "eval"),
         "--workers", "0", "--device", "cpu"],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert m["n"] == len(evals["boxes"]) and m["n_skipped_not_in_data"] == 1
    assert "skipped 1 annotated clips" in res.stderr and "notinstore_000001" in res.stderr
