"""``avprep run``: recipe parsing, validation against the real commands, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from avprep.cli import cli
from avprep.errors import AvprepError, ConfigError
from avprep.pipeline import load_pipeline, plan, run_pipeline
from avprep.steps import STEPS, StepSpec, register_step

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_stage_options_become_typed_keyword_arguments(tmp_path):
    """Substitution (vars may use {workdir}), ``in`` -> ``in_``, dashes, ``_`` -> the
    positional parameter, types from the step function's signature, false/null left out."""
    pipe = load_pipeline(
        _write(
            tmp_path,
            """
name: t
vars: {jobs: 3, sub: "{workdir}/x", size: 96}
stages:
  - {name: a, command: extract, args: {in: "{sub}", out: o, image-size: "{size}", jobs: "{jobs}",
                                       audio-seconds: "1.5", flow: null, limit: false}}
  - {name: b, command: metadata fetch, args: {_: [one, two], force: true}}
  - {name: c, command: verify, args: {_: ["{workdir}/h5"], no-hash: "true"}}
""",
        )
    )
    variables = {**pipe.variables, "workdir": "/w"}
    assert pipe.stages[0].kwargs(variables) == {
        "in_": "/w/x", "out": "o", "image_size": 96, "jobs": 3, "audio_seconds": 1.5,
    }  # fmt: skip
    assert pipe.stages[1].kwargs(variables) == {"names": ["one", "two"], "force": True}
    assert pipe.stages[2].kwargs(variables) == {"folder": "/w/h5", "no_hash": True}
    assert pipe.stages[0].describe(variables).startswith("extract in=/w/x out=o image-size=96")
    # the demo adds options to a stage of a shipped recipe without editing it
    more = pipe.with_args("a", frame_at="middle", image_size=48)
    assert more.stages[0].kwargs(variables)["frame_at"] == "middle"
    assert more.stages[0].kwargs(variables)["image_size"] == 48
    assert pipe.stages[0].kwargs(variables)["image_size"] == 96  # the original is unchanged


def test_a_step_takes_the_options_of_the_library_call_it_passes_on():
    """``download``'s options are declared once, by ``download_ids``: the recipe check sees
    them (names, types, required) as if the step declared them, plus the step's own."""
    import inspect

    from avprep.stages.download_ids import download_ids

    spec = STEPS["download"]
    assert set(spec.parameters()) == set(inspect.signature(download_ids).parameters) | {"strict"}
    args = {"ids": "x.txt", "out": "o", "limit": "3", "strict": "yes", "section": "10"}
    assert spec.kwargs(args) == {
        "ids": "x.txt", "out": "o", "limit": 3, "strict": True, "section": 10.0,
    }  # fmt: skip
    with pytest.raises(ConfigError, match="needs out"):
        spec.kwargs({"ids": "x.txt"})
    with pytest.raises(ConfigError, match="takes no option 'bogus'"):
        spec.kwargs({"ids": "x.txt", "out": "o", "bogus": 1})
    # pack-h5: pack()'s keyword options, the step's own (in, out, split, ids as text, ...)
    from avprep.store.pack import pack

    pack_kw = {n for n, p in inspect.signature(pack).parameters.items() if p.kind is p.KEYWORD_ONLY}
    own = {"in_", "out", "split", "ids", "modalities", "released_profile", "strict"}
    assert set(STEPS["pack-h5"].parameters()) == pack_kw | own
    assert STEPS["pack-h5"].kwargs({"in": "e", "out": "o", "split": "t", "shards": "2"}) == {
        "in_": "e", "out": "o", "split": "t", "shards": 2,
    }  # fmt: skip


