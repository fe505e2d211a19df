"""``avmodels evaluate-maps``: score precomputed localisation maps (any model's output)."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import click
import numpy as np

from avmodels.metrics import DEFAULT_PRESET, PRESETS
from avmodels.metrics.mssl import INSTRUMENT_BENCHMARK
from avmodels.metrics.mssl import MODES as INSTRUMENT_MODES
from avprep.annotations.benchmarks import BENCHMARKS
from avprep.annotations.model import BAD_BOX_POLICIES, DEFAULT_BAD_BOXES
from avprep.errors import InputError


def load_maps(path: str | Path) -> dict[str, np.ndarray]:
    """``{clip_id: 2-D array}`` from an ``.npz`` (one array per clip id); no pickles."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise InputError(f"maps file not found: {path}") from None
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npz of maps ({exc})") from None


def _fmt(v: float) -> str:
    return "nan" if v != v else f"{v:.4f}"


@click.command("evaluate-maps")
@click.option(
    "--maps",
    "maps_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="An .npz holding one 2-D map per clip id (any resolution).",
)
@click.option(
    "--benchmark",
    required=True,
    type=click.Choice([*BENCHMARKS.names(), INSTRUMENT_BENCHMARK]),
    help="Annotation format of the ground truth; audioset-instrument: Multi-Source's "
    "class-aware metric on maps keyed '<ytid>/<second>/<category>' (see docs/evaluation.md).",
)
@click.option(
    "--annotations",
    "ann_path",
    required=True,
    type=click.Path(exists=True),
    help="Ground truth: VGG-SS JSON or XML folder, Flickr XML folder or JSON, Chaotic JSON.",
)
@click.option(
    "--preset",
    type=click.Choice(PRESETS.names()),
    default=DEFAULT_PRESET,
    show_default=True,
    help="Evaluation convention: a paper's exact script, or ours (default).",
)
@click.option("--ids", "ids_spec", default=None, metavar="LIST", help="Score only these clips.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option(
    "--per-sample",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="OUT.csv",
    help="Write per-clip IoU, pointing hit and counts to this CSV.",
)
@click.option(
    "--allow-missing",
    is_flag=True,
    help="Score the clips that have a map and report the annotated clips that have none "
    "(default: missing maps are an error).",
)
@click.option(
    "--bad-boxes",
    type=click.Choice(BAD_BOX_POLICIES),
    default=DEFAULT_BAD_BOXES,
    show_default=True,
    help="Policy for defective boxes (the paper presets use the raw boxes regardless).",
)
@click.option(
    "--video-ids",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="audioset-instrument: val_audio.pkl (or a text list) whose sorted ids the "
    "COCO image ids count.",
)
@click.option(
    "--mode",
    type=click.Choice(INSTRUMENT_MODES),
    default="class",
    show_default=True,
    help="audioset-instrument: one map per category (the paper) or one per frame.",
)
def evaluate_maps(
    maps_path,
    benchmark,
    ann_path,
    preset,
    ids_spec,
    as_json,
    per_sample,
    allow_missing,
    bad_boxes,
    video_ids,
    mode,
) -> None:
    """Score localisation maps against a benchmark's ground truth.

    Prints cIoU (AP50), AUC, mean IoU and pointing accuracy.

    \b
    Example:
      avmodels evaluate-maps --maps maps.npz --benchmark vggss \\
          --annotations vggss.json --preset ssltie --ids test_vggss_4911.txt --json
    """
    from avmodels.metrics import evaluate
    from avprep.annotations import load_annotations, read_ids
    from avprep.atomic import atomic_path

    t0 = time.perf_counter()
    if benchmark == INSTRUMENT_BENCHMARK:
        from avmodels.commands.instrument_eval import echo_instrument_result
        from avmodels.engine.class_maps import score_instrument_maps

        result = score_instrument_maps(load_maps(maps_path), ann_path, video_ids, mode,
                                       allow_missing=allow_missing, per_sample=per_sample)  # fmt: skip
        echo_instrument_result(result, mode, as_json)
        return
    anns = load_annotations(ann_path, benchmark, bad_boxes=bad_boxes)
    if ids_spec:
        wanted = read_ids(ids_spec)
        unknown = [i for i in wanted if i not in anns]
        if unknown:
            shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise InputError(f"{len(unknown)} ids of --ids have no annotation: {shown}")
        all_ids = anns
        anns = {i: anns[i] for i in wanted}
    maps = load_maps(maps_path)
    if ids_spec:
        # maps of annotated clips outside --ids are simply not asked for
        maps = {k: v for k, v in maps.items() if k in anns or k not in all_ids}
    result = evaluate(maps, anns, preset, allow_missing=allow_missing)
    if per_sample:
        with atomic_path(per_sample) as tmp:
            result.per_sample.to_csv(tmp, index=False)
    elapsed = time.perf_counter() - t0
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    rows = [
        ("preset", result.preset),
        ("clips", str(result.n)),
        ("cIoU (AP50)", _fmt(result.ciou)),
        ("AUC", _fmt(result.auc)),
        ("mean IoU", _fmt(result.mean_iou)),
        ("pointing", _fmt(result.pointing)),
    ]
    if result.n_nan:
        rows.append(("NaN IoU", f"{result.n_nan} clips (empty prediction and empty GT)"))
    if result.missing:
        shown = ", ".join(result.missing[:5]) + (" ..." if len(result.missing) > 5 else "")
        rows.append(("missing", f"{len(result.missing)} annotated clips without a map: {shown}"))
    if result.extra:
        rows.append(("ignored", f"{len(result.extra)} maps without an annotation"))
    if per_sample:
        rows.append(("per-sample", str(per_sample)))
    rows.append(("time", f"{elapsed:.2f} s"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")
