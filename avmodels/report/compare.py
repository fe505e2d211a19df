"""Comparing runs: evaluations grouped by everything but the seed, mean and sample std."""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avmodels.report.page import _CSS, COLUMNS, _fmt
from avprep.atomic import atomic_path, write_text
from avprep.errors import InputError

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
