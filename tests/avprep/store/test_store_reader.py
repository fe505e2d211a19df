"""The PyTorch readers: sample dicts, access by row and id, 2-worker DataLoaders
(fork and spawn), batch reads equal to per-sample reads, reduced JPEG decode, PCM and
FLAC audio, SSPL's layout, open_dataset."""

from __future__ import annotations

import pickle
import shutil

import cv2
import h5py
import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from avprep.errors import ConfigError, StoreError
from avprep.store import (
    ShardBatchDataset,
    ShardDataset,
    SSPLDataset,
    batch_loader,
    collate,
    decode_jpeg_batch,
    open_dataset,
)
from avprep.store import sspl as sspl_layout
from avprep.store.pack import pack
from tests.store_fixtures import make_extract_dir


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("reader")
    ex, ids = make_extract_dir(root / "ex", 11, frame_size=(40, 48), flow=True)
    pack(ex, root / "native", "train", rows_per_shard=4, jobs=1, progress=False)
    pack(ex, root / "sspl", "10k", layout="sspl", rows_per_shard=4, jobs=1, progress=False)
    pack(ex, root / "pcm", "train", rows_per_shard=5, audio="pcm", frames="raw", jobs=1,
         progress=False)  # fmt: skip
    return root, ex, sorted(ids)


def test_native_sample_dict(packed):
    root, ex, ids = packed
    ds = ShardDataset(root / "native")
    assert len(ds) == 11 and ds.ids == ids and len(ds.files) == 3
    assert ds.attrs["profile"] == "sspl" and ds.attrs["profile_params"]["sample_rate"] == 16000
    assert ds.attrs["modalities"] == ["frame", "audio", "spectrogram", "flow"]
    s = ds[6]
    assert set(s) == {"clip_id", "index", "frame", "audio", "sample_rate", "spectrogram",
                      "flow", "frame_time"}  # fmt: skip
    cid = ids[6]
    assert s["clip_id"] == cid and s["index"] == 6 and s["sample_rate"] == 16000
    want = cv2.cvtColor(cv2.imread(str(ex / "frames" / f"{cid}.jpg")), cv2.COLOR_BGR2RGB)
    assert s["frame"].dtype == np.uint8 and np.array_equal(s["frame"], want)
    pcm, _ = sf.read(ex / "audio" / f"{cid}.wav", dtype="int16")
    assert s["audio"].dtype == np.float32 and np.array_equal(s["audio"], pcm / np.float32(32768))
    assert np.abs(s["audio"]).max() <= 1.0
    spec = np.load(ex / "spectrograms" / "vggish" / f"{cid}.npy")
    assert s["spectrogram"].dtype == np.float32 and s["spectrogram"].shape == (3, 96, 64)
    np.testing.assert_allclose(s["spectrogram"], spec, rtol=1e-3, atol=1e-3)  # float16 storage
    assert s["flow"].dtype == np.float32 and s["flow"].shape == (2, 40, 48)
    assert s["frame_time"] == pytest.approx(1.5 + 0.01 * int(cid[4:]))


def test_access_by_id_negative_index_and_errors(packed):
    root, _, ids = packed
    ds = ShardDataset(root / "native")
    assert ds.row_of(ids[9]) == 9 and ds[ds.row_of(ids[9])]["clip_id"] == ids[9]
    assert ds[-1]["clip_id"] == ids[-1]
    with pytest.raises(IndexError):
        ds[11]
    with pytest.raises(KeyError, match="not in"):
        ds.row_of("nope")
    with pytest.raises(ConfigError, match="not stored"):
        ShardDataset(root / "native", modalities=["depth"])
    with pytest.raises(StoreError):
        ShardDataset(root / "missing")


def test_modalities_subset_and_undecoded_jpeg(packed):
    root, ex, ids = packed
    ds = ShardDataset(root / "native", modalities=["frame"], decode_jpeg=False)
    s = ds[2]
    assert set(s) == {"clip_id", "index", "frame", "sample_rate", "frame_time"}
    assert s["frame"].dtype == np.uint8 and s["frame"].ndim == 1
    assert s["frame"].tobytes() == (ex / "frames" / f"{ids[2]}.jpg").read_bytes()


def test_single_shard_file(packed):
    root, _, ids = packed
    ds = ShardDataset(root / "native" / "train-00001-of-00003.h5")
    assert ds.ids == ids[4:8] and ds[0]["clip_id"] == ids[4]


def test_pickles_without_open_handles(packed):
    root, _, _ = packed
    ds = ShardDataset(root / "native")
    first = ds[0]["audio"]
    clone = pickle.loads(pickle.dumps(ds))  # what spawn workers receive
    assert np.array_equal(clone[0]["audio"], first)
    ds.close()
    assert np.array_equal(ds[0]["audio"], first)  # reopens on demand


