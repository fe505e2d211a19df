"""A report from an ``avmodels eval --report`` folder: examples, baselines, classes, provenance."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avmodels.report.page import Example, Row, write_report
from avprep.errors import InputError

log = logging.getLogger(__name__)


# -- choosing examples ----------------------------------------------------------
def pick_examples(per_sample: Any, k: int = 4) -> tuple[list[str], list[str]]:
    """Clip ids of the ``k`` best and ``k`` worst samples by IoU (NaN counts as worst).

    Ties are broken by clip id so the choice is deterministic; a clip is never
    both among the best and the worst.
    """
    rows = [
        (str(c), -1.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v))
        for c, v in zip(per_sample["clip_id"], per_sample["iou"])
    ]
    best = [c for c, _ in sorted(rows, key=lambda r: (-r[1], r[0]))[:k]]
    worst = [c for c, _ in sorted(rows, key=lambda r: (r[1], r[0])) if c not in best][:k]
    return best, worst


def boxes_of(annotation: Any) -> list[list[float]]:
    """Normalised boxes of an ``Annotation``, a VGG-SS entry or a list of boxes."""
    if hasattr(annotation, "boxes"):
        return [b.as_list() if hasattr(b, "as_list") else list(b) for b in annotation.boxes]
    if isinstance(annotation, Mapping) and "bbox" in annotation:
        return [list(map(float, b)) for b in annotation["bbox"]]
    return [list(map(float, b)) for b in annotation]


def examples_for(
    ids: Sequence[str],
    per_sample: Any,
    maps: Mapping[str, np.ndarray],
    annotations: Mapping[str, Any],
    frame_of: Callable[[str], np.ndarray],
) -> list[Example]:
    """:class:`Example` objects for ``ids`` (``frame_of(clip_id)`` gives the RGB frame)."""
    by_id = {
        str(c): (float(v), bool(h))
        for c, v, h in zip(per_sample["clip_id"], per_sample["iou"], per_sample["pointing_hit"])
    }
    return [
        Example(
            clip_id=c,
            frame=frame_of(c),
            heatmap=np.asarray(maps[c]),
            boxes=boxes_of(annotations[c]),
            iou=by_id[c][0],
            pointing_hit=by_id[c][1],
        )
        for c in ids
    ]


def store_frames(path: str | os.PathLike) -> Callable[[str], np.ndarray]:
    """``clip id -> key frame`` read from an avprep store (native shards or SSPL layout)."""
    from avprep.store import open_dataset

    ds = open_dataset(path, modalities=["frame"])

    def frame_of(clip_id: str) -> np.ndarray:
        return np.asarray(ds[ds.row_of(clip_id)]["frame"])

    return frame_of


BASELINE_NOTES = {
    "centre": "centred Gaussian, ignores the input",
    "random": "seeded noise",
    "whole image": "the whole frame as the sounding region (the field's trivial baseline)",
    "ceiling": "the ground truth as a map",
}


def baseline_rows(annotations: Mapping[str, Any], preset: str, seed: int = 0) -> list[Row]:
    """Rows of the reference maps on the scored clips: centre, random, whole image, ceiling."""
    from avmodels.baselines import score_baselines, score_whole_image

    scored = score_baselines(annotations, preset, seed=seed)
    return [
        Row("centre", "baseline", scored["centre"].to_dict(), BASELINE_NOTES["centre"]),
        Row("random", "baseline", scored["random"].to_dict(), BASELINE_NOTES["random"]),
        Row(
            "whole image",
            "baseline",
            score_whole_image(annotations, preset),
            BASELINE_NOTES["whole image"],
        ),
        Row("ceiling", "ceiling", scored["ceiling"].to_dict(), BASELINE_NOTES["ceiling"]),
    ]


def class_table(per_sample: Any, annotations: Mapping[str, Any]) -> list[dict[str, Any]]:
    """cIoU, mean IoU and pointing per class label (empty when no clip has a label).

    Rows are sorted by clip count (largest first), then by label; clips
    without a label are grouped as ``(none)``.
    """
    labels = {c: getattr(a, "label", None) for c, a in annotations.items()}
    if not any(v for v in labels.values()):
        return []
    groups: dict[str, list[tuple[float, bool]]] = {}
    for c, iou, hit in zip(per_sample["clip_id"], per_sample["iou"], per_sample["pointing_hit"]):
        label = labels.get(str(c)) or "(none)"
        groups.setdefault(label, []).append((float(iou), bool(hit)))
    rows = []
    for label, vals in groups.items():
        ious = np.array([v for v, _ in vals], dtype=np.float64)
        rows.append(
            {
                "label": label,
                "n": len(vals),
                "ciou": float(np.sum(ious >= 0.5) / ious.size),
                "mean_iou": float(np.mean(ious)),
                "pointing": float(np.mean([h for _, h in vals])),
            }
        )
    return sorted(rows, key=lambda r: (-r["n"], r["label"]))


def _model_facts(model_file: str | None) -> dict[str, Any]:
    """sha256, epoch and selection rule of a model file (empty when it is gone)."""
    if not model_file or not Path(model_file).is_file():
        return {}
    from avprep.atomic import sha256_file

    facts: dict[str, Any] = {"checkpoint_sha256": sha256_file(model_file)}
    try:
        from avmodels.engine.checkpoint import load_model_file

        meta = load_model_file(model_file).get("meta") or {}
    except InputError:
        return facts
    for key, name in (("epoch", "epoch"), ("select", "selection rule"), ("score", "score")):
        if meta.get(key) is not None:
            facts[name] = meta[key]
    return facts


def provenance(metrics: Mapping[str, Any], eval_dir: str | os.PathLike) -> dict[str, Any]:
    """Where the figures come from: checkpoint and its sha256, epoch, selection rule,
    preset, benchmark, id list and count, data, code version, date.

    Read from ``metrics.json`` (``avmodels eval --report`` records them); what
    an older folder lacks is taken from the model file when it is still there.
    """
    from avmodels import __version__
    from avmodels.provenance import written_at

    facts = _model_facts(metrics.get("model_file"))
    out: dict[str, Any] = {
        "checkpoint": metrics.get("model_file", "unknown"),
        "checkpoint sha256": metrics.get("model_sha256")
        or facts.get("checkpoint_sha256", "unknown"),
        "epoch": metrics.get("epoch", facts.get("epoch", "unknown")),
        "selection rule": metrics.get("select", facts.get("selection rule", "unknown")),
        "method": metrics.get("method", "unknown"),
        "preset": metrics.get("preset", "unknown"),
        "benchmark": metrics.get("benchmark", "unknown"),
        "annotations": metrics.get("annotations", "unknown"),
        "id list": metrics.get("ids") or "all annotated clips in the data",
        "clips scored": metrics.get("n", "unknown"),
        "training seed": metrics.get("seed", "unknown"),
        "data": metrics.get("data", "unknown"),
        "code version (eval)": metrics.get("code_version", "unknown"),
        "evaluated at": written_at(Path(eval_dir) / "metrics.json"),
        "eval folder": str(eval_dir),
        "report written by": f"avmodels {__version__}",
    }
    if metrics.get("n_ids") is not None:
        out["id list"] = f"{out['id list']} ({metrics['n_ids']} ids)"
    return out


def _annotations_of(
    annotations: Mapping[str, Any] | str | os.PathLike | None,
    benchmark: str | None,
    metrics: Mapping[str, Any],
    src: Path,
) -> dict[str, Any]:
    """The scored clips' ground truth: a mapping as given, else a file loaded."""
    if annotations is None:
        annotations = metrics.get("annotations")
        if not annotations:
            raise InputError(f"{src}/metrics.json names no annotations: pass --annotations PATH")
    if isinstance(annotations, Mapping):
        return dict(annotations)
    from avprep.annotations import load_annotations

    bench = benchmark or metrics.get("benchmark")
    if not bench:
        raise InputError(f"{src}/metrics.json names no benchmark: pass --benchmark NAME")
    if not Path(annotations).exists():
        raise InputError(f"annotations not found: {annotations} (pass --annotations PATH)")
    return load_annotations(annotations, str(bench))


