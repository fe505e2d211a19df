"""``make demo``: the whole chain on the synthetic SynthAV benchmark, on CPU.

``python -m avmodels.demo [--method NAME] [--clips N] [--seed S] [--out demo] [--minutes M]``

Stages 1-4 are the recipe ``pipelines/synthav.yaml`` run by
:func:`avprep.pipeline.run_pipeline` with the demo's variables and the
method's extract options; 5-6 are the library calls behind ``avmodels train``
and ``avmodels eval`` (:mod:`avmodels.steps`). Every stage is a library call
(no command line is built), and each resumes by itself, so a rerun after
Ctrl-C or a crash goes on where it stopped:

1. synth                SynthAV videos, ground truth and train/val/test lists;
2. download             the videos, served by a loopback HTTP server
                        (:mod:`avprep.loopback`, a thread of this process) and
                        fetched with yt-dlp exactly as remote clips are;
3. extract              the profile the method needs, at a small image size;
4. pack                 train / val / test shards by the split lists;
5. train                the method, selected on the validation split's cIoU;
6. eval                 maps of the test split, scored;
7. baselines            centre prior, random map and the ceiling (the ground
                        truth as a map), scored with the same metric;
8. report               ``OUT/report/index.html`` and a printed table.

Layout of ``OUT`` (default ``demo/``)::

    seed<S>/synthav/      avprep synth output
    seed<S>/videos/       avprep download output (manifest.jsonl)
    seed<S>/extracted/<profile key>/, seed<S>/shards/<profile key>/{train,val,test}/
    seed<S>/runs/<run key>/   training run;  seed<S>/eval/<run key>/  metrics, maps
    report/index.html     the latest run's report;  summary.json  its figures

The default method (``ssl-tie`` with the small CNN streams at 64 px, see
:data:`RECIPES`) is the configuration measured to clear the bar of issue 8
(cIoU well above the centre prior's) on two CPU cores in a few minutes; see
docs/demo.md for the figures. ``--minutes`` caps the training time: a short
calibration measures the speed of a training step on this machine and lowers
the number of epochs when the planned schedule would not fit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from avmodels.demo_recipes import DEFAULT_METHOD, RECIPES, Recipe
from avmodels.demo_recipes import set_value as set_value  # re-exported
from avmodels.demo_schedule import calibrate_step as calibrate_step  # re-exported
from avmodels.demo_schedule import plan_epochs
from avprep.atomic import write_json, write_text
from avprep.errors import ConfigError

log = logging.getLogger(__name__)

PRESET = "default"  # the metric preset of every score in the demo
BENCHMARK = "vggss"  # SynthAV's ground truth is VGG-SS style JSON
SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class SynthSettings:
    """What ``avprep synth`` is asked for (see ``avprep synth --help``)."""

    size: str = "160x120"  # non-square, like real video; small so generation is quick
    seconds: float = 2.0
    # one sounding object and two silent distractors: with one distractor, a map that
    # lights up every object (no use of the sound) already reaches cIoU ~0.6
    objects: str = "3"
    classes: int = 5

    def variables(self) -> dict[str, Any]:
        """The ``pipelines/synthav.yaml`` variables of these settings."""
        return {
            "size": self.size, "seconds": self.seconds, "objects": self.objects,
            "classes": self.classes,
        }  # fmt: skip


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """Everything one demo run depends on."""

    method: str = DEFAULT_METHOD
    clips: int = 800
    seed: int = 0
    out: Path = Path("demo")
    minutes: float | None = 6.0  # training budget (None: the planned epochs, whatever they take)
    epochs: int | None = None  # None: the recipe's
    jobs: int = 2
    backend: str = "loky"  # where avprep's per-clip work runs: loky | serial
    image_size: int | None = None  # stored frame size (None: the recipe's)
    synth: SynthSettings = SynthSettings()
    examples: int = 4
    progress: bool = True
    extra_sets: tuple[str, ...] = ()  # more --set overrides (tests, benchmarks)

    @property
    def recipe(self) -> Recipe:
        if self.method not in RECIPES:
            raise ConfigError(
                f"the demo has no recipe for method {self.method!r}; valid: "
                f"{', '.join(sorted(RECIPES))}"
            )
        return RECIPES[self.method]

    @property
    def extract_options(self) -> dict[str, Any]:
        opts = dict(self.recipe.extract)
        if self.image_size is not None:
            opts["image_size"] = self.image_size
        return opts

    @property
    def root(self) -> Path:
        two = "-two-source" if self.recipe.sources == 2 else ""
        return Path(self.out) / f"seed{self.seed}{two}"


@dataclasses.dataclass
class DemoPaths:
    synthav: Path
    videos: Path
    extracted: Path
    shards: Path
    annotations: Path

    def store(self, split: str) -> Path:
        return self.shards / split

    def split_list(self, split: str) -> Path:
        return self.synthav / "splits" / f"{split}.txt"


def demo_paths(s: DemoSettings) -> DemoPaths:
    key = s.recipe.profile_key(s.extract_options)
    return DemoPaths(
        synthav=s.root / "synthav",
        videos=s.root / "videos",
        extracted=s.root / "extracted" / key,
        shards=s.root / "shards" / key,
        annotations=s.root / "synthav" / "annotations" / "vggss.json",
    )


# -- progress -----------------------------------------------------------------------
def say(text: str = "") -> None:
    print(text, flush=True)


class Stages:
    """Numbered stage headers with their wall times (a stage entered again adds to its time)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.seconds: dict[str, float] = {}
        self.t0 = time.perf_counter()

    @contextlib.contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[None]:
        i = self.names.index(name) + 1
        extra = f": {detail}" if detail else ""
        if name not in self.seconds:
            say(f"\n[{i}/{len(self.names)}] {name}{extra}")
        t = time.perf_counter()
        yield
        dt = time.perf_counter() - t
        self.seconds[name] = round(self.seconds.get(name, 0.0) + dt, 2)
        say(f"    {name} took {dt:.1f} s (total {time.perf_counter() - self.t0:.1f} s)")

    @property
    def total(self) -> float:
        return round(time.perf_counter() - self.t0, 2)


