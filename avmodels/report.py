"""A static HTML report of a localisation evaluation: metrics table, curve, overlays.

One folder, no external assets, relative links only, so it can be opened from
disk, zipped or served as is::

    REPORT/index.html      metrics table (model beside the baselines), notes
    REPORT/success.png     success-rate curve: IoU threshold vs fraction of clips
    REPORT/best-1.png ...  the frames the model localises best, map over frame
    REPORT/worst-1.png ... and worst (green: ground truth, white dot: map peak)

:func:`write_report` takes metric rows (``EvalResult.to_dict()`` dicts), the
model's per-sample scores and maps, the frames and the ground-truth boxes;
:func:`report_from_eval` builds the same from an ``avmodels eval --report``
folder (``metrics.json``, ``per_sample.csv``, ``maps.npz``). :func:`text_table`
is the plain-text version of the table that ``make demo`` prints.
"""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from avprep.atomic import atomic_path, write_bytes, write_text
from avprep.errors import InputError

log = logging.getLogger(__name__)

#: The columns of the metrics table: (key in the metrics dict, header).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("ciou", "cIoU"),
    ("auc", "AUC"),
    ("mean_iou", "mean IoU"),
    ("pointing", "pointing"),
)
KINDS = ("model", "control", "baseline", "ceiling")
OVERLAY_SIDE = 256  # pixels of the longer side of an overlay image
GT_COLOUR = (40, 230, 40)  # RGB of the ground-truth boxes
PEAK_COLOUR = (255, 255, 255)


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the metrics table."""

    name: str
    kind: str  # one of KINDS; decides the styling and the order
    metrics: Mapping[str, Any]  # EvalResult.to_dict(): ciou, auc, mean_iou, pointing, curve, n
    note: str = ""

    def value(self, key: str) -> float:
        v = self.metrics.get(key)
        return float("nan") if v is None else float(v)


@dataclasses.dataclass(frozen=True)
class Example:
    """One clip shown as an overlay."""

    clip_id: str
    frame: np.ndarray  # (H, W, 3) uint8 RGB
    heatmap: np.ndarray  # 2-D map, any resolution
    boxes: Sequence[Sequence[float]]  # ground truth, normalised [xmin, ymin, xmax, ymax]
    iou: float
    pointing_hit: bool


# -- images ---------------------------------------------------------------------
def _normalise(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    lo, hi = float(m.min()), float(m.max())
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return np.zeros_like(m)
    return (m - lo) / (hi - lo)


def overlay(
    frame: np.ndarray,
    heatmap: np.ndarray,
    boxes: Iterable[Sequence[float]] = (),
    *,
    side: int = OVERLAY_SIDE,
    alpha: float = 0.45,
) -> np.ndarray:
    """The frame (enlarged to ``side`` px) under the min-max normalised map, as RGB uint8.

    The map is stretched over the whole frame (bilinear), coloured with the jet
    colour map, and blended with weight ``alpha``; ground-truth boxes are drawn
    in green and the map's peak as a white dot.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise InputError(f"expected an (H, W, 3) uint8 frame, got {frame.dtype} {frame.shape}")
    h, w = frame.shape[:2]
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    big = cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC)
    heat = cv2.resize(_normalise(heatmap), size, interpolation=cv2.INTER_LINEAR)
    heat_u8 = np.clip(heat * 255.0 + 0.5, 0, 255).astype(np.uint8)
    colour = cv2.cvtColor(cv2.applyColorMap(heat_u8, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    out = cv2.addWeighted(big, 1.0 - alpha, colour, alpha, 0.0)
    W, H = size
    thick = max(1, side // 128)
    for b in boxes:
        x0, y0, x1, y1 = (float(v) for v in b)
        p0 = (int(round(x0 * W)), int(round(y0 * H)))
        p1 = (int(round(x1 * W)) - 1, int(round(y1 * H)) - 1)
        cv2.rectangle(out, p0, p1, GT_COLOUR, thick)
    m = np.asarray(heatmap, dtype=np.float32)
    if m.size and float(m.max()) > float(m.min()):
        py, px = np.unravel_index(int(np.argmax(m)), m.shape)
        centre = (int((px + 0.5) / m.shape[1] * W), int((py + 0.5) / m.shape[0] * H))
        cv2.circle(out, centre, 3 * thick, PEAK_COLOUR, -1)
        cv2.circle(out, centre, 3 * thick, (0, 0, 0), 1)
    return out


def save_png(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG, atomically."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise InputError(f"cannot encode {path} as PNG")
    return write_bytes(path, buf.tobytes())


def plot_success(
    curves: Mapping[str, Sequence[float]],
    path: str | os.PathLike,
    thresholds: Sequence[float] | None = None,
) -> Path:
    """Plot "fraction of clips with IoU >= t" against ``t`` for each named curve (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if thresholds is None:
        from avmodels.metrics import THRESHOLDS

        thresholds = THRESHOLDS
    fig = Figure(figsize=(6.0, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    styles = {"ceiling": ":", "centre": "--", "random": "-."}
    for name, curve in curves.items():
        ys = [float("nan") if v is None else float(v) for v in curve]
        if len(ys) != len(thresholds):
            raise InputError(f"curve {name!r} has {len(ys)} points, expected {len(thresholds)}")
        ax.plot(list(thresholds), ys, styles.get(name, "-"), marker="o", markersize=3, label=name)
    ax.axvline(0.5, color="grey", linewidth=0.8)
    ax.text(0.505, 0.97, "cIoU threshold", color="grey", fontsize=8, va="top")
    ax.set_xlabel("IoU threshold t")
    ax.set_ylabel("fraction of clips with IoU >= t")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


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


# -- the page -------------------------------------------------------------------
def _fmt(v: float) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _sorted_rows(rows: Sequence[Row]) -> list[Row]:
    for r in rows:
        if r.kind not in KINDS:
            raise InputError(f"row {r.name!r}: kind {r.kind!r} is not one of {', '.join(KINDS)}")
    return sorted(rows, key=lambda r: KINDS.index(r.kind))


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:62em;padding:0 1em;color:#222;background:#fff}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:0.5em 0}
th,td{border-bottom:1px solid #ccc;padding:0.3em 0.8em;text-align:right}
th:first-child,td:first-child{text-align:left}
tr.model td{font-weight:bold}tr.ceiling td{color:#666;font-style:italic}
.delta{color:#555;font-size:0.9em}
figure{display:inline-block;margin:0.4em;vertical-align:top}
figcaption{font-size:0.85em;color:#444;max-width:256px;word-wrap:break-word}
.meta td{text-align:left;border:none;padding:0.1em 0.8em}.note{color:#444}
"""


def render_html(
    title: str,
    rows: Sequence[Row],
    *,
    curve_png: str | None,
    best: Sequence[tuple[str, Example]] = (),
    worst: Sequence[tuple[str, Example]] = (),
    notes: Sequence[str] = (),
    meta: Mapping[str, Any] | None = None,
    reference: str = "centre",
    classes: Sequence[Mapping[str, Any]] = (),
    meta_title: str = "Run",
) -> str:
    """The page as a string; image arguments are file names relative to the page.

    ``classes`` are the rows of the per-class table (:func:`class_table`);
    ``meta`` is shown under ``meta_title`` (the provenance of the figures).
    """
    e = html.escape
    rows = _sorted_rows(rows)
    ref = next((r for r in rows if r.name == reference), None)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
    ]
    for n in notes:
        out.append(f'<p class="note">{e(n)}</p>')
    out.append("<h2>Metrics</h2>")
    head = "".join(f"<th>{e(h)}</th>" for _, h in COLUMNS)
    out.append(
        f'<table id="metrics"><thead><tr><th>map</th>{head}<th>clips</th></tr></thead><tbody>'
    )
    for r in rows:
        cells = []
        for key, _ in COLUMNS:
            cell = _fmt(r.value(key))
            if ref is not None and r is not ref and r.kind in ("model", "control"):
                d = r.value(key) - ref.value(key)
                if not math.isnan(d):
                    cell += f' <span class="delta">({d:+.3f})</span>'
            cells.append(f"<td>{cell}</td>")
        label = e(r.name) + (f' <span class="delta">{e(r.note)}</span>' if r.note else "")
        n = r.metrics.get("n", "")
        out.append(
            f'<tr class="{e(r.kind)}" data-name="{e(r.name)}"><td>{label}</td>{"".join(cells)}'
            f"<td>{e(str(n))}</td></tr>"
        )
    out.append("</tbody></table>")
    if ref is not None:
        out.append(
            f'<p class="note">In brackets: difference to the {e(ref.name)} map. cIoU is the '
            "fraction of clips whose IoU (median-binarised map vs ground truth) is at least 0.5; "
            "AUC is the area under the curve below; pointing is the fraction of clips whose map "
            "peak falls inside a ground-truth box. The ceiling is the ground truth itself scored "
            "as a map.</p>"
        )
    if curve_png:
        out.append("<h2>Success rate</h2>")
        out.append(
            f'<img id="success-curve" src="{e(curve_png)}" width="600" height="400" '
            'alt="fraction of clips with IoU at least t, for each map">'
        )
    for heading, items in (("Best localised clips", best), ("Worst localised clips", worst)):
        if not items:
            continue
        out.append(f"<h2>{heading}</h2><div>")
        for src, ex in items:
            hit = "peak in box" if ex.pointing_hit else "peak outside"
            out.append(
                f'<figure><img class="overlay" src="{e(src)}" alt="map over {e(ex.clip_id)}">'
                f"<figcaption>{e(ex.clip_id)}: IoU {_fmt(ex.iou)}, {hit}</figcaption></figure>"
            )
        out.append("</div>")
    if best or worst:
        out.append(
            '<p class="note">Green: ground-truth box of the sounding object; white dot: the '
            "peak of the map; colours: the map (red high, blue low).</p>"
        )
    if classes:
        out.append("<h2>Per class</h2>")
        out.append(
            '<table id="classes"><thead><tr><th>class</th><th>clips</th><th>cIoU</th>'
            "<th>mean IoU</th><th>pointing</th></tr></thead><tbody>"
        )
        for c in classes:
            out.append(
                f'<tr data-class="{e(str(c["label"]))}"><td>{e(str(c["label"]))}</td>'
                f"<td>{c['n']}</td><td>{_fmt(c['ciou'])}</td><td>{_fmt(c['mean_iou'])}</td>"
                f"<td>{_fmt(c['pointing'])}</td></tr>"
            )
        out.append("</tbody></table>")
    if meta:
        out.append(f'<h2>{e(meta_title)}</h2><table class="meta" id="provenance">')
        for k, v in meta.items():
            text = v if isinstance(v, str) else json.dumps(v, default=str)
            out.append(f'<tr data-key="{e(str(k))}"><td>{e(str(k))}</td><td>{e(text)}</td></tr>')
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(
    out_dir: str | os.PathLike,
    rows: Sequence[Row],
    *,
    title: str = "Sound source localisation report",
    best: Sequence[Example] = (),
    worst: Sequence[Example] = (),
    notes: Sequence[str] = (),
    meta: Mapping[str, Any] | None = None,
    reference: str = "centre",
    classes: Sequence[Mapping[str, Any]] = (),
    meta_title: str = "Run",
) -> Path:
    """Write ``index.html``, ``success.png`` and the overlay PNGs; return the page's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    curves = {
        r.name: r.metrics["curve"] for r in _sorted_rows(rows) if r.metrics.get("curve") is not None
    }
    curve_png = None
    if curves:
        plot_success(curves, out / "success.png")
        curve_png = "success.png"
    placed: dict[str, list[tuple[str, Example]]] = {"best": [], "worst": []}
    for tag, items in (("best", best), ("worst", worst)):
        for i, ex in enumerate(items, start=1):
            name = f"{tag}-{i}.png"
            save_png(out / name, overlay(ex.frame, ex.heatmap, ex.boxes))
            placed[tag].append((name, ex))
    page = render_html(
        title,
        rows,
        curve_png=curve_png,
        best=placed["best"],
        worst=placed["worst"],
        notes=notes,
        meta=meta,
        reference=reference,
        classes=classes,
        meta_title=meta_title,
    )
    return write_text(out / "index.html", page)


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


# -- comparing runs ---------------------------------------------------------------
METRIC_KEYS = tuple(k for k, _ in COLUMNS)
GROUP_KEYS = ("method", "benchmark", "preset", "clips")


def find_evals(path: str | os.PathLike) -> list[Path]:
    """The eval folders (holding ``metrics.json``) of an eval folder or a run folder.

    A run folder's evaluations are its sub-folders (two levels deep) that hold
    a ``metrics.json``, e.g. ``RUN/eval`` from ``avmodels eval --run RUN
    --report RUN/eval``.
    """
    root = Path(path)
    if (root / "metrics.json").is_file():
        return [root]
    if not root.is_dir():
        raise InputError(f"{root}: no such run or eval folder")
    found = sorted(
        {p.parent for p in (*root.glob("*/metrics.json"), *root.glob("*/*/metrics.json"))}
    )
    if not found:
        raise InputError(
            f"{root} holds no evaluation (no metrics.json): run "
            f"`avmodels eval --run {root} ... --report {root}/eval` first"
        )
    return found


def _seed_of(metrics: Mapping[str, Any]) -> Any:
    if metrics.get("seed") is not None:
        return metrics["seed"]
    model_file = metrics.get("model_file")
    if model_file and Path(model_file).is_file():
        from avmodels.engine.checkpoint import load_model_file

        try:
            cfg = load_model_file(model_file).get("config") or {}
        except InputError:
            return None
        return (cfg.get("train") or {}).get("seed")
    return None


def compare_runs(paths: Sequence[str | os.PathLike]) -> tuple[list[dict], list[dict]]:
    """``(groups, runs)``: one row per evaluation, and per group of runs that differ
    only by seed (same method, benchmark, preset and clip count) the mean and
    sample standard deviation (ddof=1; empty for a single run) of each metric.
    """
    runs: list[dict[str, Any]] = []
    seen: set[Path] = set()
    for p in paths:
        for folder in find_evals(p):
            if folder.resolve() in seen:
                continue
            seen.add(folder.resolve())
            m = json.loads((folder / "metrics.json").read_text())
            runs.append(
                {
                    "eval": str(folder),
                    "method": str(m.get("method") or "model"),
                    "benchmark": str(m.get("benchmark") or ""),
                    "preset": str(m.get("preset") or ""),
                    "clips": m.get("n"),
                    "seed": _seed_of(m),
                    **{k: m.get(k) for k in METRIC_KEYS},
                }
            )
    if not runs:
        raise InputError("nothing to compare: give run or eval folders")
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault(tuple(r[k] for k in GROUP_KEYS), []).append(r)
    out = []
    for key, members in groups.items():
        row: dict[str, Any] = dict(zip(GROUP_KEYS, key))
        row["runs"] = len(members)
        row["seeds"] = " ".join(str(r["seed"]) for r in members if r["seed"] is not None)
        for k in METRIC_KEYS:
            vals = np.array(
                [float("nan") if r[k] is None else float(r[k]) for r in members], np.float64
            )
            row[f"{k}_mean"] = float(np.mean(vals))
            row[f"{k}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
        out.append(row)
    return out, runs


def _pm(mean: float, std: float | None) -> str:
    if mean is None or math.isnan(mean):
        return "n/a"
    return f"{mean:.3f}" if std is None or math.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def compare_markdown(groups: Sequence[Mapping[str, Any]]) -> str:
    """The comparison as a Markdown table (mean ± sample std over the runs of a row)."""
    head = ["method", "benchmark", "preset", "clips", "runs", "seeds", *(h for _, h in COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in groups:
        cells = [str(g[k]) for k in (*GROUP_KEYS, "runs", "seeds")]
        cells += [_pm(g[f"{k}_mean"], g[f"{k}_std"]) for k in METRIC_KEYS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_compare(out_dir: str | os.PathLike, paths: Sequence[str | os.PathLike]) -> Path:
    """``index.html``, ``compare.csv`` (one row per group), ``compare.md`` and
    ``runs.csv`` (one row per evaluation) in ``out_dir``; returns the page."""
    import pandas as pd

    groups, runs = compare_runs(paths)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "compare.csv") as tmp:
        pd.DataFrame(groups).to_csv(tmp, index=False)
    with atomic_path(out / "runs.csv") as tmp:
        pd.DataFrame(runs).to_csv(tmp, index=False)
    md = compare_markdown(groups)
    write_text(out / "compare.md", md)
    e = html.escape
    head = ["method", "benchmark", "preset", "clips", "runs", "seeds", *(h for _, h in COLUMNS)]
    page = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Comparison of {len(runs)} evaluations</title><style>{_CSS}</style></head><body>",
        f"<h1>Comparison of {len(runs)} evaluations</h1>",
        '<p class="note">One row per method, benchmark, preset and clip count; the '
        "figures are the mean &plusmn; the sample standard deviation over its runs "
        '(seeds). Also in <a href="compare.csv">compare.csv</a>, '
        '<a href="compare.md">compare.md</a> and, run by run, <a href="runs.csv">runs.csv</a>.</p>',
        '<table id="compare"><thead><tr>' + "".join(f"<th>{e(h)}</th>" for h in head),
        "</tr></thead><tbody>",
    ]
    for g in groups:
        cells = [e(str(g[k])) for k in (*GROUP_KEYS, "runs", "seeds")]
        cells += [e(_pm(g[f"{k}_mean"], g[f"{k}_std"])) for k in METRIC_KEYS]
        page.append(
            f'<tr data-name="{e(g["method"])}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
        )
    page.append('</tbody></table><h2>Evaluations</h2><table id="runs"><thead><tr>')
    page.append("<th>eval folder</th><th>method</th><th>seed</th>")
    page.append("".join(f"<th>{e(h)}</th>" for _, h in COLUMNS) + "</tr></thead><tbody>")
    for r in runs:
        cells = [e(r["eval"]), e(r["method"]), e(str(r["seed"]))]
        cells += [_fmt(None if r[k] is None else float(r[k])) for k in METRIC_KEYS]
        page.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    page.append("</tbody></table></body></html>")
    return write_text(out / "index.html", "\n".join(page) + "\n")


def text_table(rows: Sequence[Row], reference: str = "centre") -> str:
    """The metrics table as plain text (what ``make demo`` prints)."""
    rows = _sorted_rows(rows)
    ref = next((r for r in rows if r.name == reference), None)
    deltas = [r for r in rows if ref is not None and r.kind in ("model", "control")]
    labels = [r.name for r in rows] + [f"{r.name} - {reference}" for r in deltas]
    width = max([len(x) for x in labels] + [8]) + 2
    head = f"{'map':<{width}}" + "".join(f"{h:>10}" for _, h in COLUMNS)
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.name:<{width}}" + "".join(f"{_fmt(r.value(k)):>10}" for k, _ in COLUMNS))
    for r in deltas:
        d = "".join(f"{r.value(k) - ref.value(k):>+10.3f}" for k, _ in COLUMNS)
        lines.append(f"{r.name + ' - ' + reference:<{width}}{d}")
    return "\n".join(lines)
