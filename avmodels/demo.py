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
class Recipe:
    """How the demo prepares data for and trains one method.

    ``extract`` holds ``avprep extract`` options on top of ``profile``;
    ``config`` holds ``--set key=value`` overrides of the method's defaults
    (the paper's configuration), which are made for a small CPU run.
    """

    method: str
    profile: str
    extract: Mapping[str, Any]
    config: Mapping[str, Any]
    epochs: int
    note: str = ""
    sources: int = 1  # sounding objects a SynthAV clip (2: the two-source set)

    def profile_key(self, options: Mapping[str, Any] | None = None) -> str:
        """A folder name for this extraction (profile + a hash of the overrides)."""
        opts = dict(self.extract if options is None else options)
        blob = json.dumps([self.profile, opts], sort_keys=True)
        return f"{self.profile}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"

    def sets(self, seed: int, epochs: int) -> list[str]:
        """The overrides as ``key=value`` items, the form ``TrainRequest.sets`` takes
        (and the run record keeps)."""
        items = dict(self.config)
        items["train.epochs"] = epochs
        items["train.seed"] = seed
        return [f"{k}={set_value(v)}" for k, v in items.items()]


def set_value(v: Any) -> str:
    """A config value as the text of a ``key=value`` item (YAML syntax)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(set_value(x) for x in v) + "]"
    return str(v)


# Frames are stored at 96 px (the report's overlays show them) and the model sees
# 64 px; 1 s of audio as a 64-band log-mel (the `mssl` front end: 20 ms hop at
# 16 kHz gives 51 x 64), the size SYNTHAV.md's prototype used. SpecAugment is off:
# its masks are sized for SSL-TIE's 257 x 670 spectrogram and would blank this one.
_SMALL_AUDIO = {"frame_at": "middle", "image_size": 96, "spectrogram": "mssl", "audio_seconds": 1}
_CPU = {
    "train.device": "cpu",
    "train.batch_size": 64,
    "train.num_workers": 1,
    "train.checkpoint_every": 50,
    "train.log_every": 5,
    "eval.batch_size": 128,
}
_SMALL_STREAMS = {
    "model.backbone": "small",
    "model.small_width": 32,
    "model.small_channels": 128,
    "model.small_stride": 8,
    "data.image_size": 64,
}

RECIPES: dict[str, Recipe] = {
    "ssl-tie": Recipe(
        method="ssl-tie",
        profile="ssltie",
        extract=_SMALL_AUDIO,
        config={
            **_SMALL_STREAMS,
            "augment.image": "none",
            "augment.spec_aug": False,
            "optim.lr": 1e-3,
            "optim.scheduler": "cosine",
            **_CPU,
        },
        epochs=12,
        note="small CNN streams at 64 px, LVS tri-map + equivariance losses",
    ),
    "htf": Recipe(
        method="htf",
        profile="htf",
        extract={**_SMALL_AUDIO, "resize": "squash", "sample_rate": 16000},
        config={
            **_SMALL_STREAMS,
            "model.pretrained": False,
            "model.freeze_vision": False,
            "data.audio_seconds": 1.0,
            **_CPU,
        },
        epochs=12,
        note="small CNN streams at 64 px from scratch, flow attention",
    ),
    "sspl": Recipe(
        method="sspl",
        profile="sspl",
        extract={"frame_at": "middle", "image_size": 96},
        config={
            "model.pretrained": False,
            "model.image_size": 64,
            "train.device": "cpu",
            "train.batch_size": 32,
            "train.num_workers": 1,
            "train.checkpoint_every": 50,
        },
        epochs=2,
        note="VGG16/VGGish from scratch at 64 px: far too slow on CPU to learn much",
    ),
}
RECIPES["sspl-pcm"] = dataclasses.replace(RECIPES["sspl"], method="sspl-pcm")

# The field's baselines (issue 19): the same small streams and 1 s log-mel; each keeps
# its own loss, temperature and defaults. The EZ-VSL family's projections shrink to 128.
_BASELINE_EXTRACT = {**_SMALL_AUDIO, "resize": "squash", "sample_rate": 16000}
_MIL_CPU = {**_SMALL_STREAMS, "model.pretrained": False, "model.dim": 128,
            "data.audio_seconds": 1.0, "optim.lr": 1e-3, **_CPU}  # fmt: skip
RECIPES["ezvsl"] = Recipe(
    method="ezvsl", profile="ezvsl", extract=_BASELINE_EXTRACT, config=_MIL_CPU, epochs=12,
    note="small CNN streams at 64 px, max-pooled multiple-instance InfoNCE (tau 0.03)",
)  # fmt: skip
RECIPES["fnac"] = Recipe(
    method="fnac", profile="ezvsl", extract=_BASELINE_EXTRACT,
    config={**_MIL_CPU, "loss.warmup_epochs": 2}, epochs=12,
    note="EZ-VSL's demo streams + FNAC's terms (x100) after a 2-epoch warm-up, dropout 0.9",
)  # fmt: skip
RECIPES["slavc"] = Recipe(
    method="slavc", profile="ezvsl", extract=_BASELINE_EXTRACT, config=_MIL_CPU, epochs=12,
    note="small CNN streams at 64 px, momentum 0.999 targets, dropout 0.9",
)  # fmt: skip
RECIPES["lvs"] = Recipe(
    method="lvs", profile="lvs-10s", extract=_BASELINE_EXTRACT,
    config={**_SMALL_STREAMS, "data.audio_seconds": 1.0, "augment.image": "none",
            "optim.lr": 1e-3, "optim.scheduler": "cosine", **_CPU},  # fmt: skip
    epochs=12,
    note="small CNN streams at 64 px, the LVS tri-map loss (SSL-TIE's demo without T)",
)  # fmt: skip

# Multi-Source (issue 17) on two-source SynthAV: both stages, the labels are SynthAV's
# class tags (as the paper's AudioSet-instrument model learns from the 15 instrument
# tags), scored class-agnostic and class-aware. Runs in avmodels/demo_mssl.py.
RECIPES["mssl"] = Recipe(
    method="mssl",
    profile="mssl",
    extract={"frame_at": "middle", "image_size": 96, "audio_seconds": 1},
    config={
        **_SMALL_STREAMS,
        "model.pretrained": False,
        "model.proj_hidden": 256,
        "labels.require": True,
        "labels.fallback": "none",
        # the learning rates and stage 2's start are per stage: demo_mssl.STAGE_SETS
        # keep the epoch with the lowest validation loss (the method's own objective)
        # rather than the best class-agnostic cIoU, which is not what stage 2 learns
        "eval.select": "loss",
        **_CPU,
    },
    epochs=12,
    note="small CNN streams at 64 px; stage 1 (pairs + classes) then stage 2 (class-wise "
    "alignment) on SynthAV's class tags",
    sources=2,
)

DEFAULT_METHOD = "ssl-tie"


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


def calibrate_step(s: DemoSettings, p: DemoPaths, repeats: int = 2) -> float:
    """Seconds one training step of the demo's configuration takes here (a rough figure)."""
    import torch
    from torch.utils.data import default_collate

    from avmodels.engine.config import resolve_config
    from avmodels.methods import METHODS
    from avprep.store import open_dataset

    r = s.recipe
    cfg = resolve_config(r.method, sets=[*r.sets(s.seed, 1), *s.extra_sets])
    method = METHODS.get(r.method)(cfg)
    method.train()
    ds = open_dataset(p.store("train"), modalities=list(method.required_inputs()))
    transform = method.sample_transform(train=True)
    bs = int(cfg["train"]["batch_size"])
    samples = [transform(ds[i % len(ds)]) for i in range(min(bs, 16))]
    batch = default_collate([samples[i % len(samples)] for i in range(bs)])
    opt = method.build_optimizer()
    times = []
    for i in range(repeats + 1):
        t = time.perf_counter()
        loss = method.training_losses(batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:  # the first step pays one-off costs
            times.append(time.perf_counter() - t)
    del method, opt
    torch.set_grad_enabled(True)
    return min(times)


def plan_epochs(s: DemoSettings, p: DemoPaths) -> tuple[int, str]:
    """Epochs to train: the recipe's, fewer if ``--minutes`` would be exceeded here."""
    planned = s.epochs or s.recipe.epochs
    if s.minutes is None:
        return planned, f"{planned} epochs (no time budget)"
    from avprep.store.index import read_index

    n_train = sum(sh.rows for sh in read_index(p.store("train")).shards)
    bs = int(dict(s.recipe.config).get("train.batch_size", 32))
    for item in s.extra_sets:
        if item.startswith("train.batch_size="):
            bs = int(item.split("=", 1)[1])
    steps = max(1, n_train // bs)
    step_s = calibrate_step(s, p)
    # data loading shares the two cores, and each epoch ends with a validation pass
    epoch_s = steps * step_s * 1.35 + 2.0
    fit = max(1, int(s.minutes * 60 // epoch_s))
    epochs = min(planned, fit)
    why = (
        f"{epochs} epochs of {steps} steps (planned {planned}; a step takes ~{step_s:.2f} s here, "
        f"an epoch ~{epoch_s:.0f} s, budget {s.minutes:g} min)"
    )
    return epochs, why


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