def test_two_worker_dataloader(packed):
    """Fork workers after the parent has read (and so opened) the shards; spawn workers
    get a pickled copy, which test_pickles_without_open_handles covers."""
    root, _, ids = packed
    ds = ShardDataset(root / "native")
    ref = {
        i: ds[i] for i in range(len(ds))
    }  # parent opens files first: workers must not reuse them
    loader = DataLoader(ds, batch_size=3, shuffle=True, num_workers=2,
                        multiprocessing_context="fork", generator=torch.Generator().manual_seed(0))  # fmt: skip
    seen = []
    for batch in loader:
        assert batch["frame"].dtype == torch.uint8 and batch["frame"].shape[1:] == (40, 48, 3)
        assert batch["audio"].dtype == torch.float32
        for j, cid in enumerate(batch["clip_id"]):
            i = int(batch["index"][j])
            assert cid == ids[i]
            assert torch.equal(batch["audio"][j], torch.from_numpy(ref[i]["audio"]))
            assert torch.equal(batch["frame"][j], torch.from_numpy(ref[i]["frame"]))
            seen.append(cid)
    assert sorted(seen) == ids


def test_sspl_dataset_matches_the_files(packed):
    root, ex, ids = packed
    ds = SSPLDataset(root / "sspl", "10k")
    assert len(ds) == 11 and ds.ids == ids and ds.rows_per_shard == 4
    s = ds[5]  # shard 2, row 1
    assert set(s) == {"clip_id", "index", "frame", "audio", "sample_rate", "spectrogram",
                      "frame_time"}  # fmt: skip
    assert s["clip_id"] == ids[5] and s["sample_rate"] == 16000 and np.isnan(s["frame_time"])
    assert s["frame"].dtype == np.uint8 and s["frame"].shape == (256, 256, 3)
    assert np.array_equal(s["frame"], sspl_layout.sspl_frame(ex / "frames" / f"{ids[5]}.jpg"))
    assert np.array_equal(s["audio"], sspl_layout.sspl_audio(ex / "audio" / f"{ids[5]}.wav"))
    assert s["spectrogram"].shape == (3, 96, 64) and s["spectrogram"].dtype == np.float32
    assert ds.row_of(ids[10]) == 10
    loader = DataLoader(ds, batch_size=4, num_workers=2)
    assert sum(len(b["clip_id"]) for b in loader) == 11


def test_open_dataset_picks_the_reader(packed):
    root, _, ids = packed
    assert isinstance(open_dataset(root / "native"), ShardDataset)
    assert isinstance(open_dataset(root / "native" / "train-00000-of-00003.h5"), ShardDataset)
    ds = open_dataset(root / "sspl")
    assert isinstance(ds, SSPLDataset) and ds.split == "10k" and ds.ids == ids
    f = open_dataset(root / "sspl" / "h5py_train_audios_10k_2.h5")
    assert isinstance(f, SSPLDataset) and len(f) == 11
    with pytest.raises(StoreError, match="layout: use SSPLDataset"):
        ShardDataset(root / "sspl")


def test_undecoded_batches_collate_and_decode_like_the_worker(packed):
    root, _, _ = packed
    raw = ShardDataset(root / "native", modalities=["frame"], decode_jpeg=False)
    loader = DataLoader(raw, batch_size=4, num_workers=0, collate_fn=collate)
    batch = next(iter(loader))
    assert isinstance(batch["frame"], list) and batch["frame"][0].dtype == torch.uint8
    imgs = decode_jpeg_batch(batch["frame"])
    assert imgs.shape == (4, 40, 48, 3) and imgs.dtype == torch.uint8
    decoded = ShardDataset(root / "native", modalities=["frame"])
    for j in range(4):
        assert np.array_equal(imgs[j].numpy(), decoded[int(batch["index"][j])]["frame"])


# Batches: unsorted, duplicated, negative and cross-shard indices, adjacent runs (4, 5, 6).
BATCH = [6, 2, 5, 4, 10, 2, -1, 0, 9, 8]


def _assert_same_sample(got, want):
    assert list(got) == list(want)
    for key, w in want.items():
        g = got[key]
        if isinstance(w, np.ndarray):
            assert isinstance(g, np.ndarray) and g.dtype == w.dtype and g.shape == w.shape, key
            assert np.array_equal(g, w, equal_nan=w.dtype.kind == "f"), key
        elif isinstance(w, float) and np.isnan(w):
            assert np.isnan(g)
        else:
            assert g == w and type(g) is type(w), key


@pytest.mark.parametrize(
    "store, kw",
    [
        ("native", {}),
        ("native", {"decode_jpeg": False, "modalities": ["frame", "audio"]}),
        ("native", {"jpeg_reduce": 2, "modalities": ["frame", "spectrogram"]}),
        ("pcm", {}),
    ],
)
def test_getitems_returns_exactly_the_per_sample_reads(packed, store, kw):
    root, _, _ = packed
    ds = ShardDataset(root / store, **kw)
    batch = ds.__getitems__(BATCH)
    assert len(batch) == len(BATCH)
    fresh = ShardDataset(root / store, **kw)  # per-sample reads from a dataset of its own
    for got, i in zip(batch, BATCH):
        _assert_same_sample(got, fresh[i])
    with pytest.raises(IndexError):
        ds.__getitems__([0, 11])


