"""``avmodels evaluate-maps``: score an .npz of maps from the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from avmodels.cli import cli
from avmodels.metrics import evaluate
from avprep.annotations import load_annotations
from tests.annotation_fixtures import FLICKR_CLIPS, VGGSS_ENTRIES, write_flickr, write_vggss

IDS = [e["file"] for e in VGGSS_ENTRIES]


def invoke(*args: str):
    return CliRunner().invoke(cli, ["evaluate-maps", *args], catch_exceptions=False)


def run_main(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from avmodels.cli import main; main()", "evaluate-maps", *args],
        capture_output=True,
        text=True,
    )


@pytest.fixture()
def vggss_case(tmp_path):
    ann = write_vggss(tmp_path / "v.json")
    rng = np.random.default_rng(0)
    maps = {cid: rng.random((14, 14)).astype(np.float32) for cid in IDS}
    npz = tmp_path / "maps.npz"
    np.savez(npz, **maps)
    return ann, npz, maps


@pytest.mark.parametrize("preset", ["default", "lvs", "sspl"])
def test_json_output_matches_the_library(vggss_case, tmp_path, preset):
    ann, npz, maps = vggss_case
    csv = tmp_path / "per.csv"
    r = invoke("--maps", str(npz), "--benchmark", "vggss", "--annotations", str(ann),
               "--preset", preset, "--json", "--per-sample", str(csv))  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    lib = evaluate(maps, load_annotations(ann, "vggss"), preset)
    assert out["preset"] == preset and out["n"] == len(IDS)
    for key in ("ciou", "auc", "mean_iou", "pointing"):
        expected = getattr(lib, key)
        assert out[key] == (None if np.isnan(expected) else pytest.approx(expected, abs=1e-15))
    assert out["ap50"] == out["ciou"] and len(out["curve"]) == 21
    table = pd.read_csv(csv)
    assert list(table["clip_id"]) == IDS
    assert {"iou", "pointing_hit", "inter", "union", "fg_pixels"} <= set(table.columns)
    np.testing.assert_allclose(table["iou"], lib.per_sample["iou"], rtol=0, atol=1e-12)


def test_table_output(vggss_case):
    ann, npz, _ = vggss_case
    r = invoke("--maps", str(npz), "--benchmark", "vggss", "--annotations", str(ann))
    assert r.exit_code == 0
    assert "cIoU (AP50)" in r.output and "preset       default" in r.output
    assert f"clips        {len(IDS)}" in r.output


def test_missing_maps_error_and_allow_missing(vggss_case, tmp_path):
    ann, _, maps = vggss_case
    partial = tmp_path / "partial.npz"
    np.savez(partial, **{k: v for k, v in maps.items() if k != IDS[2]}, stranger=np.eye(3))
    proc = run_main("--maps", str(partial), "--benchmark", "vggss", "--annotations", str(ann))
    assert proc.returncode != 0
    assert "1 annotated clips have no map (MKC9LvRivTM_000030)" in proc.stderr
    assert "--allow-missing" in proc.stderr and "Traceback" not in proc.stderr
    r = invoke("--maps", str(partial), "--benchmark", "vggss", "--annotations", str(ann),
               "--allow-missing", "--json")  # fmt: skip
    out = json.loads(r.stdout)
    assert out["missing"] == [IDS[2]] and out["n"] == len(IDS) - 1 and out["n_extra"] == 1
    text = invoke("--maps", str(partial), "--benchmark", "vggss", "--annotations", str(ann),
                  "--allow-missing").output  # fmt: skip
    assert "1 annotated clips without a map: MKC9LvRivTM_000030" in text


def test_ids_restrict_the_set(vggss_case, tmp_path):
    ann, npz, _ = vggss_case
    ids = tmp_path / "ids.csv"
    ids.write_text(f"{IDS[0]}\r\n{IDS[4]}\r\n")
    out = json.loads(
        invoke(
            "--maps",
            str(npz),
            "--benchmark",
            "vggss",
            "--annotations",
            str(ann),
            "--ids",
            str(ids),
            "--json",
        ).stdout  # fmt: skip
    )
    assert out["n"] == 2
    proc = run_main("--maps", str(npz), "--benchmark", "vggss", "--annotations", str(ann),
                    "--ids", "ghost_000001")  # fmt: skip
    assert proc.returncode != 0 and "1 ids of --ids have no annotation" in proc.stderr


def test_flickr_and_chaotic(tmp_path):
    folder = write_flickr(tmp_path / "anno", FLICKR_CLIPS)
    rng = np.random.default_rng(1)
    npz = tmp_path / "f.npz"
    np.savez(npz, **{c: rng.random((7, 7)) for c in FLICKR_CLIPS})
    out = json.loads(
        invoke(
            "--maps",
            str(npz),
            "--benchmark",
            "flickr",
            "--annotations",
            str(folder),
            "--preset",
            "ezvsl",
            "--json",
        ).stdout  # fmt: skip
    )
    assert out["n"] == 3 and out["preset"] == "ezvsl"
    cw = tmp_path / "cw.json"
    cw.write_text(
        json.dumps([{"file": "ABCDEFGH_000012", "class": "car", "bbox": [0, 0, 160, 180]}])
    )
    left = np.tile(np.linspace(1, 0, 14, dtype=np.float32), (14, 1))
    np.savez(tmp_path / "c.npz", ABCDEFGH_000012=left)
    out = json.loads(
        invoke(
            "--maps",
            str(tmp_path / "c.npz"),
            "--benchmark",
            "chaotic",
            "--annotations",
            str(cw),
            "--json",
        ).stdout  # fmt: skip
    )
    assert out["n"] == 1 and out["ciou"] == 1.0 and out["pointing"] == 1.0


def test_bad_inputs(vggss_case, tmp_path):
    ann, npz, _ = vggss_case
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    proc = run_main("--maps", str(junk), "--benchmark", "vggss", "--annotations", str(ann))
    assert proc.returncode != 0 and "not a readable .npz" in proc.stderr
    pickled = tmp_path / "obj.npz"
    np.savez(pickled, **{IDS[0]: np.array([{"a": 1}], dtype=object)})
    proc = run_main("--maps", str(pickled), "--benchmark", "vggss", "--annotations", str(ann))
    assert proc.returncode != 0 and "error:" in proc.stderr and "Traceback" not in proc.stderr
    r = CliRunner().invoke(
        cli, ["evaluate-maps", "--maps", str(npz), "--benchmark", "vggss",
              "--annotations", str(ann), "--preset", "nips"],
    )  # fmt: skip
    assert r.exit_code == 2 and "default" in r.output and "htf" in r.output
