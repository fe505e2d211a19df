"""The audio window is centred on the decoded signal, not on the container's duration.

Each medium carries one click at a known time in an 8.000 s track, encoded
the way downloads arrive (AAC in MP4: 1024 samples of priming; Opus in WebM:
pre-skip; MP3 in MKV: encoder delay). The originals cut ``int(L/2) -
int(n/2)`` of the ``L`` decoded samples; the window every profile writes
must start there to one sample period, which the click's position in the
written WAV proves (compared with the click in a whole-track decode, so the
codec's own smear cancels).
"""

from __future__ import annotations

import subprocess
import wave

import numpy as np
import pytest

from avprep.errors import MediaError
from avprep.ffmpeg import ffmpeg_binary
from avprep.profiles import PROFILES, get_profile
from avprep.stages.audio import read_wav
from avprep.stages.audio_window import SignalFacts, plan_window
from avprep.stages.extract import extract_clip
from avprep.stages.mediainfo import clip_info

SECONDS = 8.0
CLICK_AT = 3.0  # s: inside every profile's window (centre 3 s: 2.5..5.5, 5 s: 1.5..6.5,
# first 4 s, first 10 s, HTF's test window around floor(8) / 2: 2.5..5.5)

ENCODINGS = {
    # name: (suffix, video codec args, audio codec args, source rate)
    "aac-mp4": (".mp4", ["-c:v", "libx264", "-preset", "ultrafast"], ["-c:a", "aac"], 22050),
    "opus-webm": (".webm", ["-c:v", "libvpx", "-deadline", "realtime"], ["-c:a", "libopus"], 48000),
    "mp3-mkv": (".mkv", ["-c:v", "libx264", "-preset", "ultrafast"], ["-c:a", "libmp3lame"], 44100),
}


def _ff(*args: str) -> None:
    subprocess.run([ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def _decode_all(path, rate: int) -> np.ndarray:
    out = subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1",
         "-ar", str(rate), "-f", "s16le", "pipe:1"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(out, "<i2").astype(np.float64)


@pytest.fixture(scope="module")
def clicks(tmp_path_factory):
    root = tmp_path_factory.mktemp("clicks")
    out = {}
    for name, (suffix, vcodec, acodec, rate) in ENCODINGS.items():
        track = np.zeros(int(SECONDS * rate), np.int16)
        c = int(CLICK_AT * rate)
        track[c : c + 4] = 24000  # a short broadband click
        wav = root / f"{name}.wav"
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(track.tobytes())
        path = root / f"{name}{suffix}"
        _ff("-f", "lavfi", "-i", f"testsrc2=size=64x48:rate=25:duration={SECONDS}", "-i", str(wav),
            *vcodec, "-pix_fmt", "yuv420p", *acodec, "-ar", str(rate), str(path))  # fmt: skip
        out[name] = path
    return out


def _expected_start(kind: str, total: int, n: int, rate: int, seconds: float) -> int:
    """Restated from the originals (on the decoded samples, not the container)."""
    if kind == "centre-floor":  # HTF test: x[int((floor(L/sr)/2 - 1.5) * sr):...]
        return int((float(total // rate) / 2 - seconds / 2) * rate)
    if total <= n or kind == "start":
        return 0  # SSL-TIE: from the start; a short track is taken whole and tiled
    return int(total / 2) - int(n / 2)  # SSPL: int(L/2) - int(N/2)


def _peak(x: np.ndarray) -> int:
    return int(np.argmax(np.abs(x)))


@pytest.mark.parametrize("name", list(ENCODINGS))
@pytest.mark.parametrize("profile", PROFILES.names())
def test_window_starts_on_the_decoded_signal_for_every_profile(clicks, tmp_path, name, profile):
    prof = get_profile(profile, flow="none") if profile == "htf" else get_profile(profile)
    rate = prof.sample_rate or ENCODINGS[name][3]  # None: the track's own rate (ezvsl)
    full = _decode_all(clicks[name], rate)
    # the decoded signal is the 8.000 s that went in: priming and padding are not part of it
    assert full.size == int(SECONDS * rate)
    n = int(round(prof.audio_seconds * rate))
    want = _expected_start(prof.audio_window, full.size, n, rate, prof.audio_seconds)
    rec = extract_clip(clicks[name], tmp_path, prof, clip_id="c")
    assert rec.meta["audio_start_sample"] == want
    assert rec.meta["audio_start"] == pytest.approx(want / rate, abs=1e-6)
    wav, wav_rate = read_wav(tmp_path / "audio/c.wav")
    assert wav_rate == rate and wav.size == n
    # the click sits where it sits in the whole decode, minus the window start: +-1 sample
    assert abs((_peak(wav.astype(np.float64)) + want) - _peak(full)) <= 1


def test_mp4_edit_list_gives_the_decoded_length_without_decoding(clicks):
    info = clip_info(clicks["aac-mp4"])
    # the container counts the AAC priming (1024 samples) and padding ...
    assert info.audio_duration > SECONDS + 1024 / 22050 - 1e-9
    # ... the edit list leaves them out: the length the decoder delivers
    assert info.audio_signal_duration == pytest.approx(SECONDS, abs=1e-9)
    assert info.audio_priming == pytest.approx(1024 / 22050, abs=1e-9)
    # a container without edit lists: the length is measured in the decode pass instead
    assert clip_info(clicks["mp3-mkv"]).audio_signal_duration is None


def test_sspl_window_before_and_after(clicks, tmp_path):
    """SSPL on the 22.05 kHz AAC clip: the container's duration put the window 371.5 samples late."""
    info = clip_info(clicks["aac-mp4"])
    old = (info.audio_duration / 2 - 1.5) * 16000  # centred on the container's audio duration
    assert old == pytest.approx(40371.5, abs=0.05)
    rec = extract_clip(clicks["aac-mp4"], tmp_path, get_profile("sspl"), clip_id="s")
    assert rec.meta["audio_start_sample"] == 40000
    assert rec.meta["audio_signal_source"] == "edit-list"
    rec = extract_clip(clicks["opus-webm"], tmp_path, get_profile("sspl"), clip_id="w")
    assert rec.meta["audio_start_sample"] == 40000
    assert rec.meta["audio_signal_source"] == "decoded"


def test_plan_window_rules():
    sig = SignalFacts(samples=64001, rate=16000, source="decoded")
    assert plan_window("centre", 3.0, sig).start == 32000 - 24000
    assert plan_window("start", 3.0, sig).start == 0
    assert plan_window("at-time", 3.0, sig, 2.0).start == 32000 - 24000
    # shifted inside the signal, or refused with the reason
    assert plan_window("at-time", 3.0, sig, 0.5).start == 0
    assert plan_window("at-frame", 3.0, sig, 3.9).start == 64001 - 48000
    with pytest.raises(MediaError, match="leaves the audio"):
        plan_window("at-time", 3.0, sig, 0.5, outside="fail")
    short = SignalFacts(samples=20000, rate=16000, source="decoded")
    w = plan_window("centre", 3.0, short)
    assert w.whole and w.start == 0 and w.length == 48000
    assert SignalFacts.from_duration(4.0464399, 16000).samples == 64743
