"""The only place that runs ffmpeg.

The binary is the system ``ffmpeg`` on PATH if there is one, else the static
build the ``imageio-ffmpeg`` package ships (so no system package is needed).
``AVPREP_FFMPEG`` overrides both. Commands are argument lists, never shell
strings, so clip ids and paths cannot reach a shell.

ffprobe is not assumed (imageio-ffmpeg does not ship it): :func:`probe` reads
what ``ffmpeg -i`` prints.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from avprep.errors import MediaError, ToolMissingError

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def ffmpeg_binary() -> str:
    """Path of the ffmpeg executable to use (see module docstring)."""
    override = os.environ.get("AVPREP_FFMPEG")
    if override:
        if not Path(override).is_file():
            raise ToolMissingError(f"AVPREP_FFMPEG={override!r} is not a file")
        return override
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        raise ToolMissingError(
            "ffmpeg not found: install it (apt-get install ffmpeg) or pip install imageio-ffmpeg"
        ) from exc


@functools.lru_cache(maxsize=1)
def ffmpeg_version() -> str:
    out = subprocess.run(
        [ffmpeg_binary(), "-hide_banner", "-version"], capture_output=True, text=True, check=False
    ).stdout
    first = out.splitlines()[0] if out else ""
    m = re.search(r"ffmpeg version (\S+)", first)
    return m.group(1) if m else first or "unknown"


def run(
    args: Sequence[str | os.PathLike],
    *,
    timeout: float | None = 600,
    what: str = "ffmpeg",
    input_bytes: bytes | None = None,
) -> subprocess.CompletedProcess:
    """Run ffmpeg with ``args`` (without the binary); raise MediaError on failure.

    The error message carries the last lines of ffmpeg's stderr, which name
    the actual problem (no audio stream, invalid data, ...).
    """
    cmd = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", *map(str, args)]
    if input_bytes is not None:
        cmd.remove("-nostdin")
    try:
        proc = subprocess.run(
            cmd, capture_output=True, timeout=timeout, check=False, input=input_bytes
        )
    except subprocess.TimeoutExpired as exc:
        raise MediaError(f"{what}: ffmpeg timed out after {timeout:.0f} s") from exc
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        reason = " | ".join(tail) or f"exit {proc.returncode}"
        raise MediaError(f"{what}: ffmpeg failed: {reason}")
    return proc


@dataclasses.dataclass(frozen=True)
class MediaInfo:
    """What ``ffmpeg -i`` tells about a file."""

    duration: float | None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    rotation: float = 0.0
    has_video: bool = False
    has_audio: bool = False
    sample_rate: int | None = None
    audio_channels: int | None = None

    @property
    def display_size(self) -> tuple[int, int] | None:
        """(width, height) after applying rotation metadata."""
        if self.width is None or self.height is None:
            return None
        if round(abs(self.rotation)) % 180 == 90:
            return self.height, self.width
        return self.width, self.height


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\S+.*?: Video: .*?(\d{2,5})x(\d{2,5})")
_FPS = re.compile(r"(\d+(?:\.\d+)?) fps")
_TBR = re.compile(r"(\d+(?:\.\d+)?)k? tbr")
_AUDIO = re.compile(
    r"Stream #\S+.*?: Audio: .*?(\d+) Hz(?:, (mono|stereo|[\d.]+(?:\(\w+\))?|\d+ channels))?"
)
_ROTATE = re.compile(r"(?:rotation of|rotate\s*:)\s*(-?\d+(?:\.\d+)?)")


def probe(path: str | os.PathLike, timeout: float = 60) -> MediaInfo:
    """Read duration, size, fps, rotation and audio facts of a media file."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    proc = subprocess.run(
        [ffmpeg_binary(), "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    text = proc.stderr.decode("utf-8", "replace")
    if "Invalid data found" in text or "moov atom not found" in text or "Stream #" not in text:
        last = text.strip().splitlines()[-1] if text.strip() else "unreadable"
        raise MediaError(f"{path.name}: cannot be decoded ({last})")
    duration = None
    m = _DURATION.search(text)
    if m:
        h, mi, s = m.groups()
        duration = int(h) * 3600 + int(mi) * 60 + float(s)
    width = height = None
    fps = None
    vm = _VIDEO.search(text)
    if vm:
        width, height = int(vm.group(1)), int(vm.group(2))
        line = text[vm.start() : text.find("\n", vm.start())]
        fm = _FPS.search(line) or _TBR.search(line)
        if fm:
            fps = float(fm.group(1))
    rotation = 0.0
    rm = _ROTATE.search(text)
    if rm:
        rotation = float(rm.group(1))
    am = _AUDIO.search(text)
    sample_rate = channels = None
    if am:
        sample_rate = int(am.group(1))
        layout = am.group(2) or ""
        channels = {"mono": 1, "stereo": 2}.get(layout)
        if channels is None:
            cm = re.match(r"(\d+)", layout)
            channels = int(cm.group(1)) if cm else None
    return MediaInfo(
        duration=duration,
        width=width,
        height=height,
        fps=fps,
        rotation=rotation,
        has_video=vm is not None,
        has_audio=am is not None,
        sample_rate=sample_rate,
        audio_channels=channels,
    )


def stats_rows(path: str | os.PathLike) -> Iterator[list[str]]:
    """The non-blank lines of an ``-stats_enc_pre`` file, split into fields."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if parts:
                yield parts


def pts_seconds(pts: str, timebase: str) -> float:
    """``pts`` in ``num/den`` time-base units, in seconds (ValueError/ZeroDivisionError if malformed)."""
    num, den = timebase.split("/")
    return int(pts) * int(num) / int(den)
