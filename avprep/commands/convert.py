"""``avprep convert``: annotation format conversions (VGG-SS JSON -> XML, Flickr XML -> JSON)."""

from __future__ import annotations

import click

from avprep.annotations.model import BAD_BOX_POLICIES, DEFAULT_BAD_BOXES

_BAD_BOXES_HELP = (
    "What to do with defective boxes (sentinel -2.88e16 coordinates, no area, outside "
    "the frame): drop them; clip coordinates into the frame (boxes with a missing "
    "coordinate or no area are still dropped); or keep them as they are. Every defect "
    "is reported."
)


def _bad_boxes_option(f):
    return click.option(
        "--bad-boxes",
        type=click.Choice(BAD_BOX_POLICIES),
        default=DEFAULT_BAD_BOXES,
        show_default=True,
        help=_BAD_BOXES_HELP,
    )(f)


def _ids_option(f):
    return click.option(
        "--ids",
        "ids_spec",
        default=None,
        metavar="LIST",
        help="Only these clips: a list file (one id a line, or the first CSV column; "
        "suffixes like .jpg are removed) or comma-separated ids.",
    )(f)


def _report_option(f):
    return click.option(
        "--report",
        type=click.Path(dir_okay=False),
        default=None,
        help="Also write every defect found as JSON to this file.",
    )(f)


def _print_summary(result, what: str) -> None:
    for line in result.defects.lines():
        click.echo(line)
    click.echo(f"{what}: {result.written} written, {result.unchanged} unchanged -> {result.output}")


@click.group()
def convert() -> None:
    """Convert ground-truth annotations between the formats the papers read.

    \b
    Examples:
      avprep convert vggss-xml --help
      avprep convert flickr-json --help
    """


@convert.command("vggss-xml")
@click.option(
    "--in",
    "--json",
    "json_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The VGG-SS JSON (vggss.json / vggss_test_5158.json); --json is its old name.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for one <clip>.xml per clip.",
)
@_ids_option
@_bad_boxes_option
@_report_option
def vggss_xml(json_path, out_dir, ids_spec, bad_boxes, report) -> None:
    """VGG-SS JSON -> one XML per clip in the format SSL-TIE reads.

    \b
    Example:
      avprep convert vggss-xml --in vggss.json --out VGGSS/anno --ids test_vggss_4911.txt
    """
    from avprep.annotations.convert import vggss_json_to_xml
    from avprep.annotations.idlist import read_ids

    ids = read_ids(ids_spec) if ids_spec else None
    result = vggss_json_to_xml(json_path, out_dir, ids=ids, bad_boxes=bad_boxes, report=report)
    _print_summary(result, "xml files")


@convert.command("flickr-json")
@click.option(
    "--xml-dir",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Folder of Flickr-SoundNet <id>.xml annotation files.",
)
@click.option(
    "--out",
    "out_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="JSON file to write (VGG-SS form, with an 'annotator' list per clip).",
)
@_ids_option
@_bad_boxes_option
@_report_option
def flickr_json(xml_dir, out_file, ids_spec, bad_boxes, report) -> None:
    """Flickr-SoundNet XML folder -> one VGG-SS-style JSON (boxes normalised by 256).

    \b
    Example:
      avprep convert flickr-json --xml-dir Flickr/Annotations --out flickr_test.json
    """
    from avprep.annotations.convert import flickr_xml_to_json
    from avprep.annotations.idlist import read_ids

    ids = read_ids(ids_spec) if ids_spec else None
    result = flickr_xml_to_json(xml_dir, out_file, ids=ids, bad_boxes=bad_boxes, report=report)
    _print_summary(result, "json")
