"""The Stage contract (avprep.stage.run_stage): lock held, temporaries swept, other
parameters refused in one line, done clips skipped, failures kept or redone, counts."""

from __future__ import annotations

import fcntl
import json
import shutil
from pathlib import Path

import pytest

from avprep.atomic import write_text
from avprep.errors import ConfigError
from avprep.lock import FolderBusyError, lock_name
from avprep.manifest import FAILED, MANIFEST_NAME, OK, ClipRecord, Manifest
from avprep.stage import Stage, Work, run_stage


def write_step(item: str, cfg: dict) -> ClipRecord:
    """A real step: writes OUT/<id>.txt, fails the ids it is told to, checks the lock."""
    out = Path(cfg["out"])
    with open(out / lock_name("toy"), "a+") as fh:  # the run holds the folder's lock
        with pytest.raises(BlockingIOError):
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    if item in cfg.get("fail", ()):
        return ClipRecord(item, FAILED, error=f"{item}: told to fail")
    write_text(out / f"{item}.txt", item)
    return ClipRecord(item, OK, outputs={"text": f"{item}.txt"})


def toy(out: Path, *, params: dict, fail=(), redo_failed=True) -> Stage:
    return Stage(
        name="toy",
        step=write_step,
        config={"out": str(out), "fail": list(fail)},
        out=out,
        header={"params": params, "tool": "x"},
        params_key="params",
        redo_failed=redo_failed,
    )


def test_a_run_sweeps_records_skips_and_counts(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".tmp-killed").mkdir()  # what a killed run left
    (out / ".tmp-killed" / "part").write_bytes(b"x")
    rep = run_stage(toy(out, params={"a": 1}, fail=["c"]), ["a", "b", "c"], backend="serial",
                    progress=False)  # fmt: skip
    assert rep.swept == 1 and not (out / ".tmp-killed").exists()
    assert (rep.ok, rep.failed, rep.already_done, rep.counts()) == (2, 1, 0, {OK: 2, FAILED: 1})
    assert rep.reasons() == [("told to fail", 1)]
    assert (out / "a.txt").read_text() == "a"
    man = Manifest(out / MANIFEST_NAME)
    assert man.header == {"params": {"a": 1}, "tool": "x"}
    assert {r.clip_id: r.status for r in man.records()} == {"a": OK, "b": OK, "c": FAILED}

    # a rerun skips what is done and redoes the failure (now fixed)
    again = run_stage(toy(out, params={"a": 1}), ["a", "b", "c"], backend="serial", progress=False)
    assert (again.already_done, [r.clip_id for r in again.records]) == (2, ["c"])
    # a clip whose output vanished is not done
    (out / "b.txt").unlink()
    third = run_stage(toy(out, params={"a": 1}), ["a", "b", "c"], backend="serial", progress=False)
    assert [r.clip_id for r in third.records] == ["b"] and third.already_done == 2
    # one header only: it is written once and checked afterwards
    headers = [ln for ln in (out / MANIFEST_NAME).read_text().splitlines() if "_header" in ln]
    assert len(headers) == 1


def test_failures_are_kept_unless_the_stage_redoes_them(tmp_path):
    out = tmp_path / "o"
    run_stage(toy(out, params={}, fail=["x"]), ["x"], backend="serial", progress=False)
    kept = run_stage(toy(out, params={}, redo_failed=False), ["x"], backend="serial",
                     progress=False)  # fmt: skip
    assert (kept.not_retried, kept.records) == (1, [])
    redo = run_stage(toy(out, params={}), ["x"], backend="serial", progress=False)
    assert [r.status for r in redo.records] == [OK]


def test_other_parameters_are_refused_in_one_line_before_any_work(tmp_path):
    out = tmp_path / "o"
    run_stage(toy(out, params={"size": 1, "k": "v"}), ["a"], backend="serial", progress=False)
    before = (out / MANIFEST_NAME).read_bytes()
    with pytest.raises(ConfigError) as err:
        run_stage(toy(out, params={"size": 2, "k": "v"}), ["a", "b"], backend="serial",
                  progress=False)  # fmt: skip
    assert "\n" not in str(err.value) and "size differ" in str(err.value)
    assert (out / MANIFEST_NAME).read_bytes() == before and not (out / "b.txt").exists()


