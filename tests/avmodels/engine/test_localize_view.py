"""`avmodels localize` draws at the video's resolution: colour bar, peak marker, time."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from avmodels.cli import cli
from avmodels.engine.localize_view import render, source_frame
from tests.media import make_video


def test_render_marks_the_peak_and_adds_a_colour_bar():
    frame = np.full((240, 320, 3), 128, np.uint8)
    heat = np.zeros((7, 7), np.float32)
    heat[1, 5] = 1.0  # peak at column 5, row 1 -> (5.5/7*320, 1.5/7*240)
    out = render(frame, heat, 3.25, alpha=0.5)
    assert out.shape[0] == 240 and out.shape[1] > 320
    x, y = int(5.5 / 7 * 320), int(1.5 / 7 * 240)
    assert (out[y, x] == 255).all()  # the white peak dot
    bar = out[:, 320:]
    reds = np.where((bar[..., 0] > 200) & (bar[..., 2] < 80))[0]
    blues = np.where((bar[..., 2] > 120) & (bar[..., 0] < 60))[0]
    assert reds.size and blues.size and reds.mean() < blues.mean()  # high (red) on top
    assert (out[2:10, 2:10] < 40).all()  # the timestamp's dark box in the corner
    assert (render(frame, heat, None)[2:10, 2:10] > 40).any()  # no time, no box


def test_source_frame_is_the_videos_size(tmp_path):
    video = make_video(tmp_path / "v.mp4", seconds=2.0, size=(320, 240))
    assert source_frame(video, 1.0).shape == (240, 320, 3)


@pytest.mark.slow
def test_localize_png_at_video_resolution(tmp_path):
    from avmodels.engine.checkpoint import save_model
    from avmodels.engine.config import resolve_config
    from avmodels.methods import METHODS

    cfg = resolve_config("sspl", None, ["model.pretrained=false", "model.image_size=32"])
    torch.manual_seed(0)
    model = save_model(tmp_path / "m.pt", METHODS.get("sspl")(cfg), cfg)
    video = make_video(tmp_path / "v.mp4", seconds=3.0, size=(320, 240))
    out = tmp_path / "loc.png"
    res = CliRunner().invoke(
        cli, ["localize", "--ckpt", str(model), "--video", str(video), "--at", "1.2",
              "--out", str(out), "--device", "cpu"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    img = cv2.imread(str(out))
    assert img.shape[0] == 240 and img.shape[1] > 320  # not the model's 32 px frame
