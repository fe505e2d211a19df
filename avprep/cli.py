"""The ``avprep`` command line: a thin layer over the library.

Each subcommand lives in ``avprep/commands/<name>.py`` and is imported only
when used.
"""

from __future__ import annotations

import click

from avprep import __version__
from avprep.clikit import LazyGroup, run_cli, setup_logging

COMMANDS = {
    "doctor": "avprep.commands.doctor:doctor",
    "metadata": "avprep.commands.metadata:metadata",
    "download": "avprep.commands.download:download",
    "ingest": "avprep.commands.ingest:ingest",
    "extract": "avprep.commands.extract:extract",
    "pack-h5": "avprep.commands.pack:pack_h5",
    "verify": "avprep.commands.verify:verify",
    "convert": "avprep.commands.convert:convert",
    "synth": "avprep.commands.synth:synth",
    "run": "avprep.commands.run:run",
    "chaotic-world": "avprep.commands.chaotic:chaotic_world",
    "htf-test-times": "avprep.commands.htf:htf_test_times",
    "pairs": "avprep.commands.pairs:pairs",
    "audioset-instrument": "avprep.commands.audioset_instrument:audioset_instrument",
}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="avprep")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def cli(verbose: int, debug: bool) -> None:
    """Prepare audio-visual data for sound source localisation.

    \b
    Typical chain:
      avprep metadata fetch vggss/test-5158
      avprep download --ids ids.txt --out videos/
      avprep extract --in videos/ --out extracted/ --profile sspl
      avprep pack-h5 --in extracted/ --out shards/ --split train
      avprep verify shards/
    """
    setup_logging(verbose, debug)


main = run_cli(cli, "avprep")