# -- stages 1-4: pipelines/synthav.yaml ------------------------------------------------
def read_list(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def synthav_pipeline(s: DemoSettings):
    """``pipelines/synthav.yaml`` with the method's extract options; and its variables."""
    from avprep.pipeline import load_pipeline
    from avprep.shipped import recipe_path

    p = demo_paths(s)
    pipe = load_pipeline(recipe_path("synthav"))
    pipe = pipe.with_args("extract", profile=s.recipe.profile, **s.extract_options)
    variables = {
        "clips": s.clips, "seed": s.seed, "jobs": s.jobs, "backend": s.backend,
        **s.synth.variables(), "sources": s.recipe.sources, "videos": str(p.videos), "extracted": str(p.extracted),
        "shards": str(p.shards),
    }  # fmt: skip
    return pipe, variables


#: which demo stage each stage of pipelines/synthav.yaml belongs to
PIPELINE_GROUPS = {"synth": "synth", "download": "download", "extract": "extract"}


def _stage_detail(s: DemoSettings, group: str) -> str:
    return {
        "synth": f"{s.clips} SynthAV clips (seed {s.seed})",
        "download": "loopback HTTP server -> avprep download",
        "extract": f"profile {s.recipe.profile} + {s.extract_options}",
        "pack": "train / val / test shards",
    }[group]


def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


def run_key(s: DemoSettings, epochs: int) -> str:
    r = s.recipe
    fp = _fingerprint(
        [
            r.method,
            r.profile_key(s.extract_options),
            dict(r.config),
            epochs,
            s.clips,
            s.synth,
            s.extra_sets,
        ]
    )
    return f"{r.method}-e{epochs}-{fp}"


def train(s: DemoSettings, p: DemoPaths, run_dir: Path, epochs: int) -> None:
    """Train (the library call behind ``avmodels train``); resumes an unfinished run,
    keeps a finished one."""
    from avmodels import steps

    if (run_dir / "summary.json").is_file() and (run_dir / "final.pt").is_file():
        say(f"    {run_dir} is finished: kept")
        return
    if (run_dir / "checkpoints" / "last.pt").is_file():
        say(f"    resuming {run_dir}")
        say(steps.train(resume=str(run_dir), progress=s.progress))
        return
    r = s.recipe
    text = steps.train(
        method=r.method, data=[str(p.store("train"))], val=[str(p.store("val"))],
        annotations=str(p.annotations), benchmark=BENCHMARK, out=str(run_dir),
        overwrite=run_dir.exists(), set=[*r.sets(s.seed, epochs), *s.extra_sets],
        progress=s.progress,
    )  # fmt: skip
    say(f"    {text}")


def test_ids(p: DemoPaths) -> list[str]:
    """The test split's clips that made it into the test store (all, unless some failed)."""
    from avprep.store import open_dataset

    stored = set(open_dataset(p.store("test"), modalities=["frame"]).ids)
    return [c for c in read_list(p.split_list("test")) if c in stored]


def evaluate(s: DemoSettings, p: DemoPaths, run_dir: Path, eval_dir: Path) -> dict[str, Any]:
    """Score the test split (the library call behind ``avmodels eval --report``)."""
    from avmodels import steps

    ids = test_ids(p)
    ids_file = s.root / "test_ids.txt"
    write_text(ids_file, "".join(c + "\n" for c in ids))
    text = steps.evaluate(
        run=str(run_dir), data=[str(p.store("test"))], benchmark=BENCHMARK,
        annotations=str(p.annotations), preset=PRESET, ids=str(ids_file), report=str(eval_dir),
        device="cpu", workers=0, progress=s.progress,
    )  # fmt: skip
    say(f"    {text}")
    return json.loads((eval_dir / "metrics.json").read_text())


def test_annotations(p: DemoPaths) -> dict[str, Any]:
    from avprep.annotations import load_annotations

    anns = load_annotations(p.annotations, BENCHMARK)
    return {c: anns[c] for c in test_ids(p)}


def object_boxes(p: DemoPaths) -> dict[str, list[list[float]]]:
    """Every object's box at the key frame (sounding or not), from SynthAV's metadata."""
    meta = json.loads((p.synthav / "synthav.json").read_text())
    return {c["id"]: [list(o["bbox"]) for o in c["objects"]] for c in meta["clips"]}


def baselines(p: DemoPaths, seed: int) -> dict[str, dict[str, Any]]:
    """Reference maps on the test clips, scored: ``{name: metrics dict}``.

    ``centre``, ``random`` and ``ceiling`` are avmodels' baselines; ``objects``
    is SynthAV's sound-blind reference: every object's box as a map (ranked by
    distance outside the boxes like the ceiling), i.e. what knowing where the
    objects are, but not which one sounds, scores.
    """
    from avmodels.baselines import ceiling, score_baselines
    from avmodels.metrics import evaluate as score

    anns = test_annotations(p)
    results = {n: r.to_dict() for n, r in score_baselines(anns, PRESET, seed=seed).items()}
    boxes = object_boxes(p)
    objects = score(ceiling({c: boxes[c] for c in anns}), anns, PRESET)
    out = {k: results[k] for k in ("centre", "random")}
    out["objects"] = objects.to_dict()
    out["ceiling"] = results["ceiling"]
    return out


def rows_of(model_name: str, model: Mapping[str, Any], base: Mapping[str, Mapping[str, Any]]):
    from avmodels.report import Row

    notes = {
        "centre": "centred Gaussian, ignores the sound",
        "random": "seeded noise",
        "objects": "every object's box: where the objects are, not which one sounds",
        "ceiling": "the ground truth as a map",
    }
    rows = [Row(model_name, "model", model)]
    for name, m in base.items():
        rows.append(
            Row(name, "ceiling" if name == "ceiling" else "baseline", m, notes.get(name, ""))
        )
    return rows


# -- the whole chain ---------------------------------------------------------------
STAGE_NAMES = ("synth", "download", "extract", "pack", "train", "eval", "baselines", "report")


@dataclasses.dataclass
class DemoResult:
    settings: DemoSettings
    run_dir: Path
    eval_dir: Path
    report: Path
    model: dict[str, Any]
    baselines: dict[str, dict[str, Any]]
    epochs: int
    seconds: dict[str, float]
    total_seconds: float
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # method-specific figures

    def margin(self, key: str = "ciou", reference: str = "centre") -> float:
        return float(self.model[key]) - float(self.baselines[reference][key])

    def summary(self) -> dict[str, Any]:
        def pick(m: Mapping[str, Any]) -> dict[str, Any]:
            return {k: m.get(k) for k in ("ciou", "auc", "mean_iou", "pointing", "n")}

        return {
            "method": self.settings.method,
            "seed": self.settings.seed,
            "clips": self.settings.clips,
            "epochs": self.epochs,
            "run_dir": str(self.run_dir),
            "report": str(self.report),
            "model": pick(self.model),
            **{name: pick(m) for name, m in self.baselines.items()},
            "margin_ciou": round(self.margin("ciou"), 4),
            "margin_pointing": round(self.margin("pointing"), 4),
            "margin_auc": round(self.margin("auc"), 4),
            **self.extra,
            "stage_seconds": self.seconds,
            "total_seconds": self.total_seconds,
        }


def prepare_data(s: DemoSettings, stages: Stages | None = None) -> DemoPaths:
    """Stages 1-4, ``pipelines/synthav.yaml``: SynthAV -> loopback download -> extract ->
    shards. Every stage's step is called (each resumes by itself)."""
    from avprep.pipeline import run_pipeline

    stages = stages or Stages(STAGE_NAMES)
    pipe, variables = synthav_pipeline(s)

    def around(stage):
        group = PIPELINE_GROUPS.get(stage.name, "pack")
        return stages.stage(group, _stage_detail(s, group))

    run_pipeline(
        pipe, s.root, overrides=variables, echo=lambda text: say(_indent(text)),
        progress=s.progress, skip_done=False, around=around,
    )  # fmt: skip
    return demo_paths(s)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def run_demo(s: DemoSettings) -> DemoResult:
    """Run every stage; return the figures (also written to ``OUT/summary.json``)."""
    from avmodels.report import report_from_eval, text_table

    if s.recipe.method == "mssl":  # two stages and class-aware scores
        from avmodels.demo_mssl import run_mssl_demo

        return run_mssl_demo(s)
    stages = Stages(STAGE_NAMES)
    p = prepare_data(s, stages)
    with stages.stage("train", f"{s.method} ({s.recipe.note})"):
        epochs, why = plan_epochs(s, p)
        say(f"    plan: {why}")
        key = run_key(s, epochs)
        run_dir = s.root / "runs" / key
        train(s, p, run_dir, epochs)
    eval_dir = s.root / "eval" / key
    with stages.stage("eval", "test split"):
        model = evaluate(s, p, run_dir, eval_dir)
    with stages.stage("baselines", "centre prior, random map, ceiling"):
        base = baselines(p, s.seed)
    with stages.stage("report"):
        rows = rows_of(s.method, model, base)
        report_dir = Path(s.out) / "report"
        page = report_from_eval(
            eval_dir,
            report_dir,
            test_annotations(p),
            frames=p.store("test"),
            extra_rows=rows[1:],
            k=s.examples,
            name=s.method,
            title=f"SynthAV demo: {s.method}",
            notes=[
                f"{s.method} trained on {s.clips} SynthAV clips (seed {s.seed}, {epochs} epochs) "
                f"and scored on the {model.get('n')} test clips with the '{PRESET}' metric "
                "preset, beside the centre prior, a random map, the sound-blind objects map and the "
                "ceiling."
            ],
            meta={
                "method": s.method,
                "recipe": s.recipe.note,
                "seed": s.seed,
                "clips": s.clips,
                "epochs": epochs,
                "run": str(run_dir),
                "extraction": f"profile {s.recipe.profile} + {s.extract_options}",
                "config overrides": [*s.recipe.sets(s.seed, epochs), *s.extra_sets],
                "stage seconds": dict(stages.seconds),
            },
        )
    result = DemoResult(
        settings=s,
        run_dir=run_dir,
        eval_dir=eval_dir,
        report=page,
        model=model,
        baselines=base,
        epochs=epochs,
        seconds=dict(stages.seconds),
        total_seconds=stages.total,
    )
    write_json(Path(s.out) / "summary.json", result.summary())
    say("\n" + text_table(rows))
    say(
        f"\n{s.method} vs centre prior: cIoU {result.margin('ciou'):+.3f}, "
        f"AUC {result.margin('auc'):+.3f}, pointing {result.margin('pointing'):+.3f} "
        f"(bar: cIoU +0.2 or more)"
    )
    say(f"report  {page}")
    say(f"wall    {stages.total:.0f} s  ({_stage_line(stages.seconds)})")
    return result


def _stage_line(seconds: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.0f}" for k, v in seconds.items())


# -- command line ----------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m avmodels.demo`` (the options: avmodels/commands/demo.py)."""
    import sys

    from avmodels.commands.demo import main_cmd
    from avprep.clikit import run_cli

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    run_cli(main_cmd, "python -m avmodels.demo")()


if __name__ == "__main__":
    main()
