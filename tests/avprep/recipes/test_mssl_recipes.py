"""Multi-Source's datasets: AVE annotation files, AudioSet-instrument tag pickles (through the
restricted unpickler), their registry entries."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from avmodels import weights
from avprep import catalog
from avprep.errors import InputError
from avprep.recipes import load_clips
from avprep.recipes.audioset_instrument import INSTRUMENTS, instrument_clips, read_video_ids
from avprep.safepickle import UnsafePickleError

AVE_TEXT = (
    "Category&VideoID&Quality&StartTime&EndTime\n"
    "Church bell&RUhOCu3LNXM&good&0&10\n"
    "Church bell&VWi2ENBuTbw&good&0&0\n"  # a 0-0 window, as in the published file
    "Dog barking&abcdefghijk&good&3&7\n"
    "Dog barking&abcdefghijk&good&3&7\n"  # listed twice, as 46 videos are
)


def test_ave_annotations_become_whole_clips(tmp_path):
    path = tmp_path / "Annotations.txt"
    path.write_text(AVE_TEXT)
    df = load_clips(path, fmt="ave-annotations")
    assert df["clip_id"].tolist() == ["RUhOCu3LNXM", "VWi2ENBuTbw", "abcdefghijk"]
    assert df.attrs["duplicates"] == 1
    row = df.iloc[2]
    assert (row.start, row.end, row.label, row.source) == (0.0, 10.0, "Dog barking", "other")
    assert row.url is None
    bad = tmp_path / "bad.txt"
    bad.write_text("Dog&x1&good&8&12\nDog&x2&good\n")
    with pytest.raises(InputError, match="2 malformed") as info:
        load_clips(bad, fmt="ave-annotations")
    assert "outside the 10 s clip" in str(info.value) and "line 2" in str(info.value)


def _tags_pickle(path, protocol=3):
    rng = np.random.default_rng(0)
    table = {}
    for i in range(6):
        t = np.zeros(15)
        t[rng.choice(15, size=i % 3, replace=False)] = 1.0
        table[f"yt{i:02d}_abcde"] = t
    path.write_bytes(pickle.dumps(table, protocol=protocol))
    return table


def test_tag_pickles_through_the_restricted_unpickler(tmp_path):
    path = tmp_path / "val_audio.pkl"
    table = _tags_pickle(path)
    df = load_clips(path)  # .pkl: detected, never decoded as text
    assert df.attrs["format"] == "mssl-tags-pkl"
    assert df["clip_id"].tolist() == sorted(table)
    for _, row in df.iterrows():
        want = "|".join(INSTRUMENTS[i] for i in np.flatnonzero(table[row.clip_id]))
        assert (row.label if isinstance(row.label, str) else "") == want
        assert row.url == "https://www.youtube.com/watch?v=" + row.clip_id and math.isnan(row.start)
    assert df["label"].notna().sum() == 4  # two of the six videos have no instrument
    assert read_video_ids(path) == list(table)
    segments = tmp_path / "eval_segments.csv"
    segments.write_text(
        '# YTID, start_seconds, end_seconds, positive_labels\nyt01_abcde, 30.000, 40.000, "/m/x"\n'
    )
    joined = instrument_clips(path, segments=segments).set_index("clip_id")
    assert (joined.loc["yt01_abcde", "start"], joined.loc["yt01_abcde", "end"]) == (30.0, 40.0)
    assert math.isnan(joined.loc["yt02_abcde", "start"])  # unknown stays unknown


class _Hostile:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.target}",))


def test_hostile_tag_pickle_is_refused_unexecuted(tmp_path):
    sentinel = tmp_path / "pwned"
    path = tmp_path / "train_audio.pkl"
    path.write_bytes(pickle.dumps({"x": _Hostile(sentinel)}, protocol=3))
    with pytest.raises(UnsafePickleError, match="posix.system: refused"):
        load_clips(path)
    assert not sentinel.exists()
    path.write_bytes(pickle.dumps({"x": np.array([0.5] * 15)}, protocol=3))
    with pytest.raises(InputError, match="15 zeros and ones"):
        load_clips(path)


def test_registry_entries():
    raw = "https://raw.githubusercontent.com/shvdiwnkozbw/Multi-Source-Sound-Localization/master/"
    val = catalog.get_entry("mssl/audioset-instrument-val")
    assert (
        val.format == "mssl-tags-pkl"
        and val.clips == 1099
        and val.urls == (raw + "utils/val_audio.pkl",)
    )
    train = catalog.get_entry("mssl/audioset-instrument-train")
    assert train.sha256 is None and "absent" in train.notes
    ave = catalog.get_entry("ave/annotations")
    assert ave.format == "ave-annotations" and ave.bytes == 144287
    gtest = catalog.get_entry("mssl/flickr-test-250")
    assert gtest.name == "attention/test-list" and raw + "utils/gtest.txt" in gtest.urls
    for name, file in (("mssl-normav", "normav.json"), ("mssl-gtdata", "gtdata.pkl")):
        spec = weights.WEIGHTS.get(name)
        assert spec.url == raw + "utils/" + file and len(spec.sha256) == 64
