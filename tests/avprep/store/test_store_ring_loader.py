"""RingLoader: the same batches as torch's DataLoader (native shards and any map-style
dataset), shared-memory slots reused, clear errors from workers, recovery after an
abandoned or failed iteration, a dead worker reported."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from avprep.errors import ConfigError, StoreError
from avprep.store import RingLoader, ShardDataset
from avprep.store.pack import pack
from tests.store_fixtures import make_extract_dir

MODS = ["frame", "audio", "spectrogram"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("ring")
    ex, ids = make_extract_dir(root / "ex", 11, frame_size=(40, 48))
    pack(ex, root / "native", "train", rows_per_shard=4, jobs=1, progress=False)
    return root / "native", sorted(ids)


def _assert_batches_equal(got, want):
    assert list(got) == list(want)
    for key, w in want.items():
        g = got[key]
        if isinstance(w, torch.Tensor):
            assert g.dtype == w.dtype and torch.equal(g, w), key
        else:
            assert g == w, key


def test_same_batches_as_dataloader_over_two_epochs(store):
    path, ids = store
    ring = RingLoader(ShardDataset(path, modalities=MODS), 4, shuffle=True,
                      generator=torch.Generator().manual_seed(3), num_workers=2)  # fmt: skip
    plain = DataLoader(ShardDataset(path, modalities=MODS), batch_size=4, shuffle=True,
                       generator=torch.Generator().manual_seed(3), num_workers=2,
                       persistent_workers=True)  # fmt: skip
    with ring:
        assert len(ring) == 3
        for _ in range(2):
            seen = []
            for got, want in zip(ring, plain, strict=True):
                _assert_batches_equal(got, want)
                assert got["frame"].shape[1:] == (40, 48, 3) and got["frame"].dtype == torch.uint8
                seen += got["clip_id"]
            assert sorted(seen) == ids  # every row once, the last batch short (11 = 4+4+3)


def test_views_without_copy_and_the_slots_are_reused(store):
    path, _ = store
    ds = ShardDataset(path, modalities=MODS)
    ref = RingLoader(ShardDataset(path, modalities=MODS), 3, num_workers=0)
    ring = RingLoader(ds, 3, num_workers=2, slots_per_worker=1, copy=False)
    with ring:
        pointers = set()
        for got, want in zip(ring, ref, strict=True):
            _assert_batches_equal(got, want)
            assert got["audio"].is_shared()
            pointers.add(got["audio"].data_ptr())
        # 4 batches through 2 slots: a slot's memory is handed out again, never reallocated
        assert len(pointers) == 2


class _Toy(Dataset):
    """A plain map-style dataset: arrays, a number, a string, no read_batch/__getitems__."""

    def __init__(self, n: int, bad: int | None = None, exit_at: int | None = None,
                 late: int | None = None):  # fmt: skip
        self.n, self.bad, self.exit_at, self.late = n, bad, exit_at, late
        self.probed = False

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        if i == self.exit_at:
            os._exit(3)
        if i == self.bad:
            raise StoreError(f"row {i} is broken")
        if i == self.late and self.probed:  # a worker's copy (the main process probed it)
            time.sleep(1.0)  # so that a later batch's failure arrives first
        self.probed = True
        rng = np.random.default_rng(i)
        return {"x": rng.normal(size=(2, 3)).astype(np.float32), "y": i * 10,
                "name": f"clip{i}", "z": torch.full((5,), float(i))}  # fmt: skip


def test_any_map_style_dataset_collates_like_default_collate():
    ring = RingLoader(_Toy(10), 4, shuffle=True, generator=torch.Generator().manual_seed(1))
    plain = DataLoader(_Toy(10), batch_size=4, shuffle=True,
                       generator=torch.Generator().manual_seed(1))  # fmt: skip
    with ring:
        for got, want in zip(ring, plain, strict=True):
            _assert_batches_equal(got, want)
            assert got["name"] == [f"clip{i}" for i in (got["y"] // 10).tolist()]


class _Sampler:
    def __init__(self, batches):
        self.batches, self.batch_size = batches, 4

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


@pytest.mark.slow  # ~2-4 s: kept out of make test-fast
def test_a_worker_error_is_raised_and_the_loader_recovers():
    sampler = _Sampler([[0, 1], [5, 6], [2, 3], [7]])
    ring = RingLoader(_Toy(10, bad=5, late=0), batch_sampler=sampler, num_workers=2)
    with ring:
        got = []
        with pytest.raises(StoreError, match="row 5 is broken"):
            for b in ring:
                got.append(b["y"].tolist())
        assert got == [[0, 10]]  # in order: nothing after the failed batch is handed out
        sampler.batches = [[0, 1], [2, 3], [7], [8, 9]]
        assert [b["y"].tolist() for b in ring] == [[0, 10], [20, 30], [70], [80, 90]]


def test_an_abandoned_iteration_gives_its_slots_back(store):
    path, ids = store
    ring = RingLoader(ShardDataset(path, modalities=["audio"]), 2, num_workers=2,
                      slots_per_worker=1, copy=False)  # fmt: skip
    with ring:
        for _ in range(3):  # take one batch and walk away, three times
            first = next(iter(ring))
            assert first["clip_id"] == ids[:2]
        assert [c for b in ring for c in b["clip_id"]] == ids


def test_fixed_shapes_are_required_and_batches_must_fit():
    class Ragged(_Toy):
        def __getitem__(self, i):
            s = super().__getitem__(i)
            s["z"] = torch.zeros(5 + (i == 3))
            return s

    with RingLoader(Ragged(6), 2, num_workers=1) as ring, pytest.raises(StoreError, match="fixed"):
        list(ring)
    with pytest.raises(ConfigError, match="exceeds batch_size"):
        list(RingLoader(_Toy(6), batch_sampler=[[0, 1, 2]], batch_size=2, num_workers=1))
    with pytest.raises(ConfigError, match="batch_size"):
        RingLoader(_Toy(6))

    class Nested(_Toy):
        def __getitem__(self, i):
            return {"x": np.zeros(2), "boxes": {"a": np.zeros(4)}}

    with pytest.raises(ConfigError, match="'boxes' collates to a dict"):
        list(RingLoader(Nested(4), 2, num_workers=1))


@pytest.mark.slow  # ~2-4 s: kept out of make test-fast
def test_a_dead_worker_is_reported_not_waited_for():
    ring = RingLoader(_Toy(8, exit_at=6), 2, num_workers=2)
    with pytest.raises(RuntimeError, match="exit code 3"):
        list(ring)
    assert not ring._workers  # closed: nothing left running


def test_read_batch_writes_into_given_buffers(store):
    path, ids = store
    ds = ShardDataset(path, modalities=MODS)
    out = {"audio": torch.zeros(5, 48000), "frame": torch.zeros(5, 40, 48, 3, dtype=torch.uint8)}
    batch = ds.read_batch([3, 0, 7], out=out)
    assert batch["audio"].data_ptr() == out["audio"].data_ptr() and len(batch["audio"]) == 3
    assert torch.equal(batch["frame"], out["frame"][:3])
    assert torch.equal(batch["audio"][1], torch.from_numpy(ds[0]["audio"]))
    with pytest.raises(StoreError, match="does not fit"):
        ds.read_batch([1], out={"audio": torch.zeros(1, 100)})
    for size in (30, 50):  # a frame buffer too small, or larger than the frames
        with pytest.raises(StoreError, match="does not fit"):
            ds.read_batch([1], out={"frame": torch.zeros(1, size, size, 3, dtype=torch.uint8)})
    # frames are decoded in place: the same pixels as the per-sample decode
    assert np.array_equal(batch["frame"][2].numpy(), ds[7]["frame"])


@pytest.mark.slow
def test_spawned_workers(store):
    path, _ = store
    ref = list(RingLoader(ShardDataset(path, modalities=MODS), 6, num_workers=0))
    ring = RingLoader(ShardDataset(path, modalities=MODS), 6, num_workers=1,
                      multiprocessing_context="spawn")  # fmt: skip
    with ring:
        for got, want in zip(ring, ref, strict=True):
            _assert_batches_equal(got, want)
