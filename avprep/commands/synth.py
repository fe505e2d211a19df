"""``avprep synth``: generate the SynthAV benchmark (see avprep.synth)."""

from __future__ import annotations

import re

import click

from avprep.clikit import backend_options, no_progress_option
from avprep.errors import ConfigError, MediaError


def _pair(text: str, option: str, cast=int, sep: str = "x") -> tuple:
    m = re.fullmatch(rf"\s*([0-9.]+)\s*{sep}\s*([0-9.]+)\s*", text)
    if not m:
        raise ConfigError(f"{option} expects A{sep}B (got {text!r})")
    try:
        return cast(m.group(1)), cast(m.group(2))
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}") from exc


def _range(text: str, option: str, cast=int) -> tuple:
    if re.fullmatch(r"\s*[0-9.]+\s*", text):
        v = cast(text.strip())
        return v, v
    return _pair(text, option, cast, sep="-")


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
    from avprep.synth import SynthConfig, generate

    cfg = SynthConfig(
        clips=clips,
        seed=seed,
        sources=sources,
        classes=classes,
        size=_pair(size, "--size"),
        seconds=seconds,
        fps=fps,
        sample_rate=sample_rate,
        objects=_range(objects, "--objects"),
        object_scale=_range(object_scale, "--object-scale", float),
        object_aspect=_range(object_aspect, "--object-aspect", float),
        snr_db=_range(snr, "--snr", float),
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        prefix=prefix,
    ).validate()
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1 (got {jobs})")
    from avprep.clikit import progress_wanted

    result = generate(
        cfg, out, jobs=jobs, backend=backend, scheduler=scheduler, progress=progress_wanted()
    )
    splits = ", ".join(f"{k} {v}" for k, v in result.splits.items())
    click.echo(
        f"SynthAV in {result.out}: {result.generated} generated, {result.skipped} already there, "
        f"{len(result.failed)} failed in {result.seconds:.1f} s\n"
        f"  {cfg.clips} clips ({splits}), {cfg.classes} classes, {cfg.sources} source(s), "
        f"{cfg.width}x{cfg.height} at {cfg.fps} fps, {cfg.seconds:g} s, key frame "
        f"{cfg.key_frame} (t = {cfg.key_time:.3f} s)\n"
        f"  ground truth: {result.out}/annotations/vggss.json, {result.out}/annotations/xml/"
    )
    if result.failed:
        clip, reason = next(iter(result.failed.items()))
        raise MediaError(
            f"{len(result.failed)} clip(s) failed (first: {clip}: {reason}); "
            "rerun the same command to retry them"
        )
