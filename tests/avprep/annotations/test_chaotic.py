"""Chaotic World (ICME 2024 MMVRAC Track 4): the official annotation folder, read
safely, to the recipe's inputs; the fork's preprocessed test layout read with its id file;
a Chaotic-World-shaped fixture through the whole recipe to scores."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from avprep.annotations.chaotic import read_chaotic_json
from avprep.annotations.chaotic_prepare import prepare
from avprep.annotations.chaotic_ssl import (
    build_clip_table,
    parse_bbox,
    read_frame_csv,
    read_group_csv,
)
from avprep.cli import cli
from avprep.errors import AnnotationError, HostileIdError
from tests.chaotic_fixture import write_ssl_format

PIPELINES = Path(__file__).resolve().parents[3] / "pipelines"


# -- bbox cells -------------------------------------------------------------------
def test_bbox_cells_are_literal_boxes():
    assert parse_bbox("[[10, 20, 110, 90]]", "f:2") == ((10.0, 20.0, 110.0, 90.0),)
    assert parse_bbox(" [[1.5, 2, 3, 4], (5, 6, 7, 8)] ", "f:2") == (
        (1.5, 2.0, 3.0, 4.0),
        (5.0, 6.0, 7.0, 8.0),
    )
    assert parse_bbox("[[-1, +2, 3, 4]]", "f:2") == ((-1.0, 2.0, 3.0, 4.0),)


@pytest.mark.parametrize(
    "cell",
    [
        "__import__('os').system('touch {marker}')",
        "[[__import__('os').system('touch {marker}'), 0, 0, 0]]",
        "[[1, 2, 3, 4]] + [open('{marker}', 'w')]",
        "[(lambda: open('{marker}', 'w'))()]",
        "[[1, 2, 3, 4]][0]",
        "[[1, 2, 3]]",
        "[]",
        "[[True, 1, 2, 3]]",
        "[['1', 2, 3, 4]]",
        "{{'x': 1}}",
        "[[1, 2, 3, 4e999]]",
        "[[1, 2, 3, 4]",
    ],
)
def test_hostile_or_malformed_bbox_cells_are_refused_unevaluated(tmp_path, cell):
    marker = tmp_path / "EVALUATED"
    text = cell.format(marker=marker)
    with pytest.raises(AnnotationError, match=r"^group/V\.csv:7: "):
        parse_bbox(text, "group/V.csv:7")
    assert not marker.exists()


def test_hostile_cell_in_a_group_csv_names_file_and_line(tmp_path):
    marker = tmp_path / "EVALUATED"
    root = write_ssl_format(
        tmp_path / "ssl",
        {"ABCDEFGH": [(10, 2.0, "[[0, 0, 10, 10]]", "car"),
                      (20, 3.0, f"__import__('os').system('touch {marker}')", "car")]},
        ["ABCDEFGH"], [],
    )  # fmt: skip
    with pytest.raises(AnnotationError, match=r"group/ABCDEFGH\.csv:3: bbox .*\(refused\)"):
        read_group_csv(root / "annotation" / "group" / "ABCDEFGH.csv")
    with pytest.raises(AnnotationError, match=r"frame/ABCDEFGH\.csv:3: bbox"):
        read_frame_csv(root / "annotation" / "frame" / "ABCDEFGH.csv")
    with pytest.raises(AnnotationError, match=r"ABCDEFGH\.csv:3"):
        build_clip_table(root)
    assert not marker.exists()


def test_hostile_video_ids_are_refused(tmp_path):
    root = write_ssl_format(tmp_path / "ssl", {}, ["../../etc"], [])
    with pytest.raises(HostileIdError, match=r"train_ssl.txt:1: unsafe clip id"):
        build_clip_table(root)


# -- clip table, duplicates, leakage ---------------------------------------------
def _fixture_table(tmp_path: Path) -> Path:
    rows_a = [
        (50, 2.0, "[[0, 0, 160, 90]]", "speech"),
        (75, 3.0, "[[160, 90, 320, 180], [0, 0, 20, 20]]", "music"),
        (50, 2.0, "[[100, 50, 200, 150]]", "speech"),  # frame 50 again
    ]
    rows_b = [(25, 1.0, "[[10, 10, 50, 50]]", "car")]
    rows_c = [(100, 4.0, "[[1, 1, 2, 2]]", "dog")]
    return write_ssl_format(
        tmp_path / "ssl",
        {"TESTAAAA": rows_a, "TRAINBBB": rows_b, "SHAREDCC": rows_c},
        train=["TRAINBBB", "SHAREDCC"],
        test=["TESTAAAA", "SHAREDCC"],
    )


def test_clip_table_merge_and_last(tmp_path):
    root = _fixture_table(tmp_path)
    merged = build_clip_table(root, duplicate_frames="merge")
    last = build_clip_table(root, duplicate_frames="last")
    assert merged.duplicate_frames == last.duplicate_frames == 1
    assert merged.duplicate_rows == 1 and merged.extra_boxes == 1
    m = {(c.clip_id, c.split): c for c in merged.clips}
    x = {(c.clip_id, c.split): c for c in last.clips}
    a50 = ("TESTAAAA_000050", "test")
    assert m[a50].boxes == ((0, 0, 160, 90), (100, 50, 200, 150)) and m[a50].rows == 2
    assert x[a50].boxes == ((100, 50, 200, 150),)
    assert m[a50].fork_box == x[a50].fork_box == (100, 50, 200, 150)  # the fork keeps the last
    a75 = m[("TESTAAAA_000075", "test")]
    assert (a75.frame, a75.time, a75.label, a75.fork_box) == (75, 3.0, "music", (160, 90, 320, 180))
    assert len(a75.boxes) == 2  # the fork's eval(...)[0] would drop the second
    # a video on both lists stays on both (leakage), in the fork's order
    assert [c.clip_id for c in merged.split("test")] == [
        "TESTAAAA_000050", "TESTAAAA_000075", "SHAREDCC_000100",
    ]  # fmt: skip
    assert [c.clip_id for c in merged.split("train")] == ["TRAINBBB_000025", "SHAREDCC_000100"]


def test_prepare_writes_times_ids_fork_json_and_leakage(tmp_path):
    root = _fixture_table(tmp_path)
    out = tmp_path / "cw"
    res = CliRunner().invoke(cli, ["chaotic-world", "prepare", "--root", str(root),
                                   "--out", str(out), "--duplicate-frames", "last"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "duplicate frames  1" in res.output and "1 frames, 1 videos on both sides" in res.output
    times = list(csv.DictReader(open(out / "times-test.csv")))
    assert [(r["clip_id"], r["video"], r["frame"], float(r["time"])) for r in times] == [
        ("TESTAAAA_000050", "TESTAAAA", "50", 2.0),
        ("TESTAAAA_000075", "TESTAAAA", "75", 3.0),
        ("SHAREDCC_000100", "SHAREDCC", "100", 4.0),
    ]
    assert (out / "test_ids.txt").read_text().split() == [r["clip_id"] for r in times]
    fork = json.loads((out / "ChaoticWorld_test.json").read_text())
    # the fork's format: one flat 320x180 pixel box per entry; `last`: the box the fork scores
    assert fork[0] == {"file": "TESTAAAA_000050", "class": "speech", "bbox": [100, 50, 200, 150]}
    assert len(fork) == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["leakage"]["frame_ids"] == ["SHAREDCC_000100"]
    assert summary["leakage"]["video_ids"] == ["SHAREDCC"]
    # merge: one entry per box; our reader unions them, normalised by 320x180
    prepare(root, tmp_path / "cw2", duplicate_frames="merge")
    anns = read_chaotic_json(tmp_path / "cw2" / "ChaoticWorld_test.json")
    assert len(anns["TESTAAAA_000050"].boxes) == 2 and len(anns["TESTAAAA_000075"].boxes) == 2
    b = anns["TESTAAAA_000075"].boxes[0]
    assert (b.xmin, b.ymin, b.xmax, b.ymax) == (0.5, 0.5, 1.0, 1.0)


def test_check_leakage_on_the_split_lists(tmp_path):
    """``check-leakage`` between train_ssl.txt and test_ssl.txt (videos), and between
    the prepared id lists (frames and videos)."""
    root = _fixture_table(tmp_path)
    res = CliRunner().invoke(cli, ["metadata", "check-leakage", "--json",
                                   "--train", str(root / "train_ssl.txt"),
                                   "--test", str(root / "test_ssl.txt")])  # fmt: skip
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["overlap_ids"] == ["SHAREDCC"] and rep["test"] == 2
    # frame level, on prepare's id lists: the shared frame, and its video
    out = tmp_path / "cw"
    prepare(root, out)
    res = CliRunner().invoke(cli, ["metadata", "check-leakage", "--json", "--dataset", "chaotic",
                                   "--train", str(out / "train_ids.txt"),
                                   "--test", str(out / "test_ids.txt")])  # fmt: skip
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert rep["overlap_ids"] == ["SHAREDCC_000100"] and rep["video_overlap_ids"] == ["SHAREDCC"]


def test_fork_json_duplicates_last_or_merge(tmp_path):
    p = tmp_path / "ChaoticWorld_test.json"
    p.write_text(json.dumps([
        {"file": "ABCDEFGH_000010", "class": "a", "bbox": [0, 0, 160, 90]},
        {"file": "ABCDEFGH_000010", "class": "b", "bbox": [160, 90, 320, 180]},
    ]))  # fmt: skip
    merged = read_chaotic_json(p)["ABCDEFGH_000010"]
    last = read_chaotic_json(p, duplicate_frames="last")["ABCDEFGH_000010"]
    assert len(merged.boxes) == 2
    assert [(b.xmin, b.ymax) for b in last.boxes] == [(0.5, 1.0)] and last.label == "b"
    out = tmp_path / "last.json"
    res = CliRunner().invoke(cli, ["chaotic-world", "json", "--in", str(p), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text()) == [
        {"file": "ABCDEFGH_000010", "class": "b", "bbox": [160, 90, 320, 180]}
    ]


# -- the fork's preprocessed layout ---------------------------------------------------
def _fork_test_files(folder: Path, ids: list[str], seed: int = 0) -> None:
    """ChaoticWorld/labeled/Data as the fork's read_frame_audio_then_save_hdf5.py writes it."""
    rng = np.random.default_rng(seed)
    n = len(ids)
    folder.mkdir(parents=True)
    with h5py.File(folder / "h5py_test_frames.h5", "w") as f:
        f["test_frames"] = rng.integers(0, 256, (n, 256, 256, 3)).astype(np.float32)
    with h5py.File(folder / "h5py_test_audios.h5", "w") as f:
        f["test_audios"] = rng.uniform(-1, 1, (n, 48000)).astype(np.float32)
    with h5py.File(folder / "h5py_test_spects.h5", "w") as f:
        f["test_spects"] = rng.uniform(-4, 2, (n, 3, 96, 64)).astype(np.float32)
    (folder / "ChaoticWorld_test.csv").write_text("".join(f"{i}\n" for i in ids))


