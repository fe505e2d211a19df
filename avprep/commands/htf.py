"""``avprep htf-test-times``: Hear-The-Flow's annotated Flickr test frames as a --times file."""

from __future__ import annotations

import csv
import io

import click


@click.command("htf-test-times")
@click.option(
    "--pickle",
    "pickle_src",
    default="htf/imagetoframe",
    show_default=True,
    help="imagetoframe pickle: a path or a registry name (htf/imagetoframe, "
    "htf/imagetoframe-expanded).",
)
@click.option(
    "--videos",
    required=True,
    type=click.Path(exists=True),
    help="The downloaded Flickr test videos (folder or download manifest).",
)
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="CSV.")
def htf_test_times(pickle_src: str, videos: str, out_path: str) -> None:
    """Write clip_id,video,frame,time for `avprep extract --times` as HTF takes them.

    The frame: element 0 of the pickle's list (1-based), the one before at the
    video's end; the audio: centred on floor(decoded seconds) / 2 (HTF's test
    loader). The pickle is read with a restricted unpickler.

    \b
    Example:
      avprep htf-test-times --videos flickr-test/videos --out htf-times.csv
      avprep extract --in flickr-test/videos --out htf/ --profile htf --times htf-times.csv
    """
    from avprep.annotations.htf_frames import read_imagetoframe, times_rows
    from avprep.atomic import write_text
    from avprep.recipes import resolve_source
    from avprep.stages.extract import find_sources

    path, _ = resolve_source(pickle_src)
    frames = read_imagetoframe(path)
    sources, _ = find_sources(videos)
    rows, problems = times_rows(frames, {s.clip_id: s.path for s in sources})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["clip_id", "video", "frame", "time"])
    w.writerows(rows)
    write_text(out_path, buf.getvalue())
    click.echo(f"{len(rows)} of {len(frames)} annotated clips written to {out_path}")
    if problems:
        click.echo(f"{len(problems)} left out, e.g.:")
        for p in problems[:5]:
            click.echo(f"  {p}")
