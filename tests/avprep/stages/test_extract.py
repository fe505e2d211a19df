"""`avprep extract` on one clip: every profile, the output contract, frame and audio
choice against independent full decodes, flow, odd inputs and failures."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from avprep.errors import ConfigError, MediaError
from avprep.ffmpeg import ffmpeg_binary, probe
from avprep.manifest import Manifest
from avprep.profiles import get_profile
from avprep.spectrogram import compute
from avprep.stages.audio import fit_length, read_wav
from avprep.stages.extract import extract_clip, find_sources, run_extract
from avprep.stages.flow import FARNEBACK_HTF, legacy_htf_images
from avprep.stages.frames import read_jpeg
from avprep.stages.mediainfo import clip_info
from tests.media import make_video

META_KEYS = {
    "frame_time", "next_frame_time", "audio_start", "audio_seconds", "sample_rate", "width",
    "height", "src_width", "src_height", "fps", "duration", "source",
}  # fmt: skip


def _ff(*args: str) -> None:
    subprocess.run([ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def make_noise_video(path: Path, seconds: float = 4.0, size=(160, 96), fps: int = 30) -> Path:
    """testsrc2 + white-noise audio (no period, so a sample offset is unambiguous)."""
    w, h = size
    _ff("-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate={fps}:duration={seconds}",
        "-f", "lavfi", "-i", f"anoisesrc=d={seconds}:c=pink:r=44100:a=0.3:s=7",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "96k", "-shortest", str(path))  # fmt: skip
    return path


def decode_all_frames(path: Path) -> np.ndarray:
    """Every frame, decoded from the start (no seeking): the oracle for frame choice."""
    info = probe(path)
    w, h = info.display_size
    out = subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-i", str(path), "-map", "0:v:0",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(out, np.uint8).reshape(-1, h, w, 3)


def decode_all_audio(path: Path, rate: int) -> np.ndarray:
    out = subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1",
         "-ar", str(rate), "-f", "s16le", "pipe:1"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(out, "<i2")


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    v = {
        "noise": make_noise_video(root / "noise.mp4"),
        "short": make_video(root / "short.mp4", seconds=1.0, size=(96, 64), tone_hz=500),
        "silent": make_video(root / "silent.mp4", seconds=2, size=(96, 64), audio=False),
        "rot": make_video(root / "rot.mp4", seconds=2, size=(160, 96), rotate=90),
    }
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 200)
    v["broken"] = root / "broken.mp4"
    _ff("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", "-f", "lavfi", "-i", "sine",
        "-t", "0", "-c:v", "libx264", "-c:a", "aac", str(root / "zero.mp4"))  # fmt: skip
    v["zero"] = root / "zero.mp4"
    # variable frame rate: 2 s at 30 fps then 2 s at 10 fps
    _ff("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=30:duration=2",
        "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=10:duration=2",
        "-f", "lavfi", "-i", "sine=frequency=300:duration=4",
        "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]", "-map", "2:a",
        "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
        str(root / "vfr.mp4"))  # fmt: skip
    v["vfr"] = root / "vfr.mp4"
    # a Matroska file goes through ffmpeg -i rather than the MP4 box reader
    _ff("-i", str(v["noise"]), "-c", "copy", str(root / "noise_mkv.mkv"))
    v["mkv"] = root / "noise_mkv.mkv"
    return v


# -- the output contract, per profile --------------------------------------------
@pytest.mark.parametrize(
    ("profile", "frame_hw", "spec_shape"),
    [
        ("sspl", (256, 256), (3, 96, 64)),
        ("ssltie", (299, 299), (1, 257, 670)),
        ("lvs", (224, 224), (257, 200)),
        ("htf", (96, 160), (257, 276)),
        ("mssl", (256, 256), (251, 64)),
    ],
)
def test_profile_outputs(videos, tmp_path, profile, frame_hw, spec_shape):
    # ssltie's own frame (4.96 s) is past the end of these 4 s clips: a failed clip now
    prof = get_profile(profile, frame_at="middle" if profile == "ssltie" else None)
    rec = extract_clip(videos["noise"], tmp_path, prof, clip_id="c1")
    assert rec.ok
    expected = {"frame", "audio", "spectrogram"} | ({"flow"} if prof.flow else set())
    assert set(rec.outputs) == expected
    assert rec.outputs["frame"] == "frames/c1.jpg" and rec.outputs["audio"] == "audio/c1.wav"
    assert rec.outputs["spectrogram"] == f"spectrograms/{prof.spectrogram}/c1.npy"
    assert META_KEYS <= set(rec.meta)
    assert rec.meta["timings"]["cpu"] > 0  # this clip's CPU (process + ffmpeg)
    img = read_jpeg(tmp_path / "frames/c1.jpg")
    assert img.shape == (*frame_hw, 3)
    assert (rec.meta["height"], rec.meta["width"]) == frame_hw
    assert (rec.meta["src_width"], rec.meta["src_height"]) == (160, 96)
    assert rec.meta["fps"] == 30.0 and rec.meta["duration"] == pytest.approx(4.0, abs=0.05)
    wav, rate = read_wav(tmp_path / "audio/c1.wav")
    assert rate == prof.sample_rate == rec.meta["sample_rate"]
    assert wav.shape == (int(prof.audio_seconds * rate),)
    spec = np.load(tmp_path / rec.outputs["spectrogram"])
    assert spec.shape == spec_shape and spec.dtype == np.float32
    # the stored spectrogram is exactly what avmodels computes from the stored WAV
    np.testing.assert_array_equal(spec, compute(prof.spectrogram, wav, rate))
    if prof.flow:
        fl = np.load(tmp_path / "flow/c1.npy")
        assert fl.dtype == np.float16 and fl.shape == (2, *frame_hw)
        assert rec.meta["next_frame_time"] == pytest.approx(rec.meta["frame_time"] + 1 / 30)


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def test_middle_frame_is_frame_n_over_2(videos, tmp_path):
    """HTF takes frame N//2 of a constant-rate clip; SSPL the middle one: the same frame."""
    every = decode_all_frames(videos["noise"])
    n = len(every)
    rec = extract_clip(videos["noise"], tmp_path, get_profile("htf", flow="none"), clip_id="m")
    assert rec.meta["frame_time"] == pytest.approx((n // 2) / 30, abs=1e-6)
    # bit-exact: the decoded frame N//2 of a full decode, JPEG-encoded the same way
    assert (tmp_path / "frames/m.jpg").read_bytes() == _jpeg(every[n // 2], 95)
    assert (tmp_path / "frames/m.jpg").read_bytes() != _jpeg(every[n // 2 + 1], 95)


def test_middle_of_an_odd_frame_count_is_n_over_2_too(tmp_path):
    path = make_video(tmp_path / "odd.mp4", seconds=1.0, fps=25, size=(96, 64))  # 25 frames
    every = decode_all_frames(path)
    assert len(every) == 25
    rec = extract_clip(path, tmp_path / "o", get_profile("htf", flow="none"), clip_id="o")
    assert rec.meta["frame_time"] == pytest.approx(12 / 25, abs=1e-6)
    assert (tmp_path / "o/frames/o.jpg").read_bytes() == _jpeg(every[12], 95)


def test_seconds_frame_and_resize_match_cv2(videos, tmp_path):
    """A time in seconds takes the frame shown then (the last starting at or before it); SSPL squashes with
    cv2.resize INTER_CUBIC (Multi-Source: INTER_LINEAR)."""
    every = decode_all_frames(videos["noise"])
    rec = extract_clip(videos["noise"], tmp_path, get_profile("sspl", frame_at="2.52"), clip_id="s")
    assert rec.meta["frame_time"] == pytest.approx(75 / 30, abs=1e-6)  # the frame shown at 2.52
    want = cv2.resize(every[75], (256, 256), interpolation=cv2.INTER_CUBIC)
    assert (tmp_path / "frames/s.jpg").read_bytes() == _jpeg(want, 95)
    extract_clip(videos["noise"], tmp_path, get_profile("mssl", frame_at="2.5"), clip_id="l")
    want = cv2.resize(every[75], (256, 256), interpolation=cv2.INTER_LINEAR)
    assert (tmp_path / "frames/l.jpg").read_bytes() == _jpeg(want, 95)


def test_frame_time_past_the_end_is_a_failure_not_clamped(videos, tmp_path):
    with pytest.raises(MediaError, match=r"99.000 s is past the end of the video"):
        extract_clip(videos["noise"], tmp_path, get_profile("ssltie", frame_at="99"), clip_id="e")
    assert not (tmp_path / "frames" / "e.jpg").exists()


def test_centre_audio_window_matches_full_decode(videos, tmp_path):
    rate = 16000
    full = decode_all_audio(videos["noise"], rate).astype(np.float64)
    rec = extract_clip(videos["noise"], tmp_path, get_profile("sspl"), clip_id="a")
    wav, _ = read_wav(tmp_path / "audio/a.wav")
    # SSPL: start = int(L/2) - int(N/2) of the whole track
    start = int(len(full) / 2) - 24000
    assert rec.meta["audio_start"] == pytest.approx(start / rate, abs=0.03)
    seg = wav[2000:6000].astype(np.float64)
    lags = range(start + 2000 - 400, start + 2000 + 400)
    corr = [np.dot(seg, full[j : j + seg.size]) for j in lags]
    best = lags[int(np.argmax(corr))] - 2000
    assert abs(best - start) <= 0.03 * rate  # within AAC/resampler delay
    peak = max(corr) / np.sqrt(
        np.dot(seg, seg) * np.dot(full[best + 2000 : best + 6000], full[best + 2000 : best + 6000])
    )
    assert peak > 0.95


def test_at_frame_and_start_windows(videos, tmp_path):
    p = get_profile("lvs", audio_window="at-frame", frame_at="1.0", audio_seconds=1.0)
    rec = extract_clip(videos["noise"], tmp_path, p, clip_id="f")
    assert rec.meta["audio_start"] == pytest.approx(0.5, abs=1e-6)
    p = get_profile("lvs", audio_window="start")
    assert extract_clip(videos["noise"], tmp_path, p, clip_id="g").meta["audio_start"] == 0.0


@pytest.mark.parametrize("short", ["tile-centre", "tile-start", "pad"])
def test_short_audio_tiled_or_padded_as_the_profile_says(videos, tmp_path, short):
    prof = get_profile("sspl", short_audio=short)
    rec = extract_clip(videos["short"], tmp_path, prof, clip_id="t")
    assert rec.meta["audio_short"] is True and rec.meta["audio_start"] == 0.0
    wav, _ = read_wav(tmp_path / "audio/t.wav")
    whole = decode_all_audio(videos["short"], 16000)
    assert 15000 < whole.size < 17500
    np.testing.assert_array_equal(wav, fit_length(whole, 48000, short))
    if short == "tile-centre":  # SSPL: tile int(N/len)+1 times, then the centre
        tiled = np.tile(whole, int(48000 / whole.size) + 1)
        s = int(tiled.size / 2) - 24000
        np.testing.assert_array_equal(wav, tiled[s : s + 48000])
    if short == "pad":
        assert not wav[whole.size :].any()


# -- flow -----------------------------------------------------------------------------
def test_farneback_flow_matches_htf_recipe(videos, tmp_path):
    every = decode_all_frames(videos["noise"])
    n = len(every)
    rec = extract_clip(
        videos["noise"], tmp_path, get_profile("htf", flow_legacy_htf=True), clip_id="h"
    )
    g0 = cv2.cvtColor(every[n // 2], cv2.COLOR_RGB2GRAY)
    g1 = cv2.cvtColor(every[n // 2 + 1], cv2.COLOR_RGB2GRAY)
    p = FARNEBACK_HTF
    ref = cv2.calcOpticalFlowFarneback(
        g0, g1, None, p["pyr_scale"], p["levels"], p["winsize"], p["iterations"],
        p["poly_n"], p["poly_sigma"], p["flags"],
    )  # fmt: skip
    ours = np.load(tmp_path / "flow/h.npy").astype(np.float32)
    np.testing.assert_allclose(ours, np.moveaxis(ref, -1, 0), atol=0.02)
    assert (ours < -0.5).any(), "signed flow: testsrc2 moves both ways"
    x = cv2.imread(str(tmp_path / "flow/flow_x/h.jpg"), cv2.IMREAD_GRAYSCALE)
    assert x.shape == (96, 160)
    assert {"flow_legacy_x", "flow_legacy_y"} <= set(rec.outputs)


def test_legacy_htf_images_equal_cv2_imwrite_of_float(tmp_path):
    rng = np.random.default_rng(0)
    flow = rng.normal(0, 3, (8, 10, 2)).astype(np.float32) * 40
    flow[0, 0, 0] = 2.5  # ties round to even, as cv2's saturate_cast does
    x, y = legacy_htf_images(flow)
    for comp, ours in ((0, x), (1, y)):
        path = str(tmp_path / f"c{comp}.png")  # PNG: what imwrite stores, without JPEG loss
        cv2.imwrite(path, flow[..., comp])
        np.testing.assert_array_equal(cv2.imread(path, cv2.IMREAD_UNCHANGED), ours)


def test_dis_flow(videos, tmp_path):
    rec = extract_clip(videos["noise"], tmp_path, get_profile("sspl", flow="dis"), clip_id="d")
    fl = np.load(tmp_path / rec.outputs["flow"])
    assert fl.shape == (2, 256, 256) and fl.dtype == np.float16 and np.abs(fl).max() > 0.5


# -- odd inputs ---------------------------------------------------------------------
def test_rotation_metadata_is_applied(videos, tmp_path):
    rec = extract_clip(videos["rot"], tmp_path, get_profile("htf"), clip_id="r")
    img = read_jpeg(tmp_path / "frames/r.jpg")
    assert img.shape[:2] == (160, 96)  # portrait after rotation
    assert (rec.meta["width"], rec.meta["height"]) == (96, 160)
    assert abs(rec.meta["rotation"]) == 90
    assert np.load(tmp_path / "flow/r.npy").shape == (2, 160, 96)


def test_short_side_resize_keeps_aspect(videos, tmp_path):
    prof = get_profile("lvs", resize="short-side", image_size=48)
    rec = extract_clip(videos["noise"], tmp_path, prof, clip_id="k")
    assert read_jpeg(tmp_path / "frames/k.jpg").shape == (48, 80, 3)
    assert (rec.meta["width"], rec.meta["height"]) == (80, 48)


def test_variable_frame_rate_times_come_from_the_frames(videos, tmp_path):
    rec = extract_clip(
        videos["vfr"], tmp_path, get_profile("sspl", frame_at="3.05", flow="dis"), clip_id="v"
    )
    # 10 fps from 2 s on: the frame shown at 3.05 s started at 3.0 s
    assert rec.meta["frame_time"] == pytest.approx(3.0, abs=1e-3)
    assert rec.meta["next_frame_time"] == pytest.approx(3.1, abs=1e-3)
    # nominal 20 fps, frames 0.1 s apart: the shown frame starts before the usual seek margin
    rec = extract_clip(videos["vfr"], tmp_path, get_profile("sspl", frame_at="3.09"), clip_id="w")
    assert rec.meta["frame_time"] == pytest.approx(3.0, abs=1e-3)


def test_fps_mode_stores_sampled_frames(videos, tmp_path):
    rec = extract_clip(
        videos["noise"], tmp_path, get_profile("sspl", frame_at="fps:2"), clip_id="p"
    )
    files = sorted((tmp_path / "frames/p").glob("*.jpg"))
    assert len(files) == 8 and rec.outputs["frames"] == "frames/p"
    assert rec.meta["frame_times"][:3] == pytest.approx([0.0, 0.5, 1.0], abs=0.02)
    assert rec.meta["frame_time"] == pytest.approx(2.0, abs=0.02)
    assert (tmp_path / "frames/p.jpg").is_file()
    with pytest.raises(ConfigError, match="flow"):
        extract_clip(videos["noise"], tmp_path, get_profile("htf", frame_at="fps:1"), clip_id="q")


def test_keyframe_seek_is_an_explicit_option(videos, tmp_path):
    """``seek=keyframe`` takes the keyframe before the time (here the first frame)."""
    every = decode_all_frames(videos["noise"])
    prof = get_profile("htf", flow="none", seek="keyframe")
    rec = extract_clip(videos["noise"], tmp_path, prof, clip_id="kf")
    assert rec.meta["frame_time"] == 0.0
    assert (tmp_path / "frames/kf.jpg").read_bytes() == _jpeg(every[0], 95)
    assert get_profile("htf").seek == "exact"


def test_native_sample_rate(videos, tmp_path):
    prof = get_profile("lvs", sample_rate="native")
    rec = extract_clip(videos["noise"], tmp_path, prof, clip_id="n")
    wav, rate = read_wav(tmp_path / "audio/n.wav")
    assert rate == rec.meta["sample_rate"] == 44100 and wav.size == 3 * 44100
    assert np.load(tmp_path / rec.outputs["spectrogram"]).shape == (257, 554)


def test_odd_frame_size(tmp_path):
    path = tmp_path / "odd.mp4"
    _ff("-f", "lavfi", "-i", "testsrc=size=97x75:rate=25:duration=2", "-f", "lavfi",
        "-i", "sine=duration=2", "-c:v", "libx264", "-preset", "ultrafast",
        "-pix_fmt", "yuv444p", "-c:a", "aac", "-shortest", str(path))  # fmt: skip
    rec = extract_clip(path, tmp_path / "out", get_profile("htf"), clip_id="odd")
    assert (rec.meta["src_width"], rec.meta["src_height"]) == (97, 75)
    assert read_jpeg(tmp_path / "out/frames/odd.jpg").shape == (75, 97, 3)
    assert np.load(tmp_path / "out/flow/odd.npy").shape == (2, 75, 97)


def test_matroska_goes_through_ffmpeg_probe(videos, tmp_path):
    assert clip_info(videos["mkv"]).via == "ffmpeg"
    rec = extract_clip(videos["mkv"], tmp_path, get_profile("sspl"), clip_id="mk")
    assert rec.ok and rec.meta["frame_time"] == pytest.approx(2.0, abs=0.04)


def test_box_reader_agrees_with_ffmpeg(videos):
    for key in ("noise", "short", "rot", "vfr", "silent"):
        fast, ref = clip_info(videos[key]), probe(videos[key])
        assert fast.via == "mp4"
        m = fast.media
        assert m.duration == pytest.approx(ref.duration, abs=0.03)
        assert (m.width, m.height, m.has_audio, m.has_video) == (
            ref.width, ref.height, ref.has_audio, ref.has_video,
        )  # fmt: skip
        assert m.rotation == ref.rotation
        assert m.sample_rate == ref.sample_rate


# -- failures -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "reason"),
    [("silent", "no audio stream"), ("broken", "cannot be decoded"), ("zero", "zero duration")],
)
def test_bad_clips_raise_readable_media_errors(videos, tmp_path, key, reason):
    with pytest.raises(MediaError, match=reason):
        extract_clip(videos[key], tmp_path, get_profile("sspl"), clip_id=key)
    assert not list((tmp_path / "frames").glob("*")) if (tmp_path / "frames").exists() else True


def test_run_records_failures_and_continues(videos, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for key in ("noise", "silent", "broken", "zero", "short"):
        (src / f"{key}.mp4").symlink_to(videos[key])
    (src / "notes.txt").write_text("not a video")
    out = tmp_path / "out"
    summary = run_extract(src, out, get_profile("sspl"), progress=False)
    assert (summary.total, summary.ok, summary.failed) == (5, 2, 3)
    man = Manifest(out / "manifest.jsonl")
    assert man.header["profile"] == "sspl"
    assert man.header["profile_params"] == get_profile("sspl").params()
    assert {"ffmpeg", "avprep", "numpy", "opencv"} <= set(man.header["tools"])
    errors = {r.clip_id: r.error for r in man.records() if not r.ok}
    assert "no audio stream" in errors["silent"]
    assert "cannot be decoded" in errors["broken"]
    assert "zero duration" in errors["zero"]
    assert sorted(man.ok_ids()) == ["noise", "short"]
    for line in (out / "manifest.jsonl").read_text().splitlines():
        json.loads(line)
    text = summary.text()
    assert "failed                       3" in text and "no audio stream" in text


def test_download_manifest_input(videos, tmp_path):
    dl = tmp_path / "dl"
    dl.mkdir()
    (dl / "aaa.mp4").symlink_to(videos["noise"])
    (dl / "bbb.webm").symlink_to(videos["short"])
    records = [
        {"_header": {"tool": "download"}},
        {"clip_id": "aaa", "status": "ok", "outputs": {"path": "aaa.mp4"}},
        {"clip_id": "bbb", "status": "ok", "outputs": {}},
        {"clip_id": "ccc", "status": "unavailable", "error": "gone"},
        {"clip_id": "ddd", "status": "ok", "outputs": {"path": "../../etc/passwd"}},
        {"clip_id": "../x", "status": "ok"},
    ]
    (dl / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n{cut")
    sources, rejected = find_sources(dl)
    assert [(s.clip_id, Path(s.path).name) for s in sources] == [
        ("aaa", "aaa.mp4"),
        ("bbb", "bbb.webm"),
    ]
    assert sorted(r.clip_id for r in rejected) == ["___x", "ddd"]
    assert "not found" in next(r.error for r in rejected if r.clip_id == "ddd")
    assert find_sources(dl / "manifest.jsonl")[0] == sources
