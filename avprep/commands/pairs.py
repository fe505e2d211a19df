"""``avprep pairs``: split 1 fps extractions into (frame, its own audio) clips."""

from __future__ import annotations

import click

from avprep.frame_pairs import WINDOWS


@click.command("pairs")
@click.option(
    "--in",
    "in_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="An `avprep extract --frame-at fps:N` output folder.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for the pairs (an extraction folder pack-h5 reads).",
)
@click.option("--seconds", default=1.0, show_default=True, type=float, help="Audio per frame.")
@click.option(
    "--window",
    type=click.Choice(WINDOWS),
    default="aligned",
    show_default=True,
    help="aligned: frame i gets [floor(t_i), +seconds) (Multi-Source); centred: t_i -+ s/2.",
)
@click.option(
    "--ids",
    "ids_spec",
    metavar="LIST",
    help="Only these clips: an id list in any format `avprep metadata` reads (AVE's "
    "trainSet.txt / valSet.txt / testSet.txt too) or a registry name.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def pairs(
    in_dir: str, out_dir: str, seconds: float, window: str, ids_spec: str | None, no_progress: bool
) -> None:
    """Turn an `--frame-at fps:1` extraction into one clip per (frame, audio) pair.

    Each pair becomes clip `<id>.tNN` (NN = the frame's index) with the frame,
    its own audio window and the profile's spectrogram of it; pack the output
    folder with `avprep pack-h5` as any extraction. Resumable.

    \b
    Example (AVE, 10 s clips, Multi-Source's 1 s pairs):
      avprep extract --in AVE/ --out ave-x/ --profile mssl --frame-at fps:1 \\
          --audio-window start --audio-seconds 10
      avprep pairs --in ave-x/ --out ave-pairs/
      avprep pack-h5 --in ave-pairs/ --out ave-h5/ --split train
      avprep pairs --in ave-x/ --out ave-test-pairs/ --ids AVE_Dataset/testSet.txt
    """
    from avprep.frame_pairs import split_pairs
    from avprep.idspec import read_ids

    ids = read_ids(ids_spec) if ids_spec else None
    c = split_pairs(
        in_dir, out_dir, seconds=seconds, window=window, progress=not no_progress, ids=ids
    )
    click.echo(
        f"{c['clips']} clips -> {c['pairs']} pairs written, {c['kept']} kept from an earlier "
        f"run, {c['failed']} pairs failed, {c['skipped_clips']} clips without sampled frames"
    )
    if c.get("not_extracted"):
        click.echo(
            f"{c['not_extracted']} listed clips are not in the extraction (not extracted or failed)"
        )
    if c["pairs"] + c["kept"] == 0:
        raise click.ClickException("no pair was written (see the messages above)")
