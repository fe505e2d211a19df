"""Where an audio window starts, in samples of the decoded signal.

The originals load the whole track at the model's rate and cut by sample
index: SSPL takes ``int(L / 2) - int(n / 2)`` of the ``L`` decoded samples
for an ``n``-sample window. What matters is ``L``: the length of the audio
the decoder delivers. A container's audio duration is longer: it counts the
encoder's priming and padding (AAC in MP4: 1024 samples of priming plus the
last frame's padding; MP3: the encoder delay; Opus: the pre-skip), so
centring on it starts the window late (+23 ms at 16 kHz on 22.05 kHz AAC).

Extraction knows ``L`` before decoding when an MP4's edit list states it
(:func:`avprep.stages.mediainfo.clip_info`: ``audio_signal_duration``) and
then lets ffmpeg seek to the window; otherwise it decodes the whole track in
its one ffmpeg pass and counts the samples. Both feed :func:`plan_window`,
the one place a window is decided (the profile's ``audio_window`` rule, or a
caller's centre time).

Rules (``kind``):

- ``centre``: ``L // 2 - n // 2`` (SSPL's integer rule; EZ-VSL's
  ``dur/2 - 1.5 s`` is the same sample up to rounding);
- ``at-frame`` / ``at-time``: centred on ``centre_time``: ``round(t·rate) -
  n // 2``; with ``outside="shift"`` a window that would leave the signal is
  moved inside it, with ``outside="fail"`` the clip fails with the reason
  (the Chaotic World fork skips such clips);
- ``start``: sample 0;
- ``centre-floor``: Hear-The-Flow's test rule (``datasets_flow.load_audio``):
  centred on ``floor(L / rate) / 2`` seconds, ``start = int((floor(L / rate)
  / 2 - seconds / 2) · rate)``. On a signal shorter than the window that
  start is negative and the original's slice ``x[start:end]`` counts it from
  the end: it takes the last ``-start`` samples (up to ``end``), which are
  then tiled; reproduced as ``take`` (e.g. a 1.5 s track gives its last 1 s).

A signal shorter than the window is taken whole (``whole=True``): the
profile's ``short_audio`` rule tiles or pads it.
"""

from __future__ import annotations

import dataclasses

from avprep.errors import MediaError

WINDOW_KINDS = ("centre", "at-frame", "at-time", "start", "centre-floor")
OUTSIDE = ("shift", "fail")


@dataclasses.dataclass(frozen=True)
class SignalFacts:
    """What is known about the decoded audio before the window is cut.

    ``samples``: the decoded length at ``rate`` (exact when counted, rounded
    from an edit list's duration otherwise). ``source``: ``edit-list`` (MP4
    boxes, no decode needed) or ``decoded`` (counted from the whole track).
    """

    samples: int
    rate: int
    source: str

    @classmethod
    def from_duration(cls, seconds: float, rate: int, source: str = "edit-list") -> SignalFacts:
        return cls(samples=int(round(seconds * rate)), rate=int(rate), source=source)

    @property
    def seconds(self) -> float:
        return self.samples / self.rate


@dataclasses.dataclass(frozen=True)
class AudioWindow:
    """A window of ``length`` samples starting at ``start`` (both at the signal's rate)."""

    start: int
    length: int
    rate: int
    whole: bool  # the signal is shorter than the window: take it all (then tile/pad)
    take: int | None = None  # take only this many samples from start (then tile/pad)

    @property
    def start_seconds(self) -> float:
        return self.start / self.rate


def plan_window(
    kind: str,
    seconds: float,
    signal: SignalFacts,
    centre_time: float | None = None,
    *,
    outside: str = "shift",
) -> AudioWindow:
    """The window ``kind`` picks on ``signal`` (see the module docstring)."""
    if kind not in WINDOW_KINDS:
        raise ValueError(f"unknown audio window {kind!r}; valid: {', '.join(WINDOW_KINDS)}")
    if outside not in OUTSIDE:
        raise ValueError(f"outside must be one of {', '.join(OUTSIDE)}, got {outside!r}")
    rate = signal.rate
    n = int(round(seconds * rate))
    total = signal.samples
    if kind in ("at-frame", "at-time") and centre_time is None:
        raise ValueError(f"audio window {kind!r} needs a centre time")
    if kind == "centre-floor":
        return _centre_floor(seconds, total, rate, n)
    if total <= n:
        if kind == "at-time" and outside == "fail":
            raise MediaError(
                f"the audio ({total / rate:.3f} s) is shorter than the {seconds:g} s window"
            )
        return AudioWindow(start=0, length=n, rate=rate, whole=True)
    if kind == "centre":
        start = total // 2 - n // 2
    elif kind == "start":
        start = 0
    else:
        start = int(round(centre_time * rate)) - n // 2
        if outside == "fail" and (start < 0 or start + n > total):
            raise MediaError(
                f"the {seconds:g} s audio window around {centre_time:.3f} s leaves the "
                f"audio (0 to {total / rate:.3f} s)"
            )
    start = min(max(0, start), total - n)
    return AudioWindow(start=start, length=n, rate=rate, whole=False)


def _centre_floor(seconds: float, total: int, rate: int, n: int) -> AudioWindow:
    """HTF's test window: ``x[int(lo · rate):int(hi · rate)]``, lo/hi around floor(L/rate)/2."""
    mid = float(total // rate) / 2
    lo, hi = int((mid - seconds / 2) * rate), int((mid + seconds / 2) * rate)
    if lo >= 0:
        start, end = lo, min(hi, total)
    else:  # Python's negative start counts from the end (clamped at 0)
        start, end = max(0, total + lo), min(hi, total)
    take = max(0, end - start)
    if start == 0 and take >= total:
        return AudioWindow(start=0, length=n, rate=rate, whole=total < n)
    return AudioWindow(start=start, length=n, rate=rate, whole=take < n, take=take)
