"""``avmodels benchmark``: one model on every protocol it has data for, one table.

A *suite* (:data:`SUITES`) names protocols; each protocol runs when its data
is given (``--data PROTOCOL.KEY=VALUE``) and is skipped, with the reason in
the table's notes, otherwise. Keys per protocol (:data:`PROTOCOLS`):

=====================  ==========================================================
``flickr``, ``vggss``,  ``store`` (test shards, comma-separated), ``annotations``,
``vggss-heard``,        ``ids`` (optional: a list file or registry name, e.g.
``vggss-unheard``,      ``vggss/test-4911``); rows: every metric preset
``chaotic``
``extended-flickr``,    ``store`` (shards holding the test clips *and* the videos and
``extended-vggss``      audios of the silent list), ``annotations``, ``silent`` (the
                        ``*_test_plus_silent.csv``), ``ids`` (optional); rows: the
                        conventions ``default``, ``slavc``, ``acl-ssl``
``is3``                 ``store`` (keyed by IS3 sample names), ``meta``
                        (``synthetic3240_bbox.json``), ``masks`` (optional: the mask
                        folder, with ``meta`` = ``synthetic3240_seg.json``)
``s4``, ``ms3``         ``store`` (keyed by frame ids, e.g. ``<video>_<n>``), ``masks``
                        (folder of ``<frame id>.png``), ``ids`` (optional)
=====================  ==========================================================

Rows are protocol x preset (or convention); columns are the metrics of the
protocol; baseline rows (``centre``, ``whole-image``, ``random``, ``ceiling``)
are scored by the same code with the same preset where they are defined.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avprep.errors import ConfigError, InputError
from avprep.registry import Registry

log = logging.getLogger(__name__)

STANDARD = ("flickr", "vggss", "vggss-heard", "vggss-unheard", "chaotic")
EXTENDED = ("extended-flickr", "extended-vggss")
PROTOCOLS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # name: (required keys, optional keys)
    **{p: (("store", "annotations"), ("ids",)) for p in STANDARD},
    **{p: (("store", "annotations", "silent"), ("ids",)) for p in EXTENDED},
    "is3": (("store", "meta"), ("masks",)),
    "s4": (("store", "masks"), ("ids",)),
    "ms3": (("store", "masks"), ("ids",)),
}
BENCHMARK_OF = {
    "flickr": "flickr",
    "vggss": "vggss",
    "vggss-heard": "vggss",
    "vggss-unheard": "vggss",
    "chaotic": "chaotic",
    "extended-flickr": "flickr",
    "extended-vggss": "vggss",
}
SUITES: Registry[tuple[str, ...]] = Registry("benchmark suite")
SUITES.add("all", tuple(PROTOCOLS))
SUITES.add("standard", STANDARD)
SUITES.add("extended", EXTENDED)
SUITES.add("interactive", ("is3",))
SUITES.add("avsbench", ("s4", "ms3"))
EXTENDED_CONVENTIONS = ("default", "slavc", "acl-ssl")
AVS_CONVENTIONS = ("default", "acl-ssl", "official")
IS3_CONVENTIONS = ("default", "sslalignment")


def parse_data(items: Sequence[str]) -> dict[str, dict[str, str]]:
    """``["vggss.store=a,b", "vggss.annotations=x.json"]`` -> ``{"vggss": {...}}``."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        proto, dot, field = key.partition(".")
        if not sep or not dot or not value:
            raise ConfigError(
                f"--data {item!r}: expected PROTOCOL.KEY=VALUE (e.g. vggss.store=DIR)"
            )
        if proto not in PROTOCOLS:
            raise ConfigError(f"--data {item!r}: unknown protocol; valid: {', '.join(PROTOCOLS)}")
        need, opt = PROTOCOLS[proto]
        if field not in need + opt:
            raise ConfigError(f"--data {item!r}: {proto} takes {', '.join(need + opt)}")
        out.setdefault(proto, {})[field] = value
    return out


@dataclasses.dataclass
class Row:
    protocol: str
    preset: str
    model: str  # "model" or a baseline name
    n: int
    metrics: dict[str, float | None]


