"""Named preprocessing bundles: which frame, which audio window, which spectrogram.

A :class:`Profile` is a frozen dataclass; :data:`PROFILES` holds one per seed
system and each reproduces that system's preprocessing (see
``docs/extraction.md`` for the table and REFERENCE.md §2 for the facts).
Every parameter can be overridden::

    from avprep.profiles import get_profile
    p = get_profile("sspl", image_size=224, flow="dis")

``frame_at``: ``middle`` (the frame shown at half the duration), a time in
seconds (``4.96``), or ``fps:N`` (every 1/N s, plus the middle key frame).
``seek``: ``exact`` (the frame at that time: decode from the previous
keyframe) or ``keyframe`` (take the keyframe at or before that time: much
cheaper on sparse-keyframe videos, but a different frame; never a default).
``audio_window``: ``centre`` of the track, ``at-frame`` (centred on the key
frame), ``start``, or ``centre-floor`` (Hear-The-Flow's test rule: centred
on floor(seconds) / 2, see :mod:`avprep.stages.audio_window`).
``test_variant``: the profile a test split is extracted with
(``avprep extract --split test``), when the paper prepared its test data
otherwise than its training data (SSL-TIE, Hear-The-Flow). ``short_audio``: what a track shorter than the window
becomes: ``tile-centre`` (SSPL: tile, then take the centre), ``tile-start``
(EZ-VSL/HTF: tile, then take the start) or ``pad`` (zeros at the end).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from avprep.errors import ConfigError
from avprep.registry import Registry

FRAME_AT_NAMED = ("middle",)
RESIZES = ("squash", "short-side", "none")
INTERPOLATIONS = ("cubic", "linear", "area")
AUDIO_WINDOWS = ("centre", "at-frame", "start", "centre-floor")
SHORT_AUDIO = ("tile-centre", "tile-start", "pad")
FLOWS = ("farneback", "dis")
SEEKS = ("exact", "keyframe")
SPLITS = ("train", "test")
# what an audio window that leaves the track becomes (``--times``; see avprep.stages.times)
WINDOW_OUTSIDE = ("shift", "skip", "pad")
# parameters added after manifests were first written: omitted from ``params()`` at their
# default, so folders extracted before they existed still resume
_LATE_DEFAULTS = {"window_outside": "shift", "source_scale": None}

_FPS = re.compile(r"^fps:(\d+(?:\.\d+)?)$")


@dataclasses.dataclass(frozen=True)
class Profile:
    """Every parameter of one extraction (all of them land in the manifest header)."""

    name: str
    frame_at: str = "middle"
    seek: str = "exact"
    image_size: int | None = 256
    resize: str = "squash"
    interpolation: str = "cubic"
    jpeg_quality: int = 95
    audio_seconds: float = 3.0
    audio_window: str = "centre"
    sample_rate: int | None = 16000
    short_audio: str = "tile-centre"
    spectrogram: str | None = "vggish"
    flow: str | None = None
    flow_legacy_htf: bool = False
    description: str = ""
    test_variant: str | None = None  # the registered profile for test splits (None: this one)
    # ``shift`` (into the track), ``skip`` (fail the clip) or ``pad`` (silence)
    window_outside: str = "shift"
    # "WxH": ffmpeg scales every decoded frame to this size first (the Chaotic World fork
    # exports 320x180 PNGs with ``-vf scale=320:180`` before its own resize); None: native
    source_scale: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    # -- validation ---------------------------------------------------------
    def validate(self) -> None:
        kind, _ = frame_at_value(self.frame_at)  # raises on nonsense
        _choice("seek", self.seek, SEEKS)
        if kind == "fps" and self.flow is not None:
            raise ConfigError("frame_at fps:N stores sampled frames; flow needs a single key frame")
        _choice("resize", self.resize, RESIZES)
        _choice("interpolation", self.interpolation, INTERPOLATIONS)
        _choice("audio_window", self.audio_window, AUDIO_WINDOWS)
        _choice("short_audio", self.short_audio, SHORT_AUDIO)
        if self.flow is not None:
            _choice("flow", self.flow, FLOWS)
        _choice("window_outside", self.window_outside, WINDOW_OUTSIDE)
        if self.source_scale is not None:
            source_scale_value(self.source_scale)
        if self.flow_legacy_htf and self.flow is None:
            raise ConfigError("flow_legacy_htf needs a flow method (e.g. --flow farneback)")
        if self.resize != "none" and (self.image_size is None or self.image_size < 8):
            raise ConfigError(f"image_size must be an integer >= 8 with resize {self.resize!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"jpeg_quality must be 1..100, got {self.jpeg_quality}")
        if not self.audio_seconds > 0:
            raise ConfigError(f"audio_seconds must be > 0, got {self.audio_seconds}")
        if self.sample_rate is not None and not 1000 <= self.sample_rate <= 384000:
            raise ConfigError(f"sample_rate must be 1000..384000 Hz, got {self.sample_rate}")
        if self.spectrogram is not None:
            from avprep.spectrogram import SPECTROGRAMS

            spec = SPECTROGRAMS.get(self.spectrogram)
            if spec.sample_rate is not None and self.sample_rate != spec.sample_rate:
                raise ConfigError(
                    f"spectrogram {self.spectrogram!r} needs sample_rate {spec.sample_rate}, "
                    f"profile has {self.sample_rate}"
                )

    # -- use ----------------------------------------------------------------
    def with_overrides(self, **overrides: Any) -> Profile:
        """A copy with some parameters changed (``None`` values are ignored)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(
                f"unknown profile parameter(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}"
            )
        changes = {k: v for k, v in overrides.items() if v is not None}
        for key in ("spectrogram", "flow"):
            if changes.get(key) == "none":
                changes[key] = None
        if changes.get("sample_rate") == "native":
            changes["sample_rate"] = None
        return dataclasses.replace(self, **changes) if changes else self

    def params(self) -> dict[str, Any]:
        """All parameters as a JSON-ready dict (the manifest header's ``profile_params``)."""
        d = dataclasses.asdict(self)
        d.pop("description")
        d.pop("test_variant")  # names the test split's profile; changes nothing extracted here
        for key, default in _LATE_DEFAULTS.items():
            if d.get(key) == default:
                d.pop(key)
        return d

    @property
    def audio_samples(self) -> int | None:
        """Samples in the audio window (None with the native rate: known per clip)."""
        if self.sample_rate is None:
            return None
        return int(round(self.audio_seconds * self.sample_rate))


