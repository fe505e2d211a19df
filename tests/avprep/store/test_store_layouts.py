"""The pack layouts' registry: one list of names for the driver and the CLI."""

from __future__ import annotations

import pickle

import click
import pytest

from avprep.commands.pack import pack_h5
from avprep.errors import ConfigError
from avprep.store.index import NATIVE_FORMAT, SSPL_FORMAT
from avprep.store.layouts import (
    LAYOUTS,
    NativeLayout,
    PackOptions,
    SsplLayout,
    get_layout,
    layout_names,
)


def test_cli_layout_choices_come_from_the_registry():
    (option,) = [p for p in pack_h5.params if p.name == "layout"]
    assert isinstance(option.type, click.Choice)
    assert tuple(option.type.choices) == layout_names() == ("native", "sspl")


def test_each_layout_is_registered_under_its_own_name_and_format():
    assert LAYOUTS == {"native": NativeLayout, "sspl": SsplLayout}
    assert (NativeLayout.format, SsplLayout.format) == (NATIVE_FORMAT, SSPL_FORMAT)
    assert NativeLayout.plan_key != SsplLayout.plan_key


def test_an_unknown_layout_is_a_config_error_naming_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown layout 'tfrecord'; valid: native, sspl"):
        get_layout("tfrecord")


def test_layouts_survive_pickling_for_the_writer_processes():
    for cls in LAYOUTS.values():
        lay = cls(PackOptions(split="test"))
        back = pickle.loads(pickle.dumps(lay))
        assert back.opts == lay.opts
        assert back.shard_files(0, 1) == lay.shard_files(0, 1)
    assert SsplLayout(PackOptions(split="test")).variant == "test"
    assert SsplLayout(PackOptions(split="test", test=False)).variant == "train"


# -- the read side: readers, verify and localize ask the layout, never its name -------
def test_the_layout_of_an_index_and_of_an_opened_dataset():
    from avprep.store.index import StoreIndex
    from avprep.store.layouts import AsExtracted, layout_of_dataset, layout_of_index

    def index(layout, fmt):
        return StoreIndex(layout=layout, split="x", rows=0, rows_per_shard=0, shards=[], format=fmt)

    assert layout_of_index(index("native", NATIVE_FORMAT)) is NativeLayout
    assert layout_of_index(index("sspl", SSPL_FORMAT)) is SsplLayout
    assert layout_of_index(index("sspl", NATIVE_FORMAT)) is SsplLayout  # the name first
    assert layout_of_index(index("", SSPL_FORMAT)) is SsplLayout  # else the format
    assert layout_of_index(index("tfrecord", "other")) is None
    assert layout_of_dataset({"format": NATIVE_FORMAT}) is NativeLayout
    assert layout_of_dataset({"layout": "sspl", "split": "10k"}) is SsplLayout
    assert layout_of_dataset({"format": "somebody-else"}) is AsExtracted


def test_the_modalities_of_an_opened_dataset_come_from_its_layout(tmp_path):
    from types import SimpleNamespace

    from avprep.store import open_dataset
    from avprep.store.layouts import dataset_modalities
    from tests.engine_data import write_tiny_store

    path, _ = write_tiny_store(tmp_path, 2, size=16, seconds=1)
    assert dataset_modalities(open_dataset(path)) == ("frame", "audio", "spectrogram")
    # JSON-encoded attributes (as an index keeps them) read the same
    native = SimpleNamespace(attrs={"format": NATIVE_FORMAT, "modalities": '["frame"]'})
    assert dataset_modalities(native) == ("frame",)
    assert dataset_modalities(SimpleNamespace(attrs={"format": NATIVE_FORMAT})) is None
    sspl = SimpleNamespace(attrs={"layout": "sspl", "split": "10k"})
    assert dataset_modalities(sspl) == ("frame", "audio", "spectrogram")  # SSPL's three files
    assert dataset_modalities(SimpleNamespace(attrs={"format": "other"})) is None
    assert dataset_modalities(object()) is None


def test_sample_layouts_store_extracted_values_as_their_readers_give_them(tmp_path):
    import numpy as np

    from avprep.store import sspl
    from avprep.store.layouts import AsExtracted, sample_layout

    assert sample_layout("") is AsExtracted and sample_layout("sspl") is SsplLayout
    with pytest.raises(ConfigError, match="unknown layout 'x'"):
        sample_layout("x")
    arr = np.array([0.1, 1 / 3], dtype=np.float32)
    assert NativeLayout.stored_array(arr).dtype == np.float16  # a native shard's arrays
    assert SsplLayout.stored_array(arr) is arr and AsExtracted.stored_array(arr) is arr
    audio = np.array([0.0, 0.25, -0.5], dtype=np.float32)
    np.testing.assert_array_equal(SsplLayout.stored_audio(audio), sspl.normalize_audio(audio))
    assert NativeLayout.stored_audio(audio) is audio


def test_verify_reads_what_each_layout_says():
    from avprep.store.index import ShardEntry, StoreIndex

    assert NativeLayout.content_checks == ("frames decodable", "audio decodable")
    assert SsplLayout.content_checks == ("frames 0-255",)
    assert (NativeLayout.ids_in_id_list, SsplLayout.ids_in_id_list) == (False, True)
    test_files = [ShardEntry(file="h5py_test_frames.h5", row_start=0, rows=1, bytes=0, sha256="")]
    idx = StoreIndex(layout="sspl", split="test", rows=1, rows_per_shard=1, shards=test_files)
    assert SsplLayout.verify_variant(idx) == "test"
    assert NativeLayout.verify_variant(idx) == "train"
