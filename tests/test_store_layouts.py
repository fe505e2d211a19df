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