def test_the_steps_are_library_functions_not_command_lines():
    """Every registered step imports without click (a library call, not a CLI)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from avprep.steps import STEPS\n"
        "for s in STEPS.values():\n"
        "    s.function()\n"
        "import avprep.pipeline, avmodels.demo\n"
        "print('click' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(
    "body,match",
    [
        ("stages: []", "non-empty 'stages'"),
        ("stages: [{name: a}]", "needs a 'command'"),
        ("stages: [{command: verify}, {command: verify}]", "used twice"),
        ("stages: [{command: nosuch}]", "cannot run 'nosuch'"),
        ("stages: [{command: verify, args: {bogus: 1}}]", "takes no option 'bogus'"),
        ("stages: [{command: pack-h5, args: {in: a, out: b}}]", "needs split"),
        ("stages: [{command: synth, args: {out: a, clips: lots}}]", "'lots' is not a int"),
        ("stages: [{command: verify, args: {folder: '{nope}'}}]", "no such variable"),
        ("stages: [{command: pairs, args: {_: [x]}}]", "takes no positional"),
        ("stages: [oops", "not valid YAML"),
    ],
)
def test_bad_recipes_are_clear_errors(tmp_path, body, match):
    with pytest.raises(ConfigError, match=match):
        pipe = load_pipeline(_write(tmp_path, body))
        plan(pipe, tmp_path)


def _write_marker(*, out: str, text: str = "x", fail: bool = False) -> str:
    """A step of the tests: writes a file (or fails as a step does, with an AvprepError)."""
    if fail:
        raise AvprepError("the step failed on purpose")
    path = Path(out)
    path.write_text(path.read_text() + text if path.exists() else text)
    return f"wrote {out}"


@pytest.fixture
def marker_step():
    spec = StepSpec("write-marker", "tests.avprep.test_pipeline:_write_marker")
    register_step(spec)
    yield spec
    STEPS.pop(spec.command, None)


def test_run_resumes_and_from_forces(tmp_path, marker_step):
    work = tmp_path / "work"
    recipe = _write(
        tmp_path,
        "name: t\nstages:\n"
        "  - {name: first, command: write-marker, args: {out: '{workdir}/a'}}\n"
        "  - {name: second, command: write-marker, args: {out: '{workdir}/b'}}\n",
    )
    pipe = load_pipeline(recipe)
    said = []
    first = run_pipeline(pipe, work, echo=said.append)
    assert [r[:2] for r in first] == [("first", "ran"), ("second", "ran")]
    assert f"wrote {work}/a" in said  # the step's own summary is echoed
    state = json.loads((work / ".pipeline" / "t.json").read_text())
    assert set(state["stages"]) == {"first", "second"}
    again = run_pipeline(pipe, work, echo=lambda s: None)
    assert [r[:2] for r in again] == [("first", "skipped"), ("second", "skipped")]
    assert (work / "a").read_text() == "x"  # not called again
    forced = run_pipeline(pipe, work, start_from="second", echo=lambda s: None)
    assert [r[:2] for r in forced] == [("first", "skipped"), ("second", "ran")]
    assert (work / "b").read_text() == "xx"
    # skip_done=False calls every step (each resumes by itself: the demo's way)
    every = run_pipeline(pipe, work, echo=lambda s: None, skip_done=False)
    assert [r[:2] for r in every] == [("first", "ran"), ("second", "ran")]
    # a changed argument reruns that stage and every later one
    changed = run_pipeline(pipe, work, overrides={}, echo=lambda s: None)
    assert [r[1] for r in changed] == ["skipped", "skipped"]
    edited = pipe.with_args("first", text="y")
    assert [r[1] for r in run_pipeline(edited, work, echo=lambda s: None)] == ["ran", "ran"]
    assert (work / "a").read_text() == "xxy"
    with pytest.raises(ConfigError, match="no such stage"):
        run_pipeline(pipe, work, start_from="third", echo=lambda s: None)


def test_failed_stage_stops_and_is_not_recorded(tmp_path, marker_step):
    recipe = _write(
        tmp_path,
        "name: f\nstages:\n  - {name: only, command: write-marker, args: {out: x, fail: true}}\n",
    )
    with pytest.raises(AvprepError, match="pipeline f: stage 'only': the step failed on purpose"):
        run_pipeline(load_pipeline(recipe), tmp_path / "w", echo=lambda s: None)
    assert not (tmp_path / "w" / ".pipeline" / "f.json").exists()


def test_cli_dry_run_prints_plan(tmp_path):
    recipe = _write(
        tmp_path, "name: d\ndescription: demo\nstages:\n  - {command: verify, args: {_: [h5]}}\n"
    )
    result = CliRunner().invoke(cli, ["run", str(recipe), "--dry-run", "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "pipeline d: demo" in result.output and "pending" in result.output
    assert not (tmp_path / ".pipeline").exists()


@pytest.mark.parametrize("recipe", sorted(PIPELINES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_recipe_dry_runs(recipe, tmp_path):
    """Each recipe parses and every stage names a real command with real options."""
    result = CliRunner().invoke(cli, ["run", str(recipe), "--dry-run", "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "pending" in result.output


@pytest.mark.slow
def test_synthav_recipe_runs_end_to_end_and_resumes(tmp_path):
    """The shipped SynthAV recipe, for real at toy size: synth -> loopback download ->
    extract -> 3 packs."""
    recipe = load_pipeline(PIPELINES / "synthav.yaml")
    work = tmp_path / "w"
    overrides = {"clips": "12", "jobs": "1", "size": "96x72", "backend": "serial"}
    first = run_pipeline(recipe, work, overrides=overrides, echo=lambda s: None, progress=False)
    assert [outcome for _, outcome, _ in first] == ["ran"] * len(recipe.stages)
    for split in ("train", "val", "test"):
        index = json.loads((work / "h5" / split / "index.json").read_text())
        listed = (work / "synthav" / "splits" / f"{split}.txt").read_text().split()
        assert sum(s["rows"] for s in index["shards"]) == len(listed) > 0
    again = run_pipeline(recipe, work, overrides=overrides, echo=lambda s: None)
    assert [outcome for _, outcome, _ in again] == ["skipped"] * len(recipe.stages)
