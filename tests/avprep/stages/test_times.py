"""``avprep extract --times``: clips at annotated frames/times, one decode per video.

The videos carry their decoded frame index in every frame (``tests/coded_media``)
and clicks at known times, so the frame taken and the audio window are read
back from the outputs, not from our own records.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from avprep import ffmpeg
from avprep.cli import cli
from avprep.errors import HostileIdError, InputError, MediaError
from avprep.ffmpeg import ffmpeg_binary
from avprep.manifest import Manifest
from avprep.profiles import get_profile
from avprep.stages.audio import read_wav
from avprep.stages.extract import run_extract
from avprep.stages.frames import read_jpeg
from avprep.stages.times import TimedClip, audio_window, cut_window, read_times, video_stop
from tests.coded_media import click_times, frame_index, make_coded_video

RATE = 16000
SAMPLE = 1.0 / RATE


@pytest.fixture(scope="module")
def coded(tmp_path_factory) -> Path:
    """V1: 100 frames at 25 fps (4 s), clicks at 1, 2, 3 s; V2: 50 frames, click at 1 s."""
    d = tmp_path_factory.mktemp("coded")
    make_coded_video(d / "V1.mp4", frames=100, clicks=[1.0, 2.0, 3.0])
    make_coded_video(d / "V2.mp4", frames=50, clicks=[1.0])
    return d


def write_times(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def records(out: Path) -> dict:
    last = {}
    for rec in Manifest(out / "manifest.jsonl").records():
        last[rec.clip_id] = rec
    return last


def inner_clicks(samples: np.ndarray) -> list[float]:
    """Click times (s) in a window, less bursts cut by its edges."""
    end = samples.shape[0] / RATE
    return [t for t in click_times(samples, RATE) if 0.01 < t < end - 0.01]


def extract(args: list[str]):
    return CliRunner().invoke(cli, ["extract", "--no-progress", *args])


def test_frames_and_times_are_exact_and_audio_is_centred(coded, tmp_path):
    times = write_times(
        tmp_path / "t.csv",
        "clip_id,video,frame,time",
        [
            "f1,V1,1,",  # first frame
            "f51,V1,51,",  # 1-based: decoded index 50, shown at 2.00 s
            "f100,V1,100,",  # last frame
            "t203,V1,,2.03",  # the frame shown at 2.03 s is index 50 (2.00..2.04)
            "t159,V1,,1.59",  # index 39 (1.56..1.60)
            "both,V1,26,2.5",  # frame by index, audio centred on the given time
            "w1,V2,26,",  # second video
        ],
    )
    out = tmp_path / "out"
    result = extract(["--in", str(coded), "--out", str(out), "--profile", "chaotic",
                      "--times", str(times), "--window-outside", "pad"])  # fmt: skip
    assert result.exit_code == 0, result.output
    recs = records(out)
    want = {"f1": 0, "f51": 50, "f100": 99, "t203": 50, "t159": 39, "both": 25, "w1": 25}
    for cid, index in want.items():
        rec = recs[cid]
        assert rec.ok, rec.error
        img = read_jpeg(out / rec.outputs["frame"])
        assert img.shape == (256, 256, 3)
        assert frame_index(img) == index, cid
        assert rec.meta["frame_index"] == index + 1
        assert rec.meta["frame_time"] == pytest.approx(index / 25, abs=1e-6)
    # the audio window: 3 s centred on the given time, else on the frame's decoded time
    for cid, centre, clicks in [("f51", 2.0, [1.0, 2.0, 3.0]), ("t159", 1.59, [1.0, 2.0, 3.0]),
                                ("both", 2.5, [1.0, 2.0, 3.0]), ("w1", 1.0, [1.0])]:  # fmt: skip
        samples, rate = read_wav(out / recs[cid].outputs["audio"])
        assert rate == RATE and samples.shape == (3 * RATE,)
        start = centre - 1.5
        found = [start + t for t in inner_clicks(samples)]
        inside = [c for c in clicks if start + 0.01 < c < start + 2.99]
        assert len(found) == len(inside), (cid, found)
        for f, c in zip(found, inside):
            # within one sample period (AAC priming removed by the decoder)
            assert abs(f - c) <= SAMPLE + 1e-9, (cid, f, c)
    spec = np.load(out / recs["f51"].outputs["spectrogram"])
    assert spec.shape == (3, 96, 64)


def test_frame_numbers_match_ffmpegs_png_numbering(coded, tmp_path):
    """Frame N is the picture ``ffmpeg -i V -start_number 1 V_%06d.png`` writes as N."""
    pngs = tmp_path / "png"
    pngs.mkdir()
    subprocess.run([ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-i",
                    str(coded / "V2.mp4"), "-start_number", "1", str(pngs / "V2_%06d.png")],
                   check=True)  # fmt: skip
    picks = [1, 17, 50]
    times = write_times(tmp_path / "t.csv", "clip_id,video,frame", [f"p{n},V2,{n}" for n in picks])
    out = tmp_path / "out"
    prof = get_profile("chaotic", resize="none", window_outside="pad")
    run_extract(coded, out, prof, times=times, progress=False)
    recs = records(out)
    for n in picks:
        png = read_jpeg(pngs / f"V2_{n:06d}.png")
        ours = read_jpeg(out / recs[f"p{n}"].outputs["frame"])
        assert frame_index(ours) == frame_index(png) == n - 1
    assert len(list(pngs.iterdir())) == 50


def test_past_the_end_fails_with_a_reason_never_clamped(coded, tmp_path):
    times = write_times(
        tmp_path / "t.csv",
        "clip_id,video,frame,time",
        ["late,V1,,4.0", "later,V1,,9.5", "beyond,V1,101,", "fine,V1,100,", "nov,V9,3,"],
    )
    out = tmp_path / "out"
    summary = run_extract(coded, out, get_profile("chaotic", window_outside="pad"), times=times,
                          progress=False)  # fmt: skip
    recs = records(out)
    assert "past the end of video V1" in recs["late"].error
    assert "past the end" in recs["later"].error
    assert "frame 101 is beyond the last frame of video V1" in recs["beyond"].error
    assert "video V9 is not in --in" in recs["nov"].error
    assert recs["fine"].ok and summary.ok == 1 and summary.failed == 4
    assert not (out / "frames" / "late.jpg").exists()


def test_frame_at_seconds_past_the_end_fails(coded, tmp_path):
    """``--frame-at 4.96`` on a 4 s clip used to take 3.96 s silently."""
    one = tmp_path / "in"
    one.mkdir()
    (one / "V1.mp4").symlink_to(coded / "V1.mp4")
    out = tmp_path / "out"
    result = extract(["--in", str(one), "--out", str(out), "--profile", "ssltie"])
    assert result.exit_code != 0
    rec = records(out)["V1"]
    assert not rec.ok and "4.960 s is past the end of the video (4.000 s)" in rec.error
    ok = extract(["--in", str(one), "--out", str(tmp_path / "o2"), "--profile", "sspl",
                  "--frame-at", "3.95"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    rec = records(tmp_path / "o2")["V1"]
    assert frame_index(read_jpeg(tmp_path / "o2" / rec.outputs["frame"])) == 98


@pytest.mark.parametrize("policy", ["skip", "shift", "pad"])
def test_window_outside_the_track(coded, tmp_path, policy):
    # 0.5 s: the window [-1.0, 2.0] starts before the track; 3.9 s: [2.4, 5.4] ends after it
    times = write_times(tmp_path / "t.csv", "clip_id,video,time",
                        ["early,V1,0.5", "late,V1,3.9", "mid,V1,2.0"])  # fmt: skip
    out = tmp_path / "out"
    run_extract(coded, out, get_profile("chaotic", window_outside=policy), times=times,
                progress=False)  # fmt: skip
    recs = records(out)
    assert recs["mid"].ok
    if policy == "skip":
        for cid in ("early", "late"):
            assert not recs[cid].ok and "leaves the audio" in recs[cid].error
            assert "--window-outside skip" in recs[cid].error
            assert not (out / "audio" / f"{cid}.wav").exists()
        return
    early, _ = read_wav(out / recs["early"].outputs["audio"])
    late, _ = read_wav(out / recs["late"].outputs["audio"])
    assert early.shape == late.shape == (3 * RATE,)
    if policy == "shift":
        # moved inside: [0, 3] and [1, 4] (the decoded track is 4 s plus AAC's tail)
        assert recs["early"].meta["audio_start"] == 0.0
        assert [round(t, 3) for t in inner_clicks(early)] == [1.0, 2.0]
        assert recs["late"].meta["audio_start"] + 3.0 <= 4.1
    else:
        # silence where the window is outside: 1 s of zeros, clicks at their place
        assert recs["early"].meta["audio_start"] == -1.0
        assert not early[:RATE].any()
        assert [round(t - 1.0, 4) for t in inner_clicks(early)] == [1.0]
        track_end = int(round((4.0 - 2.4) * RATE))
        assert not late[track_end + RATE // 10 :].any()


def test_variable_frame_rate_uses_decoded_timestamps(tmp_path):
    """Frames 0..50 every 40 ms, then every 80 ms: frame i at (i + max(0, i - 50)) / 25."""
    d = tmp_path / "vfr"
    make_coded_video(d / "VFR.mp4", frames=90, vfr_after=50, clicks=[3.0, 4.4])
    t_of = [(i + max(0, i - 50)) / 25 for i in range(90)]
    times = write_times(tmp_path / "t.csv", "clip_id,video,frame,time",
                        ["a,VFR,81,", "b,VFR,,3.0", "c,VFR,,2.99"])  # fmt: skip
    out = tmp_path / "out"
    run_extract(d, out, get_profile("chaotic", window_outside="pad"), times=times, progress=False)
    recs = records(out)
    # frame 81 (index 80) is at 4.40 s, not 80/25 = 3.2 s
    assert frame_index(read_jpeg(out / recs["a"].outputs["frame"])) == 80
    assert recs["a"].meta["frame_time"] == pytest.approx(t_of[80], abs=1e-6) == 4.4
    samples, _ = read_wav(out / recs["a"].outputs["audio"])
    assert [round(4.4 - 1.5 + t, 4) for t in inner_clicks(samples)] == [3.0, 4.4]
    # 3.0 s: index 62 starts at 2.96 and 63 at 3.04
    assert frame_index(read_jpeg(out / recs["b"].outputs["frame"])) == 62
    assert frame_index(read_jpeg(out / recs["c"].outputs["frame"])) == 62


def test_one_decode_per_video_and_resume(coded, tmp_path, monkeypatch):
    calls = []
    real = ffmpeg.run

    def counting(args, **kw):
        calls.append(kw.get("what"))
        return real(args, **kw)

    monkeypatch.setattr(ffmpeg, "run", counting)
    rows = [f"a{n},V1,{n}," for n in (5, 20, 40, 60, 80)] + [f"b{n},V2,{n}," for n in (10, 30)]
    times = write_times(tmp_path / "t.csv", "clip_id,video,frame,time", rows)
    out = tmp_path / "out"
    prof = get_profile("chaotic", window_outside="shift")
    first = run_extract(coded, out, prof, times=times, backend="serial", progress=False)
    assert first.ok == 7 and first.failed == 0
    assert sorted(calls) == ["V1", "V2"]  # one ffmpeg process per video, not per clip
    (out / "frames" / "a40.jpg").unlink()
    calls.clear()
    again = run_extract(coded, out, prof, times=times, backend="serial", progress=False)
    assert again.already_done == 6 and again.ok == 1 and calls == ["V1"]
    assert frame_index(read_jpeg(out / "frames" / "a40.jpg")) == 39
    header = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])["_header"]
    # "shift" is the default: left out, so folders made before the option still resume
    assert "window_outside" not in header["profile_params"]
    assert header["profile_params"]["source_scale"] == "320x180"


@pytest.mark.slow
def test_times_with_two_workers(coded, tmp_path):
    times = write_times(tmp_path / "t.csv", "clip_id,video,frame",
                        ["a,V1,10", "b,V1,90", "c,V2,40"])  # fmt: skip
    out = tmp_path / "out"
    prof = get_profile("chaotic", window_outside="pad")
    s = run_extract(coded, out, prof, times=times, jobs=2, progress=False)
    assert s.ok == 3
    got = {c: frame_index(read_jpeg(out / "frames" / f"{c}.jpg")) for c in "abc"}
    assert got == {"a": 9, "b": 89, "c": 39}


@pytest.mark.slow
def test_times_on_dask(coded, tmp_path):
    times = write_times(tmp_path / "t.csv", "clip_id,video,frame", ["a,V1,60", "c,V2,30"])
    out = tmp_path / "out"
    prof = get_profile("chaotic", window_outside="pad")
    s = run_extract(coded, out, prof, times=times, backend="dask", jobs=1, progress=False)
    assert s.ok == 2
    assert frame_index(read_jpeg(out / "frames" / "a.jpg")) == 59
    assert frame_index(read_jpeg(out / "frames" / "c.jpg")) == 29


def test_frame_at_fps_does_not_mix_with_times(coded, tmp_path):
    from avprep.errors import ConfigError

    times = write_times(tmp_path / "t.csv", "clip_id,video,frame", ["a,V1,60"])
    with pytest.raises(ConfigError, match="fps:N does not apply"):
        run_extract(coded, tmp_path / "o", get_profile("chaotic", frame_at="fps:1"), times=times)


def test_times_file_is_checked(tmp_path):
    def bad(text: str, exc=InputError, match: str = ""):
        p = tmp_path / "t.csv"
        p.write_text(text)
        with pytest.raises(exc, match=match):
            read_times(p)

    bad("clip_id,frame\na,1\n", match=r"t.csv:1: the header must name")
    bad("clip_id,video,frame\n../x,V,1\n", HostileIdError, r"t.csv:2: unsafe clip id")
    bad("clip_id,video,frame\na,V;rm,1\n", HostileIdError, r"t.csv:2")
    bad("clip_id,video,frame\na,V,0\n", match=r"t.csv:2: frame must be an integer >= 1")
    bad("clip_id,video,time\na,V,-1\n", match=r"finite number of seconds >= 0")
    bad("clip_id,video,time\na,V,nan\n", match=r"finite number")
    bad(
        "clip_id,video,time\na,V,1\nb,V,2\na,V,3\n", match=r"duplicate clip id.*a \(lines 2 and 4\)"
    )
    rows = read_times(write_times(tmp_path / "ok.csv", "clip_id,video,frame,time", ["x,V,3,1.5"]))
    assert (rows[0].frame, rows[0].time, rows[0].video) == (3, 1.5, "V")


def test_window_arithmetic():
    # start = round(t * rate) - n // 2 (the fork's int((t - 1.5) * sr) for whole t * rate)
    assert audio_window(64000, 16000, 2.0, 3.0, "skip") == (8000, 48000, None)
    assert audio_window(64000, 16000, 1.5, 3.0, "skip")[2] is None
    assert audio_window(64000, 16000, 1.4999, 3.0, "skip")[2] is not None
    assert audio_window(64000, 16000, 2.5, 3.0, "skip")[2] is None  # ends at 64000 exactly
    assert audio_window(64000, 16000, 2.6, 3.0, "shift") == (16000, 48000, None)
    assert audio_window(32000, 16000, 1.0, 3.0, "shift") == (0, 32000, None)
    x = np.arange(1, 11, dtype=np.int16)
    assert cut_window(x, -2, 5).tolist() == [0, 0, 1, 2, 3]
    assert cut_window(x, 8, 4).tolist() == [9, 10, 0, 0]


@pytest.mark.slow
def test_localize_at_past_the_end_fails(coded, tmp_path):
    """``avmodels localize --at`` past the end: a readable failure, not the last frame."""
    from avmodels.cli import cli as avmodels_cli
    from avmodels.engine.checkpoint import save_model
    from avmodels.engine.config import resolve_config
    from avmodels.methods import build_method

    cfg = resolve_config("ssl-tie", sets=["model.backbone=small", "model.small_width=8",
                                          "model.small_channels=32", "data.image_size=64"])  # fmt: skip
    model = save_model(tmp_path / "m.pt", build_method("ssl-tie", cfg), cfg)
    r = CliRunner().invoke(avmodels_cli, ["localize", "--ckpt", str(model), "--video",
                                          str(coded / "V1.mp4"), "--at", "4.5", "--out",
                                          str(tmp_path / "x.png"), "--device", "cpu"])  # fmt: skip
    assert r.exit_code != 0 and isinstance(r.exception, MediaError)
    assert "4.500 s is past the end of the video (4.000 s)" in str(r.exception)
    assert not (tmp_path / "x.png").exists()


def test_the_video_decode_stops_after_the_last_frame_needed():
    frames = (TimedClip("a", "V", None, 5), TimedClip("b", "V", None, 9))
    assert video_stop(frames, False, 0.1) == ["-frames:v", "2"]
    assert video_stop(frames, True, 0.1) == ["-frames:v", "4"]  # 4, 5, 8, 9 (0-based)
    times = (TimedClip("a", "V", 2.0), TimedClip("b", "V", 7.5))
    assert video_stop(times, False, 0.1) == ["-to", "7.650000"]
    assert video_stop((frames[0], times[0]), False, 0.1) == []  # mixed: to the end
