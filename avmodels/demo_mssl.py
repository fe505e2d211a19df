"""``DEMO_METHOD=mssl make demo``: Multi-Source's two stages on two-source SynthAV.

The data are ``pipelines/synthav.yaml`` with ``sources=2`` (two sounding
objects of distinct classes and one silent distractor a clip), extracted
with the ``mssl`` profile at the demo's small size. Then:

1. labels     SynthAV's class tags as the labels of both streams (the paper's
              AudioSet-instrument model learns from the 15 instrument tags
              the same way; the pretrained taggers behind ``avmodels
              pseudo-labels`` cannot be downloaded here and would not know
              SynthAV's classes), written in the format ``labels.file`` reads;
2. train-1    stage 1 (pair correspondence + category classifiers);
3. train-2    stage 2 from stage 1's final weights (class-wise alignment; STAGE_SETS);
4. eval       both stages, class-agnostic (``default`` preset, both sounding
              boxes as the ground truth), beside the centre prior, a random
              map, the sound-blind objects map and the ceiling;
5. class-aware Multi-Source's class-aware metric (``utils/evaluate.py``: a map
              per class, foreground above 0.1 of its maximum on a 224 grid,
              IoU with that class's box, averaged over the two classes) on the
              model's per-class maps, beside the same references per class
              and the *swapped* ceiling (each class given the other sounding
              object's box: what a map that finds both sources but mixes up
              which is which scores);
6. report     ``OUT/report/index.html``, ``OUT/summary.json``, a printed table.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avmodels import demo
from avprep.atomic import write_json
from avprep.errors import InputError

STAGE_NAMES = (
    "synth", "download", "extract", "pack", "labels", "train-1", "train-2", "eval",
    "class-aware", "baselines", "report",
)  # fmt: skip


# Per stage (in the run key): the paper's ratio of rates (stage 2 ten times lower than
# stage 1) one decade up, since minutes on CPU leave ~100 steps a stage, where stage 1 at
# 1e-3 stays at chance (pair loss 0.69, class probabilities ~0.4 for every class, so all
# classes pass stage 2's 0.3 filter); and stage 2 loads stage 1 (``model.init_from`` is
# read only with ``model.pretrained=true``, which the recipe turns off for stage 1's
# from-scratch streams).
STAGE_SETS = {
    1: ("train.stage=1", "optim.lr=0.01"),
    2: ("train.stage=2", "optim.lr=0.001", "model.pretrained=true"),
}


# -- labels --------------------------------------------------------------------------
def class_index(p: demo.DemoPaths) -> dict[str, int]:
    """SynthAV class name -> its index (the order of ``--classes K``: the first K)."""
    from avprep.synth.classes import CLASSES

    cfg = json.loads((p.synthav / "synthav.json").read_text())["config"]
    return {c.name: i for i, c in enumerate(CLASSES[: int(cfg["classes"])])}


def tag_vectors(p: demo.DemoPaths) -> dict[str, np.ndarray]:
    """Clip id -> 0/1 vector of its sounding classes (SynthAV's tags)."""
    index = class_index(p)
    meta = json.loads((p.synthav / "synthav.json").read_text())
    out = {}
    for clip in meta["clips"]:
        v = np.zeros(len(index), np.float32)
        v[[index[name] for name in clip["sounding"]]] = 1.0
        out[clip["id"]] = v
    return out


def write_tag_labels(p: demo.DemoPaths, out: Path, splits: Sequence[str] = demo.SPLITS) -> int:
    """The labels file (``labels.file``) of every stored clip: its tags, for both streams."""
    from avmodels.methods.mssl_labels import write_tags_file
    from avprep.store import open_dataset

    tags = tag_vectors(p)
    ids = [c for split in splits for c in open_dataset(p.store(split), modalities=["frame"]).ids]
    missing = [c for c in ids if c not in tags]
    if missing:
        raise InputError(f"{len(missing)} stored clips are not in synthav.json, e.g. {missing[0]}")
    write_tags_file(out, ids, np.stack([tags[c] for c in ids]))
    return len(ids)


# -- class-aware ground truth and maps --------------------------------------------------
def class_ground_truth(p: demo.DemoPaths, clip_ids: Sequence[str]):
    """Multi-Source's per-class ground truth of the test clips (one frame each, second 0)."""
    from avmodels.metrics.mssl import InstrumentFrame, InstrumentGT

    index = class_index(p)
    meta = {c["id"]: c for c in json.loads((p.synthav / "synthav.json").read_text())["clips"]}
    frames = []
    for cid in clip_ids:
        boxes: dict[int, list[tuple[float, float, float, float]]] = {}
        for obj in meta[cid]["objects"]:
            if obj["sounding"]:
                x0, y0, x1, y1 = obj["bbox"]
                boxes.setdefault(index[obj["class"]], []).append((x0, y0, x1 - x0, y1 - y0))
        frames.append(InstrumentFrame(cid, 0, boxes))
    return InstrumentGT(frames, {i: name for name, i in index.items()})


def key_frame(clip_id: str) -> tuple[str, int]:
    """A demo clip's scored frame: its key frame, "second" 0."""
    return clip_id, 0


def reference_class_maps(gt, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Per-class references: centre prior, random map, ceiling, swapped ceiling."""
    from avmodels.baselines import centre_prior, gt_map, random_maps
    from avmodels.metrics.mssl import map_key

    out: dict[str, dict[str, np.ndarray]] = {
        "centre": {},
        "random": {},
        "ceiling": {},
        "swapped": {},
    }
    for f in gt.two_source():
        classes = sorted(f.boxes)
        for c, other in zip(classes, classes[::-1]):
            key = map_key(f.ytid, f.second, c)
            out["centre"][key] = centre_prior([key])[key]
            out["random"][key] = random_maps([key], seed=seed)[key]
            out["ceiling"][key] = gt_map([_corners(b) for b in f.boxes[c]])
            out["swapped"][key] = gt_map([_corners(b) for b in f.boxes[other]])
    return out


def _corners(box: tuple[float, float, float, float]) -> list[float]:
    x, y, w, h = box
    return [x, y, x + w, y + h]


def class_aware_scores(
    p: demo.DemoPaths, models: Mapping[str, Path], clip_ids: Sequence[str], seed: int
) -> dict[str, dict[str, Any]]:
    """The class-aware metric of each model and of the references."""
    from avmodels.engine.class_maps import evaluate_model_on
    from avmodels.metrics.mssl import evaluate_instrument

    gt = class_ground_truth(p, clip_ids)
    results = {}
    for name, model_file in models.items():
        res = evaluate_model_on(
            model_file, [p.store("test")], gt, frame_of=key_frame, device="cpu", batch_size=64
        )
        results[name] = res.to_dict()
    for name, maps in reference_class_maps(gt, seed).items():
        results[name] = evaluate_instrument(maps, gt, "class").to_dict()
    return results


# -- the chain ----------------------------------------------------------------------
def run_mssl_demo(s: demo.DemoSettings) -> demo.DemoResult:
    """Data (pipelines/synthav.yaml, two sources) -> labels -> stage 1 -> stage 2 -> scores."""
    from avmodels.report import Row, report_from_eval, text_table

    stages = demo.Stages(STAGE_NAMES)
    p = demo.prepare_data(s, stages)
    labels = s.root / "labels" / f"{s.recipe.profile_key(s.extract_options)}-tags.h5"
    with stages.stage("labels", "SynthAV's class tags for both streams"):
        n = write_tag_labels(p, labels)
        demo.say(f"    {n} clips labelled: {labels}")
    base_sets = (f"labels.file={labels}", f"model.num_classes={len(class_index(p))}")
    labelled = dataclasses.replace(s, extra_sets=(*base_sets, *s.extra_sets))
    epochs, why = demo.plan_epochs(labelled, p)
    staged_sets = tuple(x for stage in (1, 2) for x in STAGE_SETS[stage])
    key = demo.run_key(dataclasses.replace(s, extra_sets=(*staged_sets, *s.extra_sets)), epochs)
    runs = {1: s.root / "runs" / f"{key}-s1", 2: s.root / "runs" / f"{key}-s2"}
    for stage in (1, 2):
        extra = list(STAGE_SETS[stage])
        if stage == 2:
            extra.append(f"model.init_from={runs[1] / 'final.pt'}")
        with stages.stage(f"train-{stage}", f"stage {stage} ({s.recipe.note})"):
            demo.say(f"    plan: {why}")
            staged = dataclasses.replace(labelled, extra_sets=(*extra, *labelled.extra_sets))
            demo.train(staged, p, runs[stage], epochs)
    evals = {stage: s.root / "eval" / runs[stage].name for stage in (1, 2)}
    with stages.stage("eval", "test split, class-agnostic (both sounding boxes)"):
        model = {stage: demo.evaluate(s, p, runs[stage], evals[stage]) for stage in (1, 2)}
    ids = demo.test_ids(p)
    with stages.stage("class-aware", "a map per class, Multi-Source's class-aware IoU"):
        aware = class_aware_scores(
            p, {"mssl stage 2": _model_file(runs[2]), "mssl stage 1": _model_file(runs[1])},
            ids, s.seed,
        )  # fmt: skip
    with stages.stage("baselines", "centre prior, random map, objects, ceiling"):
        base = demo.baselines(p, s.seed)
    with stages.stage("report"):
        rows = demo.rows_of("mssl stage 2", model[2], base)
        rows.insert(1, Row("mssl stage 1", "model", model[1], "coarse: visual class maps"))
        aware_rows = [
            Row(name, "model" if name.startswith("mssl") else "baseline", m, _AWARE_NOTES.get(name, ""))
            for name, m in aware.items()
        ]  # fmt: skip
        report_dir = Path(s.out) / "report"
        page = report_from_eval(
            evals[2], report_dir, demo.test_annotations(p), frames=p.store("test"),
            extra_rows=rows[1:], k=s.examples, name="mssl stage 2",
            title="SynthAV demo: mssl (two sources)",
            notes=[
                f"Multi-Source trained in two stages on {s.clips} two-source SynthAV clips "
                f"(seed {s.seed}, {epochs} epochs each) with SynthAV's class tags as labels; "
                f"class-agnostic scores on the {model[2].get('n')} test clips with the "
                f"'{demo.PRESET}' preset (both sounding boxes are the ground truth).",
                "Class-aware (Multi-Source's utils/evaluate.py rule, IoU averaged over the "
                "two classes): " + "; ".join(
                    f"{name} cIoU {_fmt(m['ciou'])} AUC {_fmt(m['auc'])}" for name, m in aware.items()
                ),
            ],  # fmt: skip
            meta={
                "method": "mssl", "recipe": s.recipe.note, "seed": s.seed, "clips": s.clips,
                "epochs": epochs, "runs": [str(runs[1]), str(runs[2])], "labels": str(labels),
                "extraction": f"profile {s.recipe.profile} + {s.extract_options}",
                "class-aware": {k: _pick(v) for k, v in aware.items()},
                "stage seconds": dict(stages.seconds),
            },
        )  # fmt: skip
    result = demo.DemoResult(
        settings=s, run_dir=runs[2], eval_dir=evals[2], report=page, model=model[2],
        baselines=base, epochs=epochs, seconds=dict(stages.seconds), total_seconds=stages.total,
        extra={
            "stage1": _pick(model[1]),
            "class_aware": {k: _pick(v) for k, v in aware.items()},
        },
    )  # fmt: skip
    write_json(Path(s.out) / "summary.json", result.summary())
    demo.say("\nclass-agnostic (default preset, both sounding boxes):\n" + text_table(rows))
    demo.say("\nclass-aware (Multi-Source's metric, a map per class):")
    demo.say(f"{'map':<16}{'cIoU':>8}{'AUC':>8}{'mean IoU':>10}")
    for r in aware_rows:
        m = r.metrics
        demo.say(f"{r.name:<16}{_fmt(m['ciou']):>8}{_fmt(m['auc']):>8}{_fmt(m['mean_iou']):>10}")
    demo.say(f"report  {page}")
    demo.say(f"wall    {stages.total:.0f} s  ({demo._stage_line(stages.seconds)})")
    return result


_AWARE_NOTES = {
    "centre": "the centred Gaussian for every class",
    "random": "seeded noise per class",
    "ceiling": "each class's own box",
    "swapped": "each class given the other source's box",
}


def _model_file(run: Path) -> Path:
    from avmodels.steps import model_file_of

    return model_file_of(run, None)


def _pick(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: m.get(k) for k in ("ciou", "auc", "mean_iou", "pointing", "n") if k in m}


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"
