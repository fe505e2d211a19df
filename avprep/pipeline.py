"""Pipelines: YAML recipes that chain avprep (and avmodels) steps for one benchmark.

A recipe names its stages in order; each stage names a step (the commands'
names: :data:`avprep.steps.STEPS`) with its options::

    name: flickr-10k-sspl
    description: SoundNet-Flickr 10k for SSPL
    vars: {jobs: 2}
    stages:
      - name: download
        command: download
        args: {ids: ezvsl/flickr-10k, out: "{workdir}/videos", jobs: "{jobs}"}

A stage whose command starts with ``avmodels`` (``command: avmodels train``)
runs that avmodels step (train/eval after the data stages).

``{workdir}`` and every key of ``vars`` are substituted in argument values
(``--set key=value`` overrides vars). Each stage is a library call: the
options become the step function's keyword arguments (``frame-at`` ->
``frame_at``; ``args: {_: [a, b]}`` gives the step's positional parameter),
converted once to the types the function declares; a value ``true`` turns a
flag on, ``false`` or ``null`` leaves the option out, a list gives a
repeatable option several values. Nothing is turned into a command line.

Every step resumes on its own (manifests), and the runner keeps a state file
``{workdir}/.pipeline/<name>.json`` recording which stages finished with
which arguments, so a rerun starts at the first stage that did not finish or
whose arguments changed; ``--from STAGE`` forces a restart there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import yaml

from avprep.atomic import write_json
from avprep.errors import AvprepError, ConfigError
from avprep.steps import StepSpec, get_step

log = logging.getLogger(__name__)

_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    command: tuple[str, ...]  # e.g. ("metadata", "fetch")
    args: Mapping[str, Any]

    @property
    def step(self) -> StepSpec:
        return get_step(self.command)

    def values(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        """``args`` with the variables substituted (YAML's own types kept)."""
        return {key: _subst_value(value, variables) for key, value in self.args.items()}

    def kwargs(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        """The step function's keyword arguments: substituted, checked and typed."""
        return self.step.kwargs(self.values(variables), self.name)

    def describe(self, variables: Mapping[str, Any]) -> str:
        """``extract in=... out=... profile=ssltie`` (for the plan and the log)."""
        parts = [" ".join(self.command)]
        for key, value in self.values(variables).items():
            shown = " ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
            parts.append(shown if key == "_" else f"{key}={shown}")
        return " ".join(parts)

    def fingerprint(self, variables: Mapping[str, Any]) -> str:
        blob = json.dumps([self.command, self.kwargs(variables)], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Pipeline:
    name: str
    description: str
    variables: Mapping[str, Any]
    stages: tuple[Stage, ...]
    path: Path | None = None

    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    def with_args(self, stage: str, **args: Any) -> Pipeline:
        """This pipeline with more (or other) options for ``stage`` (``frame_at=...``)."""
        if stage not in self.stage_names():
            raise ConfigError(f"no stage {stage!r}; valid: {', '.join(self.stage_names())}")
        stages = tuple(
            dataclasses.replace(
                s, args={**s.args, **{k.replace("_", "-"): v for k, v in args.items()}}
            )
            if s.name == stage
            else s
            for s in self.stages
        )
        return dataclasses.replace(self, stages=stages)


def _subst(text: str, variables: Mapping[str, Any]) -> str:
    def repl(m: re.Match) -> str:
        key = m.group(1)
        if key not in variables:
            raise ConfigError(f"pipeline uses {{{key}}} but defines no such variable")
        return str(variables[key])

    # Two passes so vars may refer to {workdir}.
    return _VAR.sub(repl, _VAR.sub(repl, text))


def _subst_value(value: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(value, list | tuple):
        return [_subst_value(v, variables) for v in value]
    return _subst(value, variables) if isinstance(value, str) else value


def load_pipeline(path: str | Path) -> Pipeline:
    """Parse and check a recipe; errors name the file and the stage."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pipeline file not found: {path}")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("stages"), list) or not doc["stages"]:
        raise ConfigError(f"{path}: a pipeline needs a non-empty 'stages' list")
    stages = []
    seen = set()
    for i, raw in enumerate(doc["stages"], 1):
        if not isinstance(raw, dict) or "command" not in raw:
            raise ConfigError(f"{path}: stage {i} needs a 'command'")
        name = str(raw.get("name") or raw["command"].replace(" ", "-"))
        if name in seen:
            raise ConfigError(f"{path}: stage name {name!r} used twice")
        seen.add(name)
        args = raw.get("args") or {}
        if not isinstance(args, dict):
            raise ConfigError(f"{path}: stage {name!r}: 'args' must be a mapping")
        stages.append(Stage(name=name, command=tuple(str(raw["command"]).split()), args=args))
    return Pipeline(
        name=str(doc.get("name") or path.stem),
        description=str(doc.get("description", "")),
        variables=dict(doc.get("vars") or {}),
        stages=tuple(stages),
        path=path,
    )


def check_stage(stage: Stage, variables: Mapping[str, Any]) -> None:
    """Check that a stage names a step and passes only options it takes (typed)."""
    stage.kwargs(variables)


def variables_of(
    pipe: Pipeline, workdir: Path, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    return {**pipe.variables, **(overrides or {}), "workdir": str(workdir)}


def plan(
    pipe: Pipeline, workdir: Path, overrides: Mapping[str, Any] | None = None
) -> list[tuple[Stage, str, str]]:
    """(stage, description, status) for every stage: status is done, changed or pending.

    Every stage is checked first (its step exists, takes its options, their
    values have the step's types), so a bad recipe fails before anything runs.
    """
    variables = variables_of(pipe, workdir, overrides)
    state = _read_state(workdir, pipe.name)
    rows = []
    for stage in pipe.stages:
        check_stage(stage, variables)
        prev = state.get(stage.name)
        if prev is None:
            status = "pending"
        elif prev.get("fingerprint") == stage.fingerprint(variables):
            status = "done"
        else:
            status = "changed"
        rows.append((stage, stage.describe(variables), status))
    return rows


def _state_path(workdir: Path, name: str) -> Path:
    return workdir / ".pipeline" / f"{name}.json"


def _read_state(workdir: Path, name: str) -> dict[str, Any]:
    path = _state_path(workdir, name)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text()).get("stages", {})
    except (json.JSONDecodeError, AttributeError):
        log.warning("%s is unreadable; every stage will run again", path)
        return {}


def run_pipeline(
    pipe: Pipeline,
    workdir: Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    start_from: str | None = None,
    echo: Callable[[str], None] = print,
    progress: bool = True,
    skip_done: bool = True,
    around: Callable[[Stage], AbstractContextManager[Any]] | None = None,
) -> list[tuple[str, str, float]]:
    """Run the stages not yet done; return (stage, outcome, seconds) rows.

    ``progress`` goes to every step that shows progress (unless the recipe
    sets it); ``skip_done=False`` calls every stage's step even when the state
    file says it finished (each step resumes by itself: the demo's way);
    ``around(stage)`` is a context manager entered around each stage that runs.
    """
    if start_from is not None and start_from not in pipe.stage_names():
        raise ConfigError(
            f"--from {start_from!r}: no such stage; valid: {', '.join(pipe.stage_names())}"
        )
    Path(workdir).mkdir(parents=True, exist_ok=True)
    variables = variables_of(pipe, workdir, overrides)
    rows = plan(pipe, workdir, overrides)
    state = _read_state(workdir, pipe.name)
    forced = False
    results = []
    redo_rest = not skip_done
    for stage, described, status in rows:
        forced = forced or stage.name == start_from
        if status == "done" and not forced and not redo_rest:
            echo(f"[{stage.name}] done earlier, skipped")
            results.append((stage.name, "skipped", 0.0))
            continue
        redo_rest = True  # later stages consume this stage's output
        kwargs = stage.kwargs(variables)
        if "progress" in stage.step.parameters() and "progress" not in kwargs:
            kwargs["progress"] = progress
        t0 = time.monotonic()
        with around(stage) if around else contextlib.nullcontext():
            echo(f"[{stage.name}] {described}")
            try:
                text = stage.step.function()(**kwargs)
            except AvprepError as exc:
                raise type(exc)(f"pipeline {pipe.name}: stage {stage.name!r}: {exc}") from exc
            if text:
                echo(text)
        dt = time.monotonic() - t0
        state[stage.name] = {"fingerprint": stage.fingerprint(variables), "seconds": round(dt, 2)}
        write_json(_state_path(workdir, pipe.name), {"pipeline": pipe.name, "stages": state})
        results.append((stage.name, "ran", dt))
    return results
