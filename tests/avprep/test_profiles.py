"""Profiles: registry, originals' parameters, overrides and validation."""

from __future__ import annotations

import dataclasses
import json

import pytest

from avprep.errors import ConfigError, UnknownNameError
from avprep.profiles import PROFILES, Profile, frame_at_value, get_profile


def test_registry_has_the_profiles():
    names = PROFILES.names()
    assert names[:5] == ["sspl", "ssltie", "lvs", "htf", "mssl"]
    assert "chaotic" in names
    # the originals' per-split variants (tests/avprep/stages/test_fidelity_split_audio.py)
    assert {"ssltie-vggss-test", "ssltie-flickr", "ssltie-flickr-test", "htf-test"} <= set(names)
    assert names[-2:] == ["ezvsl", "lvs-10s"]  # the baselines' (issue 19), added last
    with pytest.raises(UnknownNameError, match="valid: sspl, ssltie, lvs, htf, mssl"):
        get_profile("slavc")


def test_originals_parameters():
    sspl = get_profile("sspl")
    assert (sspl.frame_at, sspl.image_size, sspl.resize, sspl.interpolation) == (
        "middle",
        256,
        "squash",
        "cubic",
    )
    assert (sspl.audio_seconds, sspl.sample_rate, sspl.short_audio) == (3.0, 16000, "tile-centre")
    assert sspl.spectrogram == "vggish-sspl" and sspl.flow is None
    htf = get_profile("htf")
    assert htf.sample_rate == 22050 and htf.flow == "farneback" and htf.resize == "none"
    mssl = get_profile("mssl")
    assert (mssl.audio_seconds, mssl.sample_rate, mssl.interpolation) == (5.0, 22050, "linear")
    assert get_profile("ssltie").frame_at == "4.96"  # 125.jpg of a 25 fps export
    assert get_profile("lvs").spectrogram == "lvs"


def test_profiles_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_profile("sspl").image_size = 3  # type: ignore[misc]


def test_overrides_and_params_are_json():
    p = get_profile("sspl", image_size=224, flow="dis", audio_seconds=5.0, frame_at="1.5")
    assert (p.image_size, p.flow, p.audio_seconds, p.frame_at) == (224, "dis", 5.0, "1.5")
    assert PROFILES.get("sspl").image_size == 256  # the registered one is unchanged
    params = p.params()
    assert json.loads(json.dumps(params)) == params
    # parameters added later are left out at their default (older manifests still resume);
    # test_variant only names the profile of test splits: nothing extracted depends on it
    late = {"description", "window_outside", "source_scale", "test_variant"}
    assert set(params) == {f.name for f in dataclasses.fields(Profile)} - late
    assert get_profile("chaotic").params()["window_outside"] == "skip"
    q = get_profile("htf", flow="none", spectrogram="none", sample_rate="native")
    assert q.flow is None and q.spectrogram is None and q.sample_rate is None
    assert get_profile("sspl", image_size=None) == get_profile("sspl")  # None = not given


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"resize": "crop"}, "unknown resize"),
        ({"frame_at": "end"}, "frame_at must be"),
        ({"frame_at": "-1"}, "finite time"),
        ({"flow": "raft"}, "unknown flow"),
        ({"audio_seconds": 0}, "audio_seconds"),
        ({"jpeg_quality": 101}, "jpeg_quality"),
        ({"sample_rate": 22050}, "needs sample_rate 16000"),  # sspl's VGGish is 16 kHz only
        ({"spectrogram": "mfcc"}, "unknown spectrogram"),
        ({"flow_legacy_htf": True}, "needs a flow method"),
        ({"colour": "red"}, "unknown profile parameter"),
        ({"seek": "nearest"}, "unknown seek"),
        ({"frame_at": "fps:1", "flow": "dis"}, "single key frame"),
    ],
)
def test_bad_overrides_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        get_profile("sspl", **overrides)


def test_frame_at_parsing():
    assert frame_at_value("middle") == ("middle", None)
    assert frame_at_value("4.96") == ("seconds", 4.96)
    assert frame_at_value("fps:1") == ("fps", 1.0)
    with pytest.raises(ConfigError):
        frame_at_value("fps:0")
