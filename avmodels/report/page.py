"""The report's page: the metrics table's rows, the HTML and the plain-text table."""

from __future__ import annotations

import dataclasses
import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avmodels.report.images import overlay, plot_success, save_png
from avprep.atomic import write_text
from avprep.errors import InputError

#: The columns of the metrics table: (key in the metrics dict, header).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("ciou", "cIoU"),
    ("auc", "AUC"),
    ("mean_iou", "mean IoU"),
    ("pointing", "pointing"),
)
KINDS = ("model", "control", "baseline", "ceiling")


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


def _metrics_table(rows: Sequence[Row], ref: Row | None) -> list[str]:
    """The metrics table: one line per map, models and controls with their delta to ``ref``."""
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for _, h in COLUMNS)
    out = [
        "<h2>Metrics</h2>",
        f'<table id="metrics"><thead><tr><th>map</th>{head}<th>clips</th></tr></thead><tbody>',
    ]
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
    return out


def _curve_section(curve_png: str | None) -> list[str]:
    if not curve_png:
        return []
    return [
        "<h2>Success rate</h2>",
        f'<img id="success-curve" src="{html.escape(curve_png)}" width="600" height="400" '
        'alt="fraction of clips with IoU at least t, for each map">',
    ]


def _examples_section(
    best: Sequence[tuple[str, Example]], worst: Sequence[tuple[str, Example]]
) -> list[str]:
    """The best and worst clips as overlays with their IoU and pointing result."""
    e = html.escape
    out = []
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
    return out


def _class_section(classes: Sequence[Mapping[str, Any]]) -> list[str]:
    if not classes:
        return []
    e = html.escape
    out = [
        "<h2>Per class</h2>",
        '<table id="classes"><thead><tr><th>class</th><th>clips</th><th>cIoU</th>'
        "<th>mean IoU</th><th>pointing</th></tr></thead><tbody>",
    ]
    for c in classes:
        out.append(
            f'<tr data-class="{e(str(c["label"]))}"><td>{e(str(c["label"]))}</td>'
            f"<td>{c['n']}</td><td>{_fmt(c['ciou'])}</td><td>{_fmt(c['mean_iou'])}</td>"
            f"<td>{_fmt(c['pointing'])}</td></tr>"
        )
    out.append("</tbody></table>")
    return out


def _meta_section(meta: Mapping[str, Any] | None, meta_title: str) -> list[str]:
    if not meta:
        return []
    e = html.escape
    out = [f'<h2>{e(meta_title)}</h2><table class="meta" id="provenance">']
    for k, v in meta.items():
        text = v if isinstance(v, str) else json.dumps(v, default=str)
        out.append(f'<tr data-key="{e(str(k))}"><td>{e(str(k))}</td><td>{e(text)}</td></tr>')
    out.append("</table>")
    return out


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
        *(f'<p class="note">{e(n)}</p>' for n in notes),
        *_metrics_table(rows, ref),
        *_curve_section(curve_png),
        *_examples_section(best, worst),
        *_class_section(classes),
        *_meta_section(meta, meta_title),
        "</body></html>",
    ]
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
