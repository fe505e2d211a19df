"""Pipelines: YAML recipes that chain avprep commands for one benchmark.

A recipe names its stages in order; each stage is an ``avprep`` subcommand
with its options::

    name: flickr-10k-sspl
    description: SoundNet-Flickr 10k for SSPL
    vars: {jobs: 2}
    stages:
      - name: download
        command: download
        args: {ids: ezvsl/flickr-10k, out: "{workdir}/videos", jobs: "{jobs}"}

A stage whose command starts with ``avmodels`` (``command: avmodels train``)
runs that ``avmodels`` subcommand (train/eval after the data stages).

``{workdir}`` and every key of ``vars`` are substituted in argument values
(``--set key=value`` overrides vars). A value ``true`` is a bare flag, a list
repeats the option, and ``args: {_: [a, b]}`` gives positional arguments.

Every stage's command resumes on its own (manifests), and the runner keeps a
state file ``{workdir}/.pipeline/<name>.json`` recording which stages
finished with which arguments, so a rerun starts at the first stage that did
not finish or whose arguments changed; ``--from STAGE`` forces a restart there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click
import yaml

from avprep.atomic import write_json
from avprep.errors import AvprepError, ConfigError

log = logging.getLogger(__name__)

_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    command: tuple[str, ...]  # e.g. ("metadata", "fetch")
    args: Mapping[str, Any]

    def argv(self, variables: Mapping[str, Any]) -> list[str]:
        out = list(self.command)
        positional: list[str] = []
        for key, value in self.args.items():
            if key == "_":
                positional += [_subst(str(v), variables) for v in _as_list(value)]
                continue
            flag = "--" + key.replace("_", "-")
            if value is True:
                out.append(flag)
            elif value is False or value is None:
                continue
            else:
                for v in _as_list(value):
                    out += [flag, _subst(str(v), variables)]
        return out + positional

    def fingerprint(self, variables: Mapping[str, Any]) -> str:
        return hashlib.sha256(json.dumps(self.argv(variables)).encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Pipeline:
    name: str
    description: str
    variables: Mapping[str, Any]
    stages: tuple[Stage, ...]
    path: Path | None = None

    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _subst(text: str, variables: Mapping[str, Any]) -> str:
    def repl(m: re.Match) -> str:
        key = m.group(1)
        if key not in variables:
            raise ConfigError(f"pipeline uses {{{key}}} but defines no such variable")
        return str(variables[key])

    # Two passes so vars may refer to {workdir}.
    return _VAR.sub(repl, _VAR.sub(repl, text))


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


def cli_for(root: click.Group, words: tuple[str, ...] | list[str]) -> tuple[click.Group, list[str]]:
    """The command-line group a stage runs in and its words: ``avmodels ...`` stages
    go to the avmodels CLI (imported only then: avprep alone needs no torch)."""
    if words and words[0] == "avmodels":
        from avmodels.cli import cli as models_cli

        return models_cli, list(words[1:])
    return root, list(words)


def resolve_command(root: click.Group, words: tuple[str, ...]) -> click.Command:
    """Find the click command for ``words`` (e.g. ``("metadata", "fetch")``)."""
    cmd: click.Command = root
    ctx = click.Context(root)
    for word in words:
        if not isinstance(cmd, click.Group):
            raise ConfigError(f"'{' '.join(words)}' is not an avprep command")
        sub = cmd.get_command(ctx, word)
        if sub is None:
            raise ConfigError(f"unknown avprep command '{' '.join(words)}'")
        cmd = sub
    return cmd


def check_stage(root: click.Group, stage: Stage) -> None:
    """Check that a stage's command exists and accepts every option it passes."""
    cmd = resolve_command(*cli_for(root, stage.command))
    known = {opt for p in cmd.params for opt in getattr(p, "opts", [])}
    for key in stage.args:
        if key == "_":
            continue
        flag = "--" + key.replace("_", "-")
        if flag not in known:
            valid = ", ".join(sorted(o for o in known if o.startswith("--")))
            raise ConfigError(
                f"stage {stage.name!r}: 'avprep {' '.join(stage.command)}' has no option "
                f"{flag}; valid: {valid}"
            )


def plan(
    pipe: Pipeline, root: click.Group, workdir: Path, overrides: Mapping[str, str] | None = None
) -> list[tuple[Stage, list[str], str]]:
    """(stage, argv, status) for every stage: status is done, changed or pending."""
    variables = {**pipe.variables, **(overrides or {}), "workdir": str(workdir)}
    state = _read_state(workdir, pipe.name)
    rows = []
    for stage in pipe.stages:
        check_stage(root, stage)
        argv = stage.argv(variables)
        prev = state.get(stage.name)
        if prev is None:
            status = "pending"
        elif prev.get("fingerprint") == stage.fingerprint(variables):
            status = "done"
        else:
            status = "changed"
        rows.append((stage, argv, status))
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
    root: click.Group,
    workdir: Path,
    *,
    overrides: Mapping[str, str] | None = None,
    start_from: str | None = None,
    echo: Callable[[str], None] = click.echo,
) -> list[tuple[str, str, float]]:
    """Run the stages not yet done; return (stage, outcome, seconds) rows."""
    if start_from is not None and start_from not in pipe.stage_names():
        raise ConfigError(
            f"--from {start_from!r}: no such stage; valid: {', '.join(pipe.stage_names())}"
        )
    variables = {**pipe.variables, **(overrides or {}), "workdir": str(workdir)}
    rows = plan(pipe, root, workdir, overrides)
    state = _read_state(workdir, pipe.name)
    forced = False
    results = []
    redo_rest = False
    for stage, argv, status in rows:
        forced = forced or stage.name == start_from
        if status == "done" and not forced and not redo_rest:
            echo(f"[{stage.name}] done earlier, skipped")
            results.append((stage.name, "skipped", 0.0))
            continue
        redo_rest = True  # later stages consume this stage's output
        group, args = cli_for(root, argv)
        prog = "avmodels" if group is not root else "avprep"
        echo(f"[{stage.name}] {prog} {' '.join(args)}")
        t0 = time.monotonic()
        try:
            group.main(args=args, prog_name=prog, standalone_mode=False)
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise AvprepError(
                    f"pipeline {pipe.name}: stage {stage.name!r} exited with {exc.code}; "
                    "fix the cause and rerun the same command to resume"
                ) from None
        except click.ClickException as exc:
            raise ConfigError(f"stage {stage.name!r}: {exc.format_message()}") from exc
        except AvprepError as exc:
            raise type(exc)(f"pipeline {pipe.name}: stage {stage.name!r}: {exc}") from exc
        dt = time.monotonic() - t0
        state[stage.name] = {"fingerprint": stage.fingerprint(variables), "seconds": round(dt, 2)}
        write_json(_state_path(workdir, pipe.name), {"pipeline": pipe.name, "stages": state})
        results.append((stage.name, "ran", dt))
    return results
