"""``avprep pack-h5``: pack an extraction folder into sharded HDF5 (thin CLI layer).

The work is done by :func:`avprep.store.pack.pack`; see docs/store.md.
"""

from __future__ import annotations

from pathlib import Path

import click

from avprep.clikit import backend_options, no_progress_option
from avprep.store.layouts import layout_names
from avprep.store.native import AUDIO_ENCODINGS, COMPRESSIONS
from avprep.store.pack import FRAME_MODES


@click.command("pack-h5")
@click.option(
    "--in",
    "in_",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Extraction folder (avprep extract --out).",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (one split per folder).",
)
@click.option("--split", required=True, help="Split name, e.g. train, 10k, 144k, test.")
@click.option(
    "--shards",
    type=int,
    default=None,
    help="Number of shards K (near-equal sizes; SSPL layout: 14,400 rows a shard, its loader's rule).",
)
@click.option(
    "--rows-per-shard", type=int, default=None, help="Rows per shard (instead of --shards)."
)
@click.option(
    "--layout",
    type=click.Choice(layout_names()),
    default="native",
    show_default=True,
    help="avprep's native format, or SSPL's h5py_* files.",
)
@click.option(
    "--ids",
    "ids",
    default=None,
    metavar="LIST",
    help="Pack exactly these ids, in this order: an id-list file in any format "
    "`avprep metadata` reads, or a registry name (e.g. sspl/vggss-test-4692).",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(1),
    default=None,
    help="Writer processes (default: one per shard, at most the CPU count).",
)
@backend_options("shard writers")
@click.option(
    "--frames",
    type=click.Choice(FRAME_MODES),
    default="jpeg",
    show_default=True,
    help="Native: keep the JPEG bytes, or store decoded RGB uint8.",
)
@click.option(
    "--audio",
    type=click.Choice(AUDIO_ENCODINGS),
    default="flac",
    show_default=True,
    help="Native: audio as lossless FLAC bytes, or int16 PCM.",
)
@click.option(
    "--compression",
    type=click.Choice(COMPRESSIONS),
    default=None,
    help="Native: lossless HDF5 filter for PCM audio, spectrograms and flow [default: gzip].",
)
@click.option(
    "--modalities",
    default=None,
    help="Comma list of frame,audio,spectrogram,flow (default: all extracted).",
)
@click.option(
    "--test/--train",
    "test",
    default=None,
    help="SSPL variant (h5py_test_*/test_* keys); default: --test if the split "
    "name starts with 'test'.",
)
@click.option(
    "--virtual", is_flag=True, help="Native: also write <split>.vds.h5, all shards as one."
)
@click.option(
    "--id-list", default=None, help="SSPL: file name of the id csv written beside the files."
)
@click.option(
    "--released-profile",
    default="sspl",
    show_default=True,
    help="--in is a released test folder (frames/ + audio/, e.g. Flickr's 5k_labeled/Data): "
    "the audio window and spectrogram of this profile; frames are kept as released.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Exit non-zero if any clip was skipped or any listed id is missing.",
)
@no_progress_option
def pack_h5(strict: bool, **options) -> None:
    """Pack extracted clips into sharded HDF5.

    \b
    Examples:
      avprep pack-h5 --in extracted/ --out shards/train --split train --shards 8
      avprep pack-h5 --in extracted/ --out Flickr/144k_unlabeled --split 144k \\
          --shards 10 --layout sspl
      avprep pack-h5 --in extracted_test/ --out VGGSS/Data --split test --layout sspl \\
          --ids sspl/vggss-test-4692
      avprep pack-h5 --in SoundNet_Flickr/5k_labeled/Data --out flickr-test --split test \\
          --ids flickr/test-249

    --shards K writes K shards of near-equal size; --rows-per-shard R puts row
    r in shard r // R. SSPL's layout holds 14,400 rows a shard whatever N is
    (its loader opens shard index // 14400 + 1) and prints the --num_train to
    set. Clips that failed extraction are
    skipped and listed in OUT/index.json. A rerun keeps complete shards.
    """
    from avprep.clikit import progress_wanted
    from avprep.store.pack_h5 import check_strict
    from avprep.store.pack_h5 import pack_h5 as pack_folder

    result = pack_folder(note=click.echo, progress=progress_wanted(), **options)
    click.echo(result.summary())
    if strict:
        check_strict(result)
