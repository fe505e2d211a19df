"""``avprep extract``: key frames, audio clips, spectrograms and flow from videos."""

from __future__ import annotations

import click

from avprep.clikit import backend_options
from avprep.errors import MediaError
from avprep.profiles import (
    AUDIO_WINDOWS,
    FLOWS,
    INTERPOLATIONS,
    PROFILES,
    RESIZES,
    SEEKS,
    SHORT_AUDIO,
    SPLITS,
    WINDOW_OUTSIDE,
)
from avprep.spectrogram import SPECTROGRAMS


def _or_none(names) -> list[str]:
    """A registry's names plus ``none`` (the profile stores no such modality)."""
    return [*names, "none"]


def _sample_rate(value: str | None) -> int | str | None:
    if value is None or value == "native":
        return value
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a rate in Hz or 'native'") from None


@click.command()
@click.option(
    "--in",
    "in_path",
    required=True,
    type=click.Path(exists=True),
    help="Download folder (with manifest.jsonl), a manifest file, or a folder of videos.",
)
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Output folder.")
@click.option(
    "--profile",
    default="sspl",
    show_default=True,
    type=click.Choice(PROFILES.names()),
    help="Named preprocessing bundle (docs/extraction.md has the table).",
)
@click.option(
    "--split",
    type=click.Choice(SPLITS),
    default="train",
    show_default=True,
    help="test: the profile's test variant when its paper cut test data otherwise "
    "(ssltie -> ssltie-vggss-test, ssltie-flickr -> ssltie-flickr-test, htf -> htf-test).",
)
@click.option("--jobs", "-j", default=1, show_default=True, type=click.IntRange(1), help="Workers.")
@backend_options()
@click.option("--frame-at", default=None, help="middle | SECONDS | fps:N")
@click.option(
    "--seek",
    default=None,
    type=click.Choice(SEEKS),
    help="exact (default: the frame at that time) or keyframe (the keyframe before it: faster).",
)
@click.option("--image-size", default=None, type=click.IntRange(8), help="Output size (pixels).")
@click.option(
    "--resize",
    default=None,
    type=click.Choice(RESIZES),
    help="squash (SxS, aspect not kept), short-side (aspect kept), none [default: profile].",
)
@click.option(
    "--interpolation",
    default=None,
    type=click.Choice(INTERPOLATIONS),
    help="OpenCV interpolation of the resize [default: profile].",
)
@click.option(
    "--jpeg-quality",
    default=None,
    type=click.IntRange(1, 100),
    help="OpenCV JPEG quality of the stored frames [default: 95].",
)
@click.option("--audio-seconds", default=None, type=float, help="Length of the audio window.")
@click.option(
    "--audio-window",
    default=None,
    type=click.Choice(AUDIO_WINDOWS),
    help="Where the audio window sits: centre of the track, at-frame, start [default: profile].",
)
@click.option(
    "--short-audio",
    default=None,
    type=click.Choice(SHORT_AUDIO),
    help="A track shorter than the window: tile-centre, tile-start or pad with zeros "
    "[default: profile].",
)
@click.option("--sample-rate", default=None, help="Hz, or 'native' to keep the source rate.")
@click.option(
    "--spectrogram",
    default=None,
    type=click.Choice(_or_none(SPECTROGRAMS.names())),
    help="Spectrogram to store (docs/extraction.md), or none.",
)
@click.option(
    "--flow",
    default=None,
    type=click.Choice(_or_none(FLOWS)),
    help="Optical flow to the next frame, or none.",
)
@click.option(
    "--flow-legacy-htf", is_flag=True, default=None, help="Also write HTF's 8-bit JPEG flow."
)
@click.option(
    "--times",
    "times_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="CSV clip_id,video,time|frame: clips at annotated times/frames of the videos "
    "(frame: 1-based, as ffmpeg -start_number 1 numbers them); one decode per video.",
)
@click.option(
    "--window-outside",
    default=None,
    type=click.Choice(WINDOW_OUTSIDE),
    help="--times: an audio window leaving the track is shifted inside (default), "
    "skipped (failed clip) or padded with silence.",
)
@click.option("--limit", default=None, type=click.IntRange(0), help="Only the first N clips.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def extract(
    in_path: str,
    out_dir: str,
    profile: str,
    split: str,
    jobs: int,
    backend: str,
    scheduler: str | None,
    frame_at: str | None,
    seek: str | None,
    image_size: int | None,
    resize: str | None,
    interpolation: str | None,
    jpeg_quality: int | None,
    audio_seconds: float | None,
    audio_window: str | None,
    short_audio: str | None,
    sample_rate: str | None,
    spectrogram: str | None,
    flow: str | None,
    flow_legacy_htf: bool | None,
    times_file: str | None,
    window_outside: str | None,
    limit: int | None,
    no_progress: bool,
) -> None:
    """Extract per-clip inputs: frames/, audio/, spectrograms/<name>/, flow/.

    \b
    Examples:
      avprep extract --in videos/ --out extracted/ --profile sspl --jobs 8
      avprep extract --in videos/manifest.jsonl --out htf/ --profile htf --flow dis
      avprep extract --in flickr_test/ --out htf_test/ --profile htf --split test
      avprep extract --in videos/ --out x/ --profile lvs --backend dask \\
          --scheduler tcp://10.0.0.5:8786
      avprep extract --in videos/ --out cw/ --profile chaotic --times times.csv

    A rerun resumes: clips whose outputs are recorded and present are skipped.
    """
    from avprep.profiles import get_profile
    from avprep.stages.extract import run_extract

    prof = get_profile(
        profile,
        split=split,
        frame_at=frame_at,
        seek=seek,
        image_size=image_size,
        resize=resize,
        interpolation=interpolation,
        jpeg_quality=jpeg_quality,
        audio_seconds=audio_seconds,
        audio_window=audio_window,
        short_audio=short_audio,
        sample_rate=_sample_rate(sample_rate),
        spectrogram=spectrogram,
        flow=flow,
        flow_legacy_htf=flow_legacy_htf or None,
        window_outside=window_outside,
    )
    summary = run_extract(
        in_path,
        out_dir,
        prof,
        jobs=jobs,
        backend=backend,
        scheduler=scheduler,
        limit=limit,
        progress=not no_progress,
        times=times_file,
    )
    click.echo(summary.text())
    if summary.failed and not summary.ok and not summary.already_done:
        raise MediaError(
            f"all {summary.failed} clip(s) failed; reasons are in {out_dir}/manifest.jsonl"
        )