def test_the_lock_refuses_a_second_run_and_select_runs_under_it(tmp_path):
    out = tmp_path / "o"
    seen = {}

    def select(manifest):
        seen["records"] = len(manifest)
        # a second run while this one holds the lock is refused at once
        with pytest.raises(FolderBusyError):
            run_stage(toy(out, params={}), ["z"], backend="serial", progress=False)
        return Work(["a"], rejected=[ClipRecord("bad", FAILED, error="bad: unusable input")])

    rep = run_stage(toy(out, params={}), select, backend="serial", progress=False,
                    finish=lambda r: (r.ok, r.failed, json.dumps(r.reasons())))  # fmt: skip
    assert seen == {"records": 0}
    assert rep == (1, 1, json.dumps([["unusable input", 1]]))
    assert Manifest(out / MANIFEST_NAME).get("bad").error == "bad: unusable input"


@pytest.mark.slow
def test_a_parallel_run_writes_what_a_serial_one_does(tmp_path):
    serial, loky = tmp_path / "s", tmp_path / "l"
    run_stage(toy(serial, params={}), list("abcd"), backend="serial", progress=False)
    rep = run_stage(toy(loky, params={}), list("abcd"), jobs=2, progress=False)
    assert rep.ok == 4
    for c in "abcd":
        assert (loky / f"{c}.txt").read_bytes() == (serial / f"{c}.txt").read_bytes()


@pytest.mark.slow
def test_relative_paths_mean_the_callers_folder_in_reused_workers(tmp_path, monkeypatch):
    # loky keeps its workers between runs; each run's relative paths must still
    # resolve where the caller is now (a second command in one process)
    first, second = tmp_path / "a", tmp_path / "b"
    for d in (first, second):
        (d / "out").mkdir(parents=True)
    monkeypatch.chdir(first)
    assert run_stage(toy(Path("out"), params={}), list("ab"), jobs=2, progress=False).ok == 2
    monkeypatch.chdir(second)
    assert run_stage(toy(Path("out"), params={}), list("cd"), jobs=2, progress=False).ok == 2
    assert sorted(p.name for p in (second / "out").glob("*.txt")) == ["c.txt", "d.txt"]
    assert sorted(p.name for p in (first / "out").glob("*.txt")) == ["a.txt", "b.txt"]
    shutil.rmtree(second)  # the workers' folder is gone; a run elsewhere still works
    third = tmp_path / "c"
    (third / "out").mkdir(parents=True)
    monkeypatch.chdir(third)
    assert run_stage(toy(Path("out"), params={}), list("ef"), jobs=2, progress=False).ok == 2


def write_group(group: tuple[str, ...], cfg: dict) -> list[ClipRecord]:
    """A unit of several clips (as extract --times' video): one record per clip."""
    return [write_step(item, cfg) for item in group]


@pytest.mark.parametrize("backend", ["serial", "loky"])
def test_a_unit_of_several_clips_records_each(tmp_path, backend):
    out = tmp_path / "out"
    out.mkdir()
    stage = Stage(
        name="toy", step=write_group, config={"out": str(out), "fail": ["c"]}, out=out,
        unit="group", key=lambda group: "group:" + group[0],
    )  # fmt: skip
    rep = run_stage(stage, [("a", "b"), ("c",)], jobs=2, backend=backend, progress=False)
    assert sorted(r.clip_id for r in rep.records) == ["a", "b", "c"]
    assert rep.ok == 2 and rep.failed == 1 and rep.reasons() == [("told to fail", 1)]
    recorded = {r.clip_id: r.status for r in Manifest(out / MANIFEST_NAME).records()}
    assert recorded == {"a": OK, "b": OK, "c": FAILED}
    assert (out / "a.txt").read_text() == "a" and (out / "b.txt").read_text() == "b"