def _choice(what: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")


def source_scale_value(value: str) -> tuple[int, int]:
    """``"320x180"`` -> ``(320, 180)`` (even sizes >= 2; ffmpeg's scale filter takes them)."""
    m = re.fullmatch(r"(\d{1,5})x(\d{1,5})", str(value).strip())
    if not m or int(m.group(1)) < 2 or int(m.group(2)) < 2:
        raise ConfigError(f"source_scale must be WIDTHxHEIGHT (e.g. 320x180), got {value!r}")
    return int(m.group(1)), int(m.group(2))


def frame_at_value(frame_at: str) -> tuple[str, float | None]:
    """Parse ``frame_at``: ``("middle", None)``, ``("seconds", t)`` or ``("fps", n)``."""
    s = str(frame_at).strip()
    if s in FRAME_AT_NAMED:
        return s, None
    m = _FPS.match(s)
    if m:
        n = float(m.group(1))
        if n <= 0:
            raise ConfigError(f"frame_at fps must be > 0, got {s!r}")
        return "fps", n
    try:
        t = float(s)
    except ValueError:
        raise ConfigError(
            f"frame_at must be 'middle', a time in seconds or 'fps:N', got {frame_at!r}"
        ) from None
    if not t >= 0 or t != t or t == float("inf"):
        raise ConfigError(f"frame_at seconds must be a finite time >= 0, got {frame_at!r}")
    return "seconds", t


PROFILES: Registry[Profile] = Registry("profile")

PROFILES.add(
    "sspl",
    Profile(
        name="sspl",
        frame_at="middle",
        image_size=256,
        resize="squash",
        interpolation="cubic",
        audio_seconds=3.0,
        audio_window="centre",
        sample_rate=16000,
        short_audio="tile-centre",
        spectrogram="vggish-sspl",
        description="SSPL: middle frame 256x256 (cv2 cubic), centre 3 s at 16 kHz, "
        "VGGish log-mel of the min-max normalised clip (3, 96, 64)",
    ),
)
PROFILES.add(
    "ssltie",
    Profile(
        name="ssltie",
        # frame 125.jpg of ffmpeg's fps=25 export (numbered from 1): t = 124 / 25
        frame_at="4.96",
        image_size=299,
        resize="squash",
        interpolation="cubic",
        audio_seconds=3.0,
        audio_window="centre",
        sample_rate=16000,
        short_audio="tile-start",
        spectrogram="ssltie",
        description="SSL-TIE: frame 125 at 25 fps (4.96 s), 299x299 as its converter, "
        "3 s at 16 kHz, mel 257 + dB over the clip tiled to 10 s (1, 257, 670)",
        test_variant="ssltie-vggss-test",
    ),
)
PROFILES.add(
    "lvs",
    Profile(
        name="lvs",
        frame_at="middle",
        image_size=224,
        resize="squash",
        interpolation="cubic",
        audio_seconds=3.0,
        audio_window="centre",
        sample_rate=16000,
        short_audio="tile-start",
        spectrogram="lvs",
        description="LVS / EZ-VSL: middle frame 224x224, centre 3 s at 16 kHz, "
        "scipy STFT (nperseg 512, noverlap 274), log, /12 (257, 200)",
    ),
)
PROFILES.add(
    "htf",
    Profile(
        name="htf",
        frame_at="middle",
        image_size=None,
        resize="none",
        interpolation="cubic",
        audio_seconds=3.0,
        audio_window="centre",
        sample_rate=22050,
        short_audio="tile-start",
        spectrogram="htf",
        flow="farneback",
        description="Hear-The-Flow: middle frame and the next at native size, centre 3 s "
        "at 22,050 Hz, scipy STFT (257, 276), Farneback flow (signed float16)",
        test_variant="htf-test",
    ),
)
PROFILES.add(
    "mssl",
    Profile(
        name="mssl",
        frame_at="middle",
        image_size=256,
        resize="squash",
        interpolation="linear",
        audio_seconds=5.0,
        audio_window="centre",
        sample_rate=22050,
        short_audio="tile-start",
        spectrogram="mssl",
        description="Multi-Source: middle frame 256x256 (cv2 linear), centre 5 s at "
        "22,050 Hz, log-mel 64 bands 40/20 ms (251, 64)",
    ),
)


def _variant(parent: str, name: str, description: str, **changes: Any) -> Profile:
    """Profile ``parent`` but for ``changes``: a variant names only what differs.

    ``test_variant`` is not inherited (a variant names its own, or has none).
    """
    changes.setdefault("test_variant", None)
    return dataclasses.replace(PROFILES.get(parent), name=name, description=description, **changes)


# Per-split variants: the originals' test data (and SSL-TIE's Flickr training audio) are
# cut otherwise than the training window above (docs/extraction.md, "per split").
PROFILES.add(
    "ssltie-vggss-test",
    _variant(
        "ssltie",
        "ssltie-vggss-test",
        "SSL-TIE's VGG-SS test audio: the first 10 s of the test wav "
        "(tiled if shorter), mel 257 + dB (1, 257, 670)",
        audio_seconds=10.0,
        audio_window="start",
    ),
)
PROFILES.add(
    "ssltie-flickr",
    _variant(
        "ssltie",
        "ssltie-flickr",
        "SSL-TIE on Flickr, training: the first 4 s of the track, tiled to "
        "10 s by the spectrogram (1, 257, 670); --split test: ssltie-flickr-test",
        audio_seconds=4.0,
        audio_window="start",
        test_variant="ssltie-flickr-test",
    ),
)
PROFILES.add(
    "ssltie-flickr-test",
    _variant(
        "ssltie-flickr",
        "ssltie-flickr-test",
        "SSL-TIE on Flickr, test: the whole track cut or tiled to 10 s (1, 257, 670)",
        audio_seconds=10.0,
    ),
)
PROFILES.add(
    "htf-test",
    _variant(
        "htf",
        "htf-test",
        "Hear-The-Flow, test: 3 s centred on floor(seconds) / 2 of the "
        "22,050 Hz track (its test loader), scipy STFT (257, 276), Farneback flow",
        audio_window="centre-floor",
    ),
)
PROFILES.add(
    "chaotic",
    # with --times: the annotated frame (start_fid), the window centred on start_time;
    # without: SSPL's middle frame and centre window (plus the 320x180 pre-scale)
    _variant(
        "sspl",
        "chaotic",
        "Chaotic World (SSPL fork, ICME 2024): the annotated frame scaled to "
        "320x180 by ffmpeg then 256x256 (cv2 cubic), 3 s centred on the annotated time at "
        "16 kHz (clips whose window leaves the track are skipped), SSPL's VGGish log-mel",
        window_outside="skip",
        source_scale="320x180",
    ),
)
PROFILES.add(
    "ezvsl",
    # LVS's window and spectrogram, but the frame at native size and the track's own rate
    _variant(
        "lvs",
        "ezvsl",
        "EZ-VSL / FNAC / SLAVC: the middle frame at native size (resized when "
        "read), centre 3 s at the track's own rate, scipy STFT (nperseg 512, noverlap 274), "
        "log, /12",
        image_size=None,
        resize="none",
        sample_rate=None,
    ),
)
PROFILES.add(
    "lvs-10s",
    _variant(
        "ezvsl",
        "lvs-10s",
        "LVS's released test loader: the middle frame at native size, the first "
        "10 s of the track (tiled when shorter) at its own rate, scipy STFT, log, /12",
        audio_seconds=10.0,
        audio_window="start",
    ),
)


def get_profile(name: str, *, split: str | None = None, **overrides: Any) -> Profile:
    """The profile ``name`` with ``overrides`` applied (unknown names list the valid ones).

    ``split="test"`` takes the profile's ``test_variant`` when it names one.
    """
    prof = PROFILES.get(name)
    if split is not None:
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        if split == "test" and prof.test_variant:
            prof = PROFILES.get(prof.test_variant)
    return prof.with_overrides(**overrides)
