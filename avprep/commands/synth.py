"""``avprep synth``: generate the SynthAV benchmark (see avprep.synth)."""

from __future__ import annotations

import click

from avprep.clikit import backend_options, no_progress_option


@click.command()
@click.option(
    "--out", "out", required=True, type=click.Path(file_okay=False), help="Output folder."
)
@click.option("--clips", type=int, required=True, help="Number of clips.")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same set)."
)
@click.option("--sources", type=click.IntRange(1, 2), default=1, show_default=True,
              help="Sounding objects per clip.")  # fmt: skip
@click.option("--classes", type=int, default=5, show_default=True,
              help="Number K of visual classes (2..8).")  # fmt: skip
@click.option("--objects", default="2-4", show_default=True,
              help="Objects per clip, MIN-MAX or N (MIN is raised to sources + 1).")  # fmt: skip
@click.option("--size", default="320x240", show_default=True, help="Frame size WxH (even).")
@click.option("--seconds", type=float, default=4.0, show_default=True, help="Clip length.")
@click.option("--fps", type=int, default=25, show_default=True, help="Frame rate.")
@click.option("--sample-rate", type=int, default=22050, show_default=True, help="Audio rate (Hz).")
@click.option("--object-scale", default="0.5-0.65", show_default=True,
              help="sqrt(box area / frame area) of each object, MIN-MAX.")  # fmt: skip
@click.option("--object-aspect", default="0.5-2", show_default=True,
              help="Box elongation (w/W)/(h/H), log-uniform in MIN-MAX.")  # fmt: skip
@click.option("--snr", default="0-20", show_default=True, help="Signal-to-noise range in dB.")
@click.option(
    "--val-fraction",
    type=float,
    default=0.1,
    show_default=True,
    help="Fraction of the clips in the val split (splits/val.txt).",
)
@click.option(
    "--test-fraction",
    type=float,
    default=0.2,
    show_default=True,
    help="Fraction of the clips in the test split (splits/test.txt).",
)
@click.option("--prefix", default="synthav", show_default=True, help="Clip id prefix.")
@click.option(
    "--jobs", "-j", type=click.IntRange(1), default=1, show_default=True, help="Parallel workers."
)
@backend_options()
@no_progress_option
def synth(
    out: str,
    clips: int,
    seed: int,
    sources: int,
    classes: int,
    objects: str,
    size: str,
    seconds: float,
    fps: int,
    sample_rate: int,
    object_scale: str,
    object_aspect: str,
    snr: str,
    val_fraction: float,
    test_fraction: float,
    prefix: str,
    jobs: int,
    backend: str,
    scheduler: str | None,
) -> None:
    """Generate SynthAV: videos with known sound-source boxes.

    \b
    Writes OUT/videos/<id>.mp4 (H.264 + AAC), OUT/annotations/vggss.json,
    OUT/annotations/xml/<id>.xml (Flickr style), OUT/splits/{train,val,test}.txt
    and OUT/synthav.json. Rerunning resumes: existing videos are kept.

    \b
    Example:
      avprep synth --out synthav/ --clips 300 --jobs 2
    """
    from avprep.clikit import progress_wanted
    from avprep.steps import synth as run_synth

    click.echo(
        run_synth(
            out=out, clips=clips, seed=seed, sources=sources, classes=classes, objects=objects,
            size=size, seconds=seconds, fps=fps, sample_rate=sample_rate,
            object_scale=object_scale, object_aspect=object_aspect, snr=snr,
            val_fraction=val_fraction, test_fraction=test_fraction, prefix=prefix, jobs=jobs,
            backend=backend, scheduler=scheduler, progress=progress_wanted(),
        )
    )  # fmt: skip
