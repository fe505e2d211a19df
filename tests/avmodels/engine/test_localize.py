"""``avmodels localize`` on a real video (made with ffmpeg), through avprep's extraction."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from avmodels.cli import cli
from avmodels.engine.checkpoint import save_model
from avmodels.engine.config import resolve_config
from avmodels.engine.localize import localize_video, overlay
from avmodels.methods import build_method
from avprep import ffmpeg


@pytest.mark.slow
def test_localize_png_and_mp4(tmp_path, video_factory):
    video = video_factory("street.mp4", seconds=4, size=(320, 240), tone_hz=660)
    cfg = resolve_config("sspl", sets=["model.pretrained=false", "model.image_size=32"])
    model = save_model(tmp_path / "m.pt", build_method("sspl", cfg), cfg)

    res = localize_video(model, video, [1.0, None], device="cpu", progress=False)
    assert res[0].time == pytest.approx(1.0, abs=0.05)  # the frame asked for
    assert res[1].time == pytest.approx(2.0, abs=0.05)  # the profile's middle
    assert res[0].map.shape == (2, 2)
    h, w = res[0].frame.shape[:2]
    assert abs(w / h - 320 / 240) < 0.02  # drawn at the video's aspect ratio
    blend = overlay(res[0].frame, res[0].map)
    assert blend.shape == res[0].frame.shape and blend.dtype == np.uint8

    out = tmp_path / "street.png"
    r = CliRunner().invoke(cli, ["localize", "--ckpt", str(model), "--video", str(video),
                                 "--at", "1.5", "--out", str(out), "--device", "cpu",
                                 "--save-map", str(tmp_path / "map.npy")])  # fmt: skip
    assert r.exit_code == 0, r.output
    png = cv2.imread(str(out))
    assert png is not None and png.shape[2] == 3
    assert np.load(tmp_path / "map.npy").shape == (2, 2)

    mp4 = tmp_path / "street.mp4"
    r = CliRunner().invoke(cli, ["localize", "--ckpt", str(model), "--video", str(video),
                                 "--from", "0.5", "--to", "2.5", "--fps", "2", "--out", str(mp4),
                                 "--device", "cpu"])  # fmt: skip
    assert r.exit_code == 0, r.output
    info = ffmpeg.probe(mp4)
    assert info.has_video and info.has_audio
    assert 1.5 <= info.duration <= 2.5

    r = CliRunner().invoke(cli, ["localize", "--ckpt", str(model), "--video", str(video),
                                 "--out", str(tmp_path / "x.gif")])  # fmt: skip
    assert r.exit_code != 0