@pytest.mark.slow
def test_eval_reads_the_forks_test_files_with_their_id_csv(tmp_path):
    from avmodels.cli import cli as models_cli
    from avmodels.engine.checkpoint import save_model
    from avmodels.engine.config import resolve_config
    from avmodels.methods import build_method

    ids = ["ADCCAWWD_004157", "ADCCAWWD_004300", "XLCJZXCK_002655"]
    data = tmp_path / "ChaoticWorld" / "labeled" / "Data"
    _fork_test_files(data, ids)
    gt = tmp_path / "ChaoticWorld_test.json"
    gt.write_text(json.dumps([{"file": i, "class": "x", "bbox": [0, 0, 160, 180]} for i in ids]))
    cfg = resolve_config("sspl", sets=["model.pretrained=false", "model.image_size=32"])
    model = save_model(tmp_path / "m.pt", build_method("sspl", cfg), cfg)
    args = ["eval", "--ckpt", str(model), "--data", str(data / "h5py_test_frames.h5"),
            "--benchmark", "chaotic", "--annotations", str(gt), "--preset", "sspl",
            "--device", "cpu", "--workers", "0"]  # fmt: skip
    res = CliRunner().invoke(models_cli, [*args, "--ids-from", str(data / "ChaoticWorld_test.csv"),
                                          "--report", str(tmp_path / "rep")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "rep" / "metrics.json").read_text())["n"] == 3
    per = list(csv.DictReader(open(tmp_path / "rep" / "per_sample.csv")))
    assert sorted(r["clip_id"] for r in per) == sorted(ids)
    # without the id file the rows are numbered "0", "1", ... and match no annotation
    res = CliRunner().invoke(models_cli, args)
    assert res.exit_code != 0 and "none of the 3 annotated clips is in the data" in str(
        res.exception
    )