@dataclasses.dataclass
class BenchmarkResult:
    model_file: str
    method: str
    rows: list[Row]
    skipped: dict[str, str]
    notes: list[str] = dataclasses.field(default_factory=list)

    def columns(self) -> list[str]:
        cols: list[str] = []
        for r in self.rows:
            cols.extend(k for k in r.metrics if k not in cols)
        return cols

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_file": self.model_file,
            "method": self.method,
            "columns": self.columns(),
            "rows": [dataclasses.asdict(r) for r in self.rows],
            "skipped": dict(self.skipped),
            "notes": list(self.notes),
        }

    def table(self) -> tuple[list[str], list[list[str]]]:
        cols = self.columns()
        head = ["protocol", "preset", "model", "n", *cols]
        body = []
        for r in self.rows:
            cells = [r.protocol, r.preset, r.model, str(r.n)]
            for c in cols:
                v = r.metrics.get(c)
                cells.append("" if v is None else f"{100 * v:.2f}")
            body.append(cells)
        return head, body

    def markdown(self) -> str:
        head, body = self.table()
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(b) + " |" for b in body]
        lines.append("")
        lines.append("Metrics in %. " + "; ".join(f"{k}: {v}" for k, v in self.skipped.items()))
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        from html import escape

        head, body = self.table()
        th = "".join(f"<th>{escape(h)}</th>" for h in head)
        trs = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in b) + "</tr>" for b in body)
        notes = "".join(f"<li>{escape(k)}: {escape(v)}</li>" for k, v in self.skipped.items())
        notes += "".join(f"<li>{escape(n)}</li>" for n in self.notes)
        return (
            "<!doctype html><meta charset='utf-8'><title>avmodels benchmark</title>"
            f"<h1>{escape(self.method)}: {escape(self.model_file)}</h1>"
            f"<table border='1'><tr>{th}</tr>{trs}</table><p>Metrics in %.</p><ul>{notes}</ul>"
        )


