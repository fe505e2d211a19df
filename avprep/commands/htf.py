"""``avprep htf-test-times``: Hear-The-Flow's annotated Flickr test frames as a --times file."""

from __future__ import annotations

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
    from avprep.steps import htf_test_times as run

    click.echo(run(videos=videos, out=out_path, pickle=pickle_src))