# -- the whole recipe ----------------------------------------------------------------
@pytest.mark.slow
def test_chaotic_world_recipe_end_to_end(tmp_path):
    """Generated 320x180 videos + SSL_ssl_format -> prepare -> extract --times -> pack ->
    train (1 step, tiny) -> eval: scores for the test clips, window-outside clips skipped."""
    from avprep.pipeline import load_pipeline, run_pipeline
    from tests.coded_media import frame_index, make_coded_video

    videos = tmp_path / "videos"
    for vid, n in (("TRAINAAA", 150), ("TRAINBBB", 150), ("TESTCCCC", 150)):
        make_coded_video(videos / f"{vid}.mp4", frames=n, clicks=[2.0, 4.0])
    box = "[[40, 30, 200, 150]]"
    root = write_ssl_format(
        tmp_path / "SSL_ssl_format",
        {
            "TRAINAAA": [(40, 1.6, box, "a"), (90, 3.6, box, "a")],
            "TRAINBBB": [(50, 2.0, box, "b"), (100, 4.0, box, "b")],
            # frame 10 at 0.4 s: its window [-1.1, 1.9] leaves the track -> skipped (the fork)
            "TESTCCCC": [(10, 0.4, box, "c"), (60, 2.4, box, "c"), (60, 2.4, "[[0, 0, 80, 60]]", "c"),
                         (110, 4.4, box, "c")],
        },
        train=["TRAINAAA", "TRAINBBB"],
        test=["TESTCCCC"],
    )  # fmt: skip
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(
        "train: {epochs: 1, batch_size: 2, max_steps: 1, num_workers: 0}\n"
        "model: {pretrained: false, image_size: 32}\n"
        "optim: {lr_sound: 5.0e-4, lr_head: 2.0e-3}\n"
    )
    recipe = load_pipeline(PIPELINES / "chaotic-world.yaml")
    work = tmp_path / "w"
    over = {"videos": str(videos), "annotations": str(root), "method": "sspl",
            "config": str(tiny), "jobs": "1", "device": "cpu"}  # fmt: skip
    ran = run_pipeline(recipe, work, overrides=over, echo=lambda s: None)
    assert [o for _, o, _ in ran] == ["ran"] * len(recipe.stages)
    # the annotated frames, exactly
    frames = work / "extract-test" / "frames"
    from avprep.stages.frames import read_jpeg

    assert frame_index(read_jpeg(frames / "TESTCCCC_000060.jpg")) == 59
    assert not (frames / "TESTCCCC_000010.jpg").exists()
    # the SSPL-layout test files follow the fork's id csv, less the skipped clip
    h5 = work / "h5-test"
    assert (h5 / "ChaoticWorld_test.csv").read_text().split() == [
        "TESTCCCC_000060", "TESTCCCC_000110",
    ]  # fmt: skip
    with h5py.File(h5 / "h5py_test_spects.h5") as f:
        assert f["test_spects"].shape == (2, 3, 96, 64)
    metrics = json.loads((work / "report-sspl" / "metrics.json").read_text())
    assert metrics["n"] == 2
    assert 0.0 <= metrics["ciou"] <= 1.0 and 0.0 <= metrics["auc"] <= 1.0


def test_archives_in_the_registry_say_what_reads_them(tmp_path):
    from avprep import catalog
    from avprep.errors import InputError
    from avprep.recipes import load_clips

    e = catalog.get_entry("chaotic/ssl-format")
    assert e.corpus == "chaotic" and e.format == "zip-archive" and "drive.google.com" in e.urls[0]
    z = tmp_path / "SSL_ssl_format.zip"
    z.write_bytes(b"PK\x03\x04\x00\x00")
    with pytest.raises(InputError, match=r"not an id list: a zip archive; .*chaotic-world prepare"):
        load_clips(z, fmt="zip-archive")