@pytest.mark.parametrize("store, kw", [("native", {}), ("native", {"decode_jpeg": False}),
                                       ("pcm", {"modalities": ["frame", "audio"]})])  # fmt: skip
def test_read_batch_is_the_collated_per_sample_reads(packed, store, kw):
    root, _, _ = packed
    ds = ShardDataset(root / store, **kw)
    got = ds.read_batch(BATCH)
    want = collate([ds[i] for i in BATCH])
    assert list(got) == list(want)
    for key, w in want.items():
        g = got[key]
        if isinstance(w, torch.Tensor):
            assert g.dtype == w.dtype and g.shape == w.shape, key
            assert torch.equal(g, w) or torch.equal(g.isnan(), w.isnan()), key
        elif key == "frame":  # JPEG bytes: a list of 1-D uint8 tensors
            assert [x.tolist() for x in g] == [x.tolist() for x in w]
        else:
            assert g == w, key


def test_batch_loader_two_workers_matches_the_plain_loader(packed):
    root, _, ids = packed
    ds = ShardDataset(root / "native", modalities=["frame", "audio", "spectrogram"])
    ref = {i: ds[i] for i in range(len(ds))}  # the parent opens the files before forking
    loader = batch_loader(ds, 4, shuffle=True, generator=torch.Generator().manual_seed(3),
                          num_workers=2, multiprocessing_context="fork")  # fmt: skip
    plain = DataLoader(ds, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(3))
    seen = []
    for got, want in zip(loader, plain, strict=True):
        assert got["clip_id"] == want["clip_id"]
        assert torch.equal(got["index"], want["index"])
        for key in ("frame", "audio", "spectrogram"):
            assert got[key].dtype == want[key].dtype and torch.equal(got[key], want[key]), key
        for j, i in enumerate(got["index"].tolist()):
            assert torch.equal(got["audio"][j], torch.from_numpy(ref[i]["audio"]))
        seen += got["clip_id"]
    assert sorted(seen) == ids
    bds = ShardBatchDataset(root / "native", modalities=["audio"])
    assert len(bds) == 11 and bds[[3, 1]]["clip_id"] == [ids[3], ids[1]]
    with pytest.raises(ConfigError, match="with a path"):
        ShardBatchDataset(ds, modalities=["audio"])


def test_reduced_jpeg_decode(packed):
    root, ex, ids = packed
    ds = ShardDataset(root / "native", modalities=["frame"], jpeg_reduce=2)
    frame = ds[3]["frame"]
    assert frame.shape == (20, 24, 3) and frame.dtype == np.uint8
    bgr = cv2.imdecode(np.fromfile(ex / "frames" / f"{ids[3]}.jpg", np.uint8),
                       cv2.IMREAD_REDUCED_COLOR_2)  # fmt: skip
    assert np.array_equal(frame, bgr[..., ::-1])
    assert ShardDataset(root / "native", jpeg_reduce=8)[0]["frame"].shape == (5, 6, 3)
    with pytest.raises(ConfigError, match="1, 2, 4 or 8"):
        ShardDataset(root / "native", jpeg_reduce=3)
    with pytest.raises(ConfigError, match="raw frames"):
        ShardDataset(root / "pcm", jpeg_reduce=2)


def test_pcm_store_and_format_versions(packed, tmp_path):
    root, ex, ids = packed
    ds = ShardDataset(root / "pcm")
    assert ds.attrs["audio_encoding"] == "pcm" and ds.attrs["frames"] == "raw"
    pcm, _ = sf.read(ex / "audio" / f"{ids[7]}.wav", dtype="int16")
    assert np.array_equal(ds[7]["audio"], pcm / np.float32(32768))
    assert np.array_equal(ds[7]["audio"], ShardDataset(root / "native")[7]["audio"])
    # a version-1 shard (int16 audio, no audio_encoding) reads as before; a newer one is refused
    shard = tmp_path / "train-00001-of-00003.h5"
    shutil.copyfile(root / "pcm" / "train-00001-of-00003.h5", shard)
    with h5py.File(shard, "r+") as f:
        f.attrs["format_version"] = 1
        del f.attrs["audio_encoding"], f.attrs["audio_length"]
    assert np.array_equal(ShardDataset(shard)[2]["audio"], pcm / np.float32(32768))
    with h5py.File(shard, "r+") as f:
        f.attrs["format_version"] = 3
    with pytest.raises(StoreError, match="format version 3.*upgrade avprep"):
        ShardDataset(shard)


def test_undecodable_audio_names_the_clip(packed, tmp_path):
    root, _, ids = packed
    shutil.copytree(root / "native", tmp_path / "n")
    with h5py.File(tmp_path / "n" / "train-00000-of-00003.h5", "r+") as f:
        off = f["audio_offset"][:]
        f["audio_flac"][off[1] : off[2]] = 0
    ds = ShardDataset(tmp_path / "n", modalities=["audio"])
    with pytest.raises(StoreError, match=f"audio of clip {ids[1]} in train-00000-of-00003.h5"):
        ds[1]
    with pytest.raises(StoreError, match=f"audio of clip {ids[1]}"):
        ds.__getitems__([0, 1])
