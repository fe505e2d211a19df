"""`avprep audioset-instrument clips`: val_audio.pkl (restricted unpickler) joined with
AudioSet's segment CSVs into a clip table that `avprep download` reads with its times."""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from avprep.cli import cli
from avprep.errors import ConfigError, InputError
from avprep.recipes import load_clips
from avprep.safepickle import UnsafePickleError
from avprep.stages.download import prepare_clips


def _tags(path):
    table = {}
    for i, vid in enumerate(["-a1b2c3d4e5", "zz_9876543", "Q0q0q0q0q0q", "mmmmmmmmmmm"]):
        t = np.zeros(15)
        t[[i, (i + 5) % 15]] = 1.0 if i != 3 else 0.0  # the last one has no instrument
        table[vid] = t
    path.write_bytes(pickle.dumps(table, protocol=2))
    return table


SEGMENTS = (
    "# Segments csv created Sun Mar  5 10:54:31 2017\n"
    "# num_ytids=3, num_segs=3, num_unique_labels=2, num_positive_labels=3\n"
    "# YTID, start_seconds, end_seconds, positive_labels\n"
    '-a1b2c3d4e5, 30.000, 40.000, "/m/042v_gx,/m/04rlf"\n'
    'zz_9876543, 0.000, 10.000, "/m/04rlf"\n'
    'notinthepkl, 5.000, 15.000, "/m/04rlf"\n'
)
MORE = '# YTID, start_seconds, end_seconds, positive_labels\nQ0q0q0q0q0q, 12.5, 22.5, "/m/x"\n'
MORE += 'zz_9876543, 100.000, 110.000, "/m/04rlf"\n'  # listed again: the first CSV wins


@pytest.fixture
def files(tmp_path):
    table = _tags(tmp_path / "val_audio.pkl")
    (tmp_path / "eval_segments.csv").write_text(SEGMENTS)
    (tmp_path / "balanced.csv").write_text(MORE)
    return tmp_path, table


def _run(*args):
    return CliRunner().invoke(cli, ["audioset-instrument", "clips", *map(str, args)])


def test_join_writes_a_table_download_reads_with_its_times(files):
    from avprep.recipes.audioset_instrument import INSTRUMENTS

    d, table = files
    out = d / "ai-test.csv"
    res = _run("--tags", d / "val_audio.pkl", "--segments", d / "eval_segments.csv",
               "--segments", d / "balanced.csv", "--out", out)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "videos      4" in res.output and "with times  3" in res.output
    assert "unmatched   1 kept" in res.output and "mmmmmmmmmmm" in res.output
    assert f"written     {out} (4 clips)" in res.output
    df = load_clips(out)  # detected by its header
    assert df.attrs["format"] == "clip-table-csv"
    rows = df.set_index("clip_id")
    assert sorted(rows.index) == sorted(table)
    want = {"-a1b2c3d4e5": (30.0, 40.0), "zz_9876543": (0.0, 10.0), "Q0q0q0q0q0q": (12.5, 22.5)}
    for vid, (s, e) in want.items():
        assert (rows.loc[vid, "start"], rows.loc[vid, "end"]) == (s, e)
        assert rows.loc[vid, "url"] == f"https://www.youtube.com/watch?v={vid}"
    assert math.isnan(rows.loc["mmmmmmmmmmm", "start"]) and rows.loc["mmmmmmmmmmm", "label"] is None
    for vid, tags in table.items():  # labels: the tagged instruments in tag order
        names = [INSTRUMENTS[i] for i in np.flatnonzero(tags)]
        assert (rows.loc[vid, "label"] or "") == "|".join(names)
        assert rows.loc[vid, "split"] == "test"
    clips = {c.clip_id: c for c in prepare_clips(df).clips}  # what download fetches
    assert (clips["-a1b2c3d4e5"].start, clips["-a1b2c3d4e5"].end) == (30.0, 40.0)
    assert clips["mmmmmmmmmmm"].start is None
    # --only-matched leaves the unlisted video out
    res = _run("--tags", d / "val_audio.pkl", "--segments", d / "eval_segments.csv",
               "--only-matched", "--split", "train", "--out", d / "m.csv")  # fmt: skip
    assert res.exit_code == 0, res.output
    m = pd.read_csv(d / "m.csv", keep_default_na=False)
    assert sorted(m["clip_id"]) == ["-a1b2c3d4e5", "zz_9876543"] and set(m["split"]) == {"train"}


def test_bad_inputs_fail_with_one_line(files):
    d, _ = files
    seg = d / "eval_segments.csv"
    res = _run("--tags", d / "nope.pkl", "--segments", seg, "--out", d / "o.csv")
    assert isinstance(res.exception, InputError) and "no such file" in str(res.exception)
    res = _run("--tags", d / "val_audio.pkl", "--segments", d / "absent.csv", "--out", d / "o.csv")
    assert res.exit_code == 2 and "does not exist" in res.output
    bad = d / "bad.csv"
    bad.write_text("# YTID, start_seconds, end_seconds\nabc, thirty, 40\n")
    res = _run("--tags", d / "val_audio.pkl", "--segments", bad, "--out", d / "o.csv")
    assert isinstance(res.exception, InputError) and f"{bad}:2:" in str(res.exception)
    binary = d / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage\n")
    res = _run("--tags", d / "val_audio.pkl", "--segments", binary, "--out", d / "o.csv")
    assert isinstance(res.exception, InputError) and "not an AudioSet segments CSV" in str(
        res.exception
    )
    res = _run("--tags", d / "val_audio.pkl", "--segments", seg, "--out", d / "o.txt")
    assert isinstance(res.exception, ConfigError)
    assert not (d / "o.csv").exists() and not (d / "o.txt").exists()


class _Hostile:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_hostile_pickle_is_refused_unexecuted_and_the_cli_says_one_line(files):
    d, _ = files
    sentinel = d / "pwned"
    evil = d / "train_audio.pkl"
    evil.write_bytes(pickle.dumps({"x": _Hostile(sentinel)}, protocol=2))
    res = _run("--tags", evil, "--segments", d / "eval_segments.csv", "--out", d / "o.csv")
    assert isinstance(res.exception, UnsafePickleError) and not sentinel.exists()
    proc = subprocess.run(
        [sys.executable, "-m", "avprep", "audioset-instrument", "clips", "--tags", str(evil),
         "--segments", str(d / "eval_segments.csv"), "--out", str(d / "o.csv")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": os.getcwd()},
    )  # fmt: skip
    assert proc.returncode != 0 and not sentinel.exists()
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "refused" in lines[0] and "Traceback" not in proc.stderr
    assert not (d / "o.csv").exists()


def test_clip_table_rows_are_checked(tmp_path):
    from avprep.recipes.clip_table import HEADER

    p = tmp_path / "t.csv"
    p.write_text(f"{HEADER}\nok1,url,https://example.org/a.mp4,1,11,,\nbad id,url,,,,,\n"
                 "ok2,url,ftp://x/y.mp4,,,,\nok3,url,,20,10,,\n")  # fmt: skip
    with pytest.raises(InputError, match="3 malformed") as info:
        load_clips(p)
    text = str(info.value)
    assert "line 3" in text and "line 4" in text and "line 5" in text
    df = load_clips(p, skip_bad=True)
    assert df["clip_id"].tolist() == ["ok1"] and (df.start[0], df.end[0]) == (1.0, 11.0)
