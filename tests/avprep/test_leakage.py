"""Train/test leakage on the real published lists and on hand-made ones."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from avprep.cli import cli
from avprep.leakage import check_leakage, video_id

VENV_BIN = Path(sys.executable).parent


def plain_ids(path: Path) -> set[str]:
    """An independent normalisation of the simple list shapes, to check the parsers against:
    first CSV column, basename without extension, CR stripped."""
    out = set()
    for line in path.read_text().splitlines():
        line = line.strip().split(",")[0]
        if line:
            out.add(line.rsplit("/", 1)[-1].split(".")[0])
    return out


@pytest.mark.parametrize(
    ("train", "test"),
    [
        ("htf/flickr_train_144k.txt", "sspl/flickr_test249_in5k.csv"),
        ("ssltie/train_flickr_10k.txt", "sspl/flickr_test249_in5k.csv"),  # paths vs id,int
        ("ezvsl/vggss_144k.txt", "ezvsl/vggss_test.csv"),
        ("ezvsl/vggss_10k.txt", "sspl/vggss_test_5158.json"),  # ids vs VGG-SS JSON
    ],
)
def test_leakage_on_real_lists(shared_metadata, train, test):
    report = check_leakage(shared_metadata / train, shared_metadata / test)
    a, b = plain_ids(shared_metadata / train), None
    if test.endswith(".json"):
        b = {x["file"] for x in json.loads((shared_metadata / test).read_text())}
    else:
        b = plain_ids(shared_metadata / test)
    assert report["train"] == len(a) and report["test"] == len(b)
    assert report["overlap_ids"] == sorted(a & b)
    assert report["overlap"] == len(report["overlap_ids"])
    assert report["overlap_fraction_of_test"] == pytest.approx(report["overlap"] / len(b), abs=1e-6)
    # a clip shared by both lists is also a video shared by both
    assert report["video_overlap"] >= len({i.rsplit("_", 1)[0] if "_" in i else i for i in a & b})


def test_cli_check_leakage_json_on_real_lists(shared_metadata):
    train = shared_metadata / "ezvsl/flickr_144k.txt"
    test = shared_metadata / "ssltie/test_flickr_250.txt"  # <id>.jpg names
    res = CliRunner().invoke(
        cli, ["metadata", "check-leakage", "--train", str(train), "--test", str(test), "--json"]
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert {"train", "test", "overlap", "overlap_ids"} <= set(report)
    assert report["overlap"] == len(report["overlap_ids"]) > 0
    common = plain_ids(train) & plain_ids(test)
    assert set(report["overlap_ids"]) == common
    assert report["train"] == 144000 and report["test"] == 249


def test_cli_check_leakage_text_and_fail_flag(tmp_path):
    train = tmp_path / "train.txt"
    test = tmp_path / "test.csv"
    train.write_text("videos/0/0/1/100.mp4\nvideos/0/0/2/200.mp4\nvideos/0/0/3/300.mp4\n")
    test.write_text("200,0\r\n300,5\r\n400,0\r\n")
    res = CliRunner().invoke(
        cli, ["metadata", "check-leakage", "--train", str(train), "--test", str(test)]
    )
    assert res.exit_code == 0, res.output
    assert "overlap 2 train clips are test clips (66.67% of test)" in res.output
    assert "  200\n  300\n" in res.output
    proc = subprocess.run(
        [
            VENV_BIN / "avprep",
            "metadata",
            "check-leakage",
            "--train",
            str(train),
            "--test",
            str(test),
            "--fail-on-overlap",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 3
    assert "error: 2 training clips are also test clips" in proc.stderr


def test_video_level_overlap_and_spellings(tmp_path):
    train = tmp_path / "train.txt"
    test = tmp_path / "test.txt"
    # HTF's <ytid>_<ms>_<ms> spelling of a test clip, and another segment of a test video
    train.write_text("zpWuikVorYg_32000_42000\ngEvCUcZ6w88_000100\nabcdefghijk_000001\n")
    test.write_text("zpWuikVorYg_000032\ngEvCUcZ6w88_000030\n")
    report = check_leakage(train, test)
    assert report["overlap_ids"] == ["zpWuikVorYg_000032"]
    assert report["video_overlap_ids"] == ["gEvCUcZ6w88", "zpWuikVorYg"]
    assert video_id("gEvCUcZ6w88_000030", "vggsound") == "gEvCUcZ6w88"
    assert video_id("ABCDEFGH_000120", "chaotic") == "ABCDEFGH"


def test_tables_and_iterables(tmp_path):
    df = pd.DataFrame({"clip_id": ["a", "b", "c"], "source": ["other"] * 3})
    report = check_leakage(df, ["c", "d", "c"])
    assert (report["train"], report["test"], report["overlap"]) == (3, 2, 1)
    assert report["overlap_ids"] == ["c"]
    assert report["train_name"] is None
