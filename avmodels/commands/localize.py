"""``avmodels localize``: where does the sound come from in my video? (thin CLI layer)."""

from __future__ import annotations

from pathlib import Path

import click

from avmodels.commands.options import model_set_option
from avprep.clikit import no_progress_option, progress_wanted


@click.command(context_settings={"show_default": True})
@click.option(
    "--ckpt",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Model file (a run's best.pt/final.pt or an imported checkpoint).",
)
@click.option(
    "--video",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Your video (any format ffmpeg reads).",
)
@click.option(
    "--at",
    "at",
    type=float,
    help="Time in seconds (default: the profile's frame, e.g. the middle one for SSPL).",
)
@click.option("--from", "start", type=float, help=".mp4 output: first time (s).")
@click.option("--to", "end", type=float, help=".mp4 output: last time (s).")
@click.option("--fps", type=float, default=2.0, help=".mp4 output: maps per second.")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="FILE.png (one frame) or FILE.mp4 (an overlay video over --from/--to).",
)
@click.option("--alpha", type=float, default=0.5, help="Opacity of the heat map.")
@click.option("--device", default="auto", help="cpu | cuda | cuda:N | auto.")
@click.option(
    "--save-map",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also save the raw map(s) as .npy.",
)
@model_set_option
@no_progress_option
def localize(ckpt, video, at, start, end, fps, out, alpha, device, save_map, sets) -> None:  # fmt: skip
    """Run a trained model on VIDEO and draw its localisation map over the frame.

    The picture has the video's own resolution, the map's peak (white dot),
    the time and a colour bar (red high, blue low).

    \b
    Examples:
      avmodels localize --ckpt runs/sspl/best.pt --video street.mp4 --at 4.2 --out street.png
      avmodels localize --ckpt runs/sspl/best.pt --video street.mp4 --from 0 --to 8 \\
          --fps 4 --out street.mp4
    """
    import numpy as np

    from avmodels.engine.localize import localize_video, write_mp4, write_png
    from avmodels.engine.localize_view import render, source_frame
    from avprep.errors import ConfigError

    suffix = out.suffix.lower()
    if suffix == ".png":
        if start is not None or end is not None:
            raise ConfigError("--from/--to make a video: use --out FILE.mp4")
        res = localize_video(
            ckpt, video, [at], device=device, sets=sets, progress=progress_wanted()
        )
        r = res[0]
        write_png(out, render(source_frame(video, r.time), r.map, r.time, alpha))
        if save_map:
            np.save(save_map, res[0].map)
        t = res[0].time
        click.echo(f"frame at {t:.3f} s -> {out}" if t is not None else f"-> {out}")
        return
    if suffix != ".mp4":
        raise ConfigError("--out must end in .png or .mp4")
    if start is None or end is None or end <= start or fps <= 0:
        raise ConfigError("an .mp4 needs --from < --to and --fps > 0")
    times = list(np.arange(start, end, 1.0 / fps))
    res = localize_video(ckpt, video, times, device=device, sets=sets, progress=progress_wanted())
    frames = [render(source_frame(video, r.time), r.map, r.time, alpha) for r in res]
    write_mp4(out, frames, fps, video, start)
    if save_map:
        np.save(save_map, np.stack([r.map for r in res]))
    click.echo(f"{len(res)} frames ({start:.2f}-{end:.2f} s at {fps:g}/s) -> {out}")
