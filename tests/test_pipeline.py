"""``avprep run``: recipe parsing, validation against the real commands, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from avprep.cli import cli
from avprep.errors import AvprepError, ConfigError
from avprep.pipeline import load_pipeline, plan, run_pipeline

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_argv_substitution_and_flags(tmp_path):
    pipe = load_pipeline(
        _write(
            tmp_path,
            """
name: t
vars: {jobs: 3, sub: "{workdir}/x"}
stages:
  - {name: a, command: metadata fetch, args: {_: [one, two], mirror: "{sub}", force: true}}
""",
        )
    )
    stage = pipe.stages[0]
    argv = stage.argv({**pipe.variables, "workdir": "/w"})
    assert argv == ["metadata", "fetch", "--mirror", "/w/x", "--force", "one", "two"]


@pytest.mark.parametrize(
    "body,match",
    [
        ("stages: []", "non-empty 'stages'"),
        ("stages: [{name: a}]", "needs a 'command'"),
        ("stages: [{command: doctor}, {command: doctor}]", "used twice"),
        ("stages: [{command: nosuch}]", "unknown avprep command"),
        ("stages: [{command: doctor, args: {bogus: 1}}]", "has no option --bogus"),
        ("stages: [{command: run, args: {workdir: '{nope}'}}]", "no such variable"),
        ("stages: [oops", "not valid YAML"),
    ],
)
def test_bad_recipes_are_clear_errors(tmp_path, body, match):
    with pytest.raises(ConfigError, match=match):
        pipe = load_pipeline(_write(tmp_path, body))
        plan(pipe, cli, tmp_path)


def test_run_resumes_and_from_forces(tmp_path, monkeypatch):
    recipe = _write(
        tmp_path,
        "name: t\nstages:\n  - {name: first, command: doctor}\n  - {name: second, command: doctor}\n",
    )
    pipe = load_pipeline(recipe)
    work = tmp_path / "work"
    first = run_pipeline(pipe, cli, work, echo=lambda s: None)
    assert [r[:2] for r in first] == [("first", "ran"), ("second", "ran")]
    state = json.loads((work / ".pipeline" / "t.json").read_text())
    assert set(state["stages"]) == {"first", "second"}
    again = run_pipeline(pipe, cli, work, echo=lambda s: None)
    assert [r[:2] for r in again] == [("first", "skipped"), ("second", "skipped")]
    forced = run_pipeline(pipe, cli, work, start_from="second", echo=lambda s: None)
    assert [r[:2] for r in forced] == [("first", "skipped"), ("second", "ran")]
    with pytest.raises(ConfigError, match="no such stage"):
        run_pipeline(pipe, cli, work, start_from="third", echo=lambda s: None)


def test_failed_stage_stops_and_is_not_recorded(tmp_path, monkeypatch):
    recipe = _write(tmp_path, "name: f\nstages:\n  - {name: only, command: doctor}\n")
    monkeypatch.setenv("AVPREP_FFMPEG", str(tmp_path / "missing-ffmpeg"))
    from avprep import ffmpeg

    ffmpeg.ffmpeg_binary.cache_clear()
    try:
        with pytest.raises(AvprepError, match="stage 'only' exited with 1"):
            run_pipeline(load_pipeline(recipe), cli, tmp_path / "w", echo=lambda s: None)
    finally:
        ffmpeg.ffmpeg_binary.cache_clear()
    assert not (tmp_path / "w" / ".pipeline" / "f.json").exists()


def test_cli_dry_run_prints_plan(tmp_path):
    recipe = _write(tmp_path, "name: d\ndescription: demo\nstages:\n  - {command: doctor}\n")
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
    """The shipped SynthAV recipe, for real at toy size: synth -> extract -> 3 packs."""
    recipe = load_pipeline(PIPELINES / "synthav.yaml")
    work = tmp_path / "w"
    overrides = {"clips": "12", "jobs": "1"}
    first = run_pipeline(recipe, cli, work, overrides=overrides, echo=lambda s: None)
    assert [outcome for _, outcome, _ in first] == ["ran"] * len(recipe.stages)
    for split in ("train", "val", "test"):
        index = json.loads((work / "h5" / split / "index.json").read_text())
        listed = (work / "synthav" / "splits" / f"{split}.txt").read_text().split()
        assert sum(s["rows"] for s in index["shards"]) == len(listed) > 0
    again = run_pipeline(recipe, cli, work, overrides=overrides, echo=lambda s: None)
    assert [outcome for _, outcome, _ in again] == ["skipped"] * len(recipe.stages)