def report_from_eval(
    eval_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    annotations: Mapping[str, Any] | str | os.PathLike | None = None,
    *,
    benchmark: str | None = None,
    frames: str | os.PathLike | Callable[[str], np.ndarray] | None = None,
    extra_rows: Sequence[Row] | None = None,
    k: int = 4,
    name: str | None = None,
    title: str | None = None,
    notes: Sequence[str] = (),
    meta: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> Path:
    """The report of an ``avmodels eval --report`` folder.

    ``annotations``: the ground truth as ``{clip id: Annotation}``, or its
    file/folder (read as ``benchmark``, by default the one ``metrics.json``
    names), or ``None`` for the file ``metrics.json`` names. ``frames``: a
    store path or a ``clip id -> frame`` callable (without it the page has no
    overlays; ``None`` uses the evaluated store when it holds frames).
    ``extra_rows``: the rows beside the model; ``None`` scores the baselines
    (centre, random, whole image, ceiling) on the scored clips with the
    evaluation's preset. ``meta``: the provenance table; ``None`` builds it
    with :func:`provenance`.
    """
    import pandas as pd

    src = Path(eval_dir)
    for f in ("metrics.json", "per_sample.csv", "maps.npz"):
        if not (src / f).is_file():
            raise InputError(f"{src} has no {f}: run `avmodels eval ... --report {src}` first")
    metrics = json.loads((src / "metrics.json").read_text())
    per_sample = pd.read_csv(src / "per_sample.csv", dtype={"clip_id": str})
    anns = _annotations_of(annotations, benchmark, metrics, src)
    scored = {c: anns[c] for c in per_sample["clip_id"] if c in anns}
    missing = [c for c in per_sample["clip_id"] if c not in anns]
    if missing:
        raise InputError(
            f"{len(missing)} scored clips have no annotation in the ground truth given "
            f"(e.g. {', '.join(missing[:3])}): is it the file the evaluation used?"
        )
    label = name or str(metrics.get("method") or "model")
    if extra_rows is None:
        extra_rows = baseline_rows(scored, str(metrics.get("preset") or "default"), seed=seed)
    rows = [Row(label, "model", metrics), *extra_rows]
    if frames is None:
        frames = _store_with_frames(metrics.get("data"))
    best: list[Example] = []
    worst: list[Example] = []
    if frames is not None:
        frame_of = frames if callable(frames) else store_frames(frames)
        b_ids, w_ids = pick_examples(per_sample, k)
        with np.load(src / "maps.npz") as npz:
            maps = {c: npz[c] for c in (*b_ids, *w_ids)}
        best = examples_for(b_ids, per_sample, maps, scored, frame_of)
        worst = examples_for(w_ids, per_sample, maps, scored, frame_of)
    return write_report(
        out_dir,
        rows,
        title=title or f"{label}: localisation report",
        best=best,
        worst=worst,
        notes=notes,
        meta=provenance(metrics, src) if meta is None else meta,
        classes=class_table(per_sample, scored),
        meta_title="Provenance" if meta is None else "Run",
    )


def _store_with_frames(data: Any) -> str | None:
    """The one evaluated store, when there is one and it holds frames."""
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if not isinstance(data, str) or not Path(data).exists():
        return None
    try:
        from avprep.store import open_dataset

        open_dataset(data, modalities=["frame"])
    except Exception as exc:  # a store without frames, or another layout: no overlays
        log.info("no overlays: %s (%s)", data, exc)
        return None
    return data
