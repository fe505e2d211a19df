"""SSPL's 144k layout is read by SSPL's own indexing rule, whatever the number of clips.

SSPL's loader (restated, not its code): with ``--num_train`` N it reads
sample ``index`` (0 <= index < N) from file ``h5py_train_<kind>_144k_<s>.h5``
with ``s = index // 14400 + 1`` at row ``index % 14400``.
"""

from __future__ import annotations

import re

import cv2
import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from avprep.cli import cli
from avprep.errors import ConfigError
from avprep.store.shard_plan import shard_bounds
from tests.store_fixtures import make_extract_dir

SHARD_ROWS = 14400  # SSPL's videodataset.py


def sspl_loader_location(index: int) -> tuple[int, int]:
    """(file number from 1, row in it) of sample ``index``, as SSPL's loader picks them."""
    return index // SHARD_ROWS + 1, index % SHARD_ROWS


@pytest.fixture(scope="module")
def extracted25(tmp_path_factory):
    root = tmp_path_factory.mktemp("ex25")
    return make_extract_dir(root / "ex", 25, frame_size=(48, 64))


def test_sspl_loader_reads_every_row_of_a_25_clip_144k_pack(extracted25, tmp_path):
    ex, ids = extracted25
    out = tmp_path / "144k_unlabeled"
    res = CliRunner().invoke(
        cli,
        [
            "pack-h5",
            "--in",
            str(ex),
            "--out",
            str(out),
            "--split",
            "144k",
            "--shards",
            "10",
            "--layout",
            "sspl",
            "--jobs",
            "1",
        ],  # fmt: skip
    )
    assert res.exit_code == 0, res.output
    num_train = int(re.search(r"set --num_train (\d+)", res.output).group(1))
    assert num_train == 25
    for index in range(num_train):
        shard, row = sspl_loader_location(index)
        with h5py.File(out / f"h5py_train_frames_144k_{shard}.h5", "r") as f:
            got = f["train_frames"][row]
        bgr = cv2.imread(str(ex / "frames" / f"{ids[index]}.jpg"))
        want = cv2.cvtColor(
            cv2.resize(bgr, (256, 256), interpolation=cv2.INTER_CUBIC), cv2.COLOR_BGR2RGB
        )
        assert np.array_equal(got, want.astype(np.float32)), index
    for kind in ("frames", "audios", "spects"):
        with h5py.File(out / f"h5py_train_{kind}_144k_1.h5", "r") as f:
            assert f[f"train_{kind}"].shape[0] == 25


def test_sspl_plan_for_14401_rows_fits_the_loader_rule():
    """14,401 clips: shard 1 holds 14,400 rows, shard 2 one; every index lands on its row.

    (The plan, not the files: 14,401 SSPL rows are 11 GB of float32 frames.)"""
    n = 14401
    bounds = shard_bounds(n, shards=10, rows_per_shard=None, layout="sspl", variant="train")
    assert bounds == [(0, 14400), (14400, 1)]
    for index in range(n):
        shard, row = sspl_loader_location(index)
        start, rows = bounds[shard - 1]
        assert row < rows and start + row == index
    # the 144,000 clips of the paper: exactly SSPL's 10 files
    full = shard_bounds(144000, shards=10, rows_per_shard=None, layout="sspl", variant="train")
    assert full == [(k * 14400, 14400) for k in range(10)]


def test_sspl_warns_on_another_shard_size_and_refuses_a_sharded_test_split(caplog):
    with caplog.at_level("WARNING"):
        got = shard_bounds(7000, shards=None, rows_per_shard=3000, layout="sspl", variant="train")
    assert got == [(0, 3000), (3000, 3000), (6000, 1000)]
    assert "cannot read these files" in caplog.text
    with pytest.raises(ConfigError, match="test loader"):
        shard_bounds(30, shards=2, rows_per_shard=None, layout="sspl", variant="test")


def test_native_shards_10_gives_10_shards(extracted25, tmp_path):
    ex, ids = extracted25
    out = tmp_path / "native"
    res = CliRunner().invoke(
        cli,
        [
            "pack-h5",
            "--in",
            str(ex),
            "--out",
            str(out),
            "--split",
            "144k",
            "--shards",
            "10",
            "--jobs",
            "1",
        ],  # fmt: skip
    )
    assert res.exit_code == 0, res.output
    shards = sorted(out.glob("144k-*.h5"))
    assert len(shards) == 10
    rows = []
    for p in shards:
        with h5py.File(p, "r") as f:
            rows.append([x.decode() if isinstance(x, bytes) else x for x in f["clip_id"][:]])
    assert [len(r) for r in rows] == [3] * 5 + [2] * 5
    assert [cid for r in rows for cid in r] == ids
    with pytest.raises(ConfigError, match="at least 30 rows"):
        shard_bounds(25, shards=30, rows_per_shard=None, layout="native", variant="train")