def _clean(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


# -- model maps --------------------------------------------------------------------


class _Model:
    """The model, its sources per store spec, and map/confidence prediction."""

    def __init__(self, model_file: str | os.PathLike, device: str, batch_size: int, workers: int):
        from avmodels.engine.checkpoint import build_model
        from avmodels.engine.distributed import pick_device

        self.device = pick_device(device)
        self.method, self.info = build_model(model_file, self.device)
        self.batch_size, self.workers = batch_size, workers

    def sources(self, store: str) -> Any:
        from avmodels.data import open_sources

        paths = [p for p in store.split(",") if p]
        return open_sources(paths, self.method.required_inputs())

    def predict(self, sources: Any, ids: Sequence[str] | None) -> tuple[dict, dict]:
        from avmodels.data import MethodDataset
        from avmodels.engine.probe import maps_and_confidences

        rows = None
        if ids is not None:
            have = set(sources.ids)
            missing = [c for c in ids if c not in have]
            if missing:
                raise InputError(f"{len(missing)} clips are not in the store, e.g. {missing[:3]}")
            rows = [sources.row_of(c) for c in ids]
        ds = MethodDataset(sources, self.method.sample_transform(train=False), rows)
        return maps_and_confidences(self.method, ds, device=self.device,
                                    batch_size=self.batch_size, num_workers=self.workers)  # fmt: skip

    def predict_pairs(
        self, sources: Any, pairs: Sequence[tuple[str, str, str]]
    ) -> tuple[dict, dict]:
        from avmodels.data import MethodDataset
        from avmodels.engine.probe import PairedDataset, maps_and_confidences

        base = MethodDataset(sources, self.method.sample_transform(train=False))
        ds = PairedDataset(base, [(sources.row_of(v), sources.row_of(a), k) for v, a, k in pairs])
        return maps_and_confidences(self.method, ds, device=self.device,
                                    batch_size=self.batch_size, num_workers=self.workers)  # fmt: skip


# -- protocols ----------------------------------------------------------------------


def _ids_of(spec: Mapping[str, str]) -> list[str] | None:
    if "ids" not in spec:
        return None
    from avprep.annotations.idlist import read_ids

    return read_ids(spec["ids"])


NOTES: list[str] = []  # what a protocol left out, for the table's notes (reset per run)


def _standard(
    proto: str, spec: Mapping[str, str], model: _Model, presets: Sequence[str]
) -> list[Row]:
    from avmodels.baselines import centre_prior, random_maps, score_baselines
    from avmodels.metrics import evaluate, get_preset
    from avmodels.metrics.curves import auc_from_ious, ciou_from_ious, mean_iou
    from avprep.annotations import gt_map, load_annotations

    anns = load_annotations(spec["annotations"], BENCHMARK_OF[proto])
    ids = _ids_of(spec)
    if ids is not None:
        absent = [c for c in ids if c not in anns]
        if absent:
            raise InputError(f"{len(absent)} listed clips have no annotation, e.g. {absent[:3]}")
        anns = {c: anns[c] for c in ids}
    sources = model.sources(spec["store"])
    if ids is None:  # one annotation file often covers more clips than the test store
        have = set(sources.ids)
        absent = [c for c in anns if c not in have]
        if absent:
            NOTES.append(f"{proto}: {len(absent)} annotated clips are not in the store; "
                         f"{len(anns) - len(absent)} scored")  # fmt: skip
            anns = {c: a for c, a in anns.items() if c in have}
        if not anns:
            raise InputError(f"{proto}: no annotated clip is in the store")
    maps, _ = model.predict(sources, list(anns))
    rows = []
    for name in presets:
        p = get_preset(name)
        r = evaluate(maps, anns, p)
        m = {"ciou": r.ciou, "auc": r.auc, "mean_iou": r.mean_iou, "pointing": r.pointing}
        rows.append(Row(proto, name, "model", r.n, {k: _clean(v) for k, v in m.items()}))
        base = score_baselines(anns, name)
        base["centre"] = evaluate(centre_prior(list(anns)), anns, p)
        base["random"] = evaluate(random_maps(list(anns)), anns, p)
        for b in ("centre", "random", "ceiling"):
            e = base[b]
            bm = {"ciou": e.ciou, "auc": e.auc, "mean_iou": e.mean_iou, "pointing": e.pointing}
            rows.append(Row(proto, name, b, e.n, {k: _clean(v) for k, v in bm.items()}))
        # the whole frame as the prediction: IoU = sum(G) / (sum(G) + |G == 0|)
        ious = []
        for a in anns.values():
            g = gt_map(a, p.size, p.pixel_rule)
            den = g.sum() + np.count_nonzero(g == 0)
            ious.append(g.sum() / den if den else float("nan"))
        w = np.array(ious)
        rows.append(Row(proto, name, "whole-image", len(w), {
            "ciou": _clean(ciou_from_ious(w)), "auc": _clean(auc_from_ious(w)),
            "mean_iou": _clean(mean_iou(w)), "pointing": None}))  # fmt: skip
    return rows


def _scores224(m: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(np.asarray(m, np.float32), (224, 224), interpolation=cv2.INTER_LINEAR)


def _extended(proto: str, spec: Mapping[str, str], model: _Model) -> list[Row]:
    from avmodels.baselines import centre_prior, random_maps
    from avmodels.metrics import extended as ex
    from avprep.annotations import gt_map, load_annotations

    anns = load_annotations(spec["annotations"], BENCHMARK_OF[proto])
    ids = _ids_of(spec)
    if ids is not None:
        anns = {c: anns[c] for c in ids if c in anns}
    silent = ex.read_silent_list(spec["silent"])
    sources = model.sources(spec["store"])
    have = set(sources.ids)
    if any(c not in have for c in anns):
        n_in = sum(c in have for c in anns)
        NOTES.append(
            f"{proto}: {len(anns) - n_in} annotated clips are not in the store; {n_in} scored"
        )
    anns = {c: a for c, a in anns.items() if c in have}
    usable = [p for p in silent if p.video in have and p.audio in have]
    if len(usable) < len(silent):
        NOTES.append(f"{proto}: {len(silent) - len(usable)} of {len(silent)} silent pairs lack "
                     "their video or audio in the store")  # fmt: skip
    if not anns or not usable:
        raise InputError(f"{proto}: the store holds no annotated clip or no silent pair")
    maps, conf = model.predict(sources, list(anns))
    pmaps, pconf = model.predict_pairs(sources, [(p.video, p.audio, p.key) for p in usable])
    maps.update(pmaps)
    conf.update(pconf)
    gts = {c: gt_map(a, 224, "ezvsl") for c, a in anns.items()}
    keys = [*anns, *(p.key for p in usable)]
    scores = {k: _scores224(maps[k]) for k in keys}
    rows = []
    baselines = {
        "centre": centre_prior(keys),
        "random": {k: _scores224(v) for k, v in random_maps(keys).items()},
    }
    for conv in EXTENDED_CONVENTIONS:
        r = ex.evaluate_extended(scores, conf, gts, usable, conv, order=keys)
        m = {"ap": r.ap, "max_f1": r.max_f1, "loc_acc": r.loc_acc}
        rows.append(Row(proto, conv, "model", r.n, {k: _clean(v) for k, v in m.items()}))
        for b, bm in baselines.items():
            bc = {k: ex.top_quarter_confidence(v) for k, v in bm.items()}
            e = ex.evaluate_extended(bm, bc, gts, usable, conv, order=keys)
            rows.append(Row(proto, conv, b, e.n, {"ap": _clean(e.ap), "max_f1": _clean(e.max_f1),
                                                  "loc_acc": _clean(e.loc_acc)}))  # fmt: skip
    return rows


def _is3(spec: Mapping[str, str], model: _Model) -> list[Row]:
    from avmodels.baselines import centre_prior, random_maps, soften
    from avmodels.metrics import is3

    samples = is3.read_is3_json(spec["meta"])
    sources = model.sources(spec["store"])
    have = set(sources.ids)
    if any(s.key not in have for s in samples):
        n_in = sum(s.key in have for s in samples)
        NOTES.append(f"is3: {len(samples) - n_in} samples are not in the store; {n_in} scored")
    samples = [s for s in samples if s.key in have]
    if not samples:
        raise InputError("is3: the store holds none of the IS3 samples")
    maps, _ = model.predict(sources, [s.key for s in samples])
    root = spec.get("masks")
    keys = [s.key for s in samples]
    ceiling = {}
    for s in samples:
        g = (
            is3.box_gt(s.box)
            if s.box is not None
            else is3.mask_gt(Path(str(root)) / Path(str(s.mask_path)).name)
        )
        ceiling[s.key] = soften(g.astype(np.float32))
    sets = {
        "model": maps,
        "centre": centre_prior(keys),
        "random": random_maps(keys),
        "ceiling": ceiling,
    }
    rows = []
    for conv in IS3_CONVENTIONS:
        for who, mp in sets.items():
            r = is3.evaluate_is3(mp, samples, conv, mask_root=root)
            d = r.to_dict()
            m = {k: d[k] for k in ("ciou", "auc", "ciou_adap", "auc_adap", "iiou", "iauc")}
            rows.append(Row("is3", conv, who, r.n, m))
    return rows


def _avs(proto: str, spec: Mapping[str, str], model: _Model) -> list[Row]:
    from avmodels.baselines import centre_prior, random_maps
    from avmodels.metrics import avsbench as avs

    sources = model.sources(spec["store"])
    ids = _ids_of(spec)
    if ids is None:
        root = Path(spec["masks"])
        ids = [c for c in sources.ids if (root / f"{c}.png").is_file()]
    if not ids:
        raise InputError(f"{proto}: no store clip has a mask in {spec['masks']}")
    maps, _ = model.predict(sources, ids)
    rows = []
    sets = {"model": maps, "centre": centre_prior(ids), "random": random_maps(ids)}
    for conv in AVS_CONVENTIONS:
        c = avs.get_convention(conv)
        masks = avs.read_masks(spec["masks"], ids, proto, c.mask_mode)
        for who, mp in sets.items():
            r = avs.evaluate_avsbench(mp, masks, c, setting=proto, order=ids)
            rows.append(
                Row(proto, conv, who, r.n, {"miou": _clean(r.miou), "fscore": _clean(r.fscore)})
            )
    return rows


def run_benchmark(
    model_file: str | os.PathLike,
    suite: str,
    data: Mapping[str, Mapping[str, str]],
    *,
    presets: Sequence[str] | None = None,
    device: str = "auto",
    batch_size: int = 32,
    workers: int = 0,
    progress: Any = None,
) -> BenchmarkResult:
    """Evaluate one model on every protocol of ``suite`` that ``data`` covers."""
    from avmodels.metrics import PRESETS

    protos = SUITES.get(suite)
    presets = list(presets) if presets else PRESETS.names()
    model = _Model(model_file, device, batch_size, workers)
    rows: list[Row] = []
    skipped: dict[str, str] = {}
    NOTES.clear()
    for proto in protos:
        spec = data.get(proto)
        need = PROTOCOLS[proto][0]
        if not spec or any(k not in spec for k in need):
            skipped[proto] = f"no data (needs {', '.join(need)})"
            continue
        if progress:
            progress(proto)
        if proto in STANDARD:
            rows += _standard(proto, spec, model, presets)
        elif proto in EXTENDED:
            rows += _extended(proto, spec, model)
        elif proto == "is3":
            rows += _is3(spec, model)
        else:
            rows += _avs(proto, spec, model)
    unknown = [p for p in data if p not in protos]
    for p in unknown:
        skipped[p] = f"not in suite {suite!r}"
    if not rows:
        raise InputError("no protocol of the suite has data: nothing was evaluated")
    return BenchmarkResult(
        str(model_file), model.info.get("method", ""), rows, skipped, list(NOTES)
    )


def write_tables(result: BenchmarkResult, out: str | os.PathLike) -> dict[str, Path]:
    """``benchmark.json``, ``benchmark.csv``, ``benchmark.md`` and ``benchmark.html`` in ``out``."""
    import csv
    import io

    from avprep.atomic import write_json, write_text

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    head, body = result.table()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    w.writerows(body)
    return {
        "json": write_json(folder / "benchmark.json", result.to_dict()),
        "csv": write_text(folder / "benchmark.csv", buf.getvalue()),
        "md": write_text(folder / "benchmark.md", result.markdown()),
        "html": write_text(folder / "benchmark.html", result.html()),
    }
