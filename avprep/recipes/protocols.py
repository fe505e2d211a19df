"""Metadata of the newer evaluation protocols (SLAVC's extended sets, SSLalignment's JSONs).

``silent-pairs-csv``
    SLAVC's ``{flickr,vggss}_test_plus_silent.csv``: header ``video,audio,label``
    and one ``non-sounding`` row per sample (a test frame paired with another
    clip's audio). The clip table lists the *videos* (the frames to read);
    the pairs themselves are read by ``avmodels.metrics.extended``.
``sslalign-json``
    SSLalignment's ``synthetic3240_{bbox,seg}.json`` (IS3), ``s4_/ms3_{box,seg}.json``
    (AVSBench frames) and ``vpo_{ss,ms}_{bbox,seg}.json``: a list of
    ``{"image", "audio", "gt_box"}`` (a box in 224 px, or a mask path). The
    clip id is the image's file stem.
``avsbench-csv``
    ACL-SSL's ``avs1_{s4,ms3}_test.csv``: ``<frame id>,<category>`` rows.
"""

from __future__ import annotations

import csv
import io

from avprep.ids import is_safe_id
from avprep.recipes.filelists import id_row
from avprep.recipes.formats import register
from avprep.recipes.jsonlist import load_list, numbered
from avprep.recipes.table import BadLine, Collector, Row
from avprep.recipes.text import iter_lines


def _pair_row(line: str, dataset: str | None) -> Row:
    cells = next(csv.reader(io.StringIO(line)))
    if len(cells) < 3:
        raise BadLine(f"expected video,audio,label; got {line[:80]!r}")
    video, audio, label = (c.strip() for c in cells[:3])
    if label != "non-sounding":
        raise BadLine(f"label {label[:40]!r} is not 'non-sounding'")
    id_row(audio, dataset)  # the audio id must be valid too
    return id_row(video, dataset)._replace(label=label, split="test")


@register(
    "silent-pairs-csv",
    ("flickr", "vggsound"),
    "SLAVC extended-set pairs: 'video,audio,label' rows labelled non-sounding (header optional)",
    "10000130166,10437048305,non-sounding",
)
def parse_silent_pairs(text: str, col: Collector, dataset: str | None) -> None:
    lines = (
        (n, line) for n, line in iter_lines(text) if line.replace(" ", "") != "video,audio,label"
    )
    col.feed(lines, lambda line: _pair_row(line, dataset))


def other_row(raw: str) -> Row:
    """An id of a corpus avprep does not download (IS3, AVSBench, VPO), kept verbatim."""
    if not is_safe_id(raw):
        raise BadLine(
            f"unsafe clip id {raw[:80]!r}: ids may hold only letters, digits, '_', '-' and "
            "inner dots (no '/', '..', spaces or shell characters)"
        )
    return Row(raw, "other")


def _stem(path: object) -> str:
    if not isinstance(path, str) or not path:
        raise BadLine("missing 'image' (a path)")
    return path.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def _sslalign_row(item: object, dataset: str | None) -> Row:
    if not isinstance(item, dict):
        raise BadLine(f"expected an object with 'image', got {type(item).__name__}")
    gt = item.get("gt_box")
    if not (isinstance(gt, str) or (isinstance(gt, list) and len(gt) == 4)):
        raise BadLine("'gt_box' must be a mask path or [x1, y1, x2, y2]")
    return other_row(_stem(item.get("image")))._replace(split="test")


@register(
    "sslalign-json",
    ("is3", "avsbench", "vpo"),
    'SSLalignment protocol JSON: [{"image", "audio", "gt_box": [x1,y1,x2,y2] (224 px) or mask}]',
    '[{"image": "/d/accordion_female_10438_accordion.jpg", "audio": "/d/a.wav", '
    '"gt_box": [47.0, 99.0, 154.0, 185.0]}]',
    unit="item",
)
def parse_sslalign_json(text: str, col: Collector, dataset: str | None) -> None:
    col.feed(numbered(load_list(text, col.path)), lambda item: _sslalign_row(item, dataset))


def _avs_row(line: str, dataset: str | None) -> Row:
    frame, sep, label = line.partition(",")
    if not sep or not frame.strip():
        raise BadLine(f"expected '<frame id>,<category>': {line[:80]!r}")
    return other_row(frame.strip())._replace(label=label.strip() or None, split="test")


@register(
    "avsbench-csv",
    ("avsbench",),
    "AVSBench frame list (ACL-SSL): '<video>_<n>,<category>' rows",
    "0d9u2CymIxc_1,helicopter",
)
def parse_avsbench_csv(text: str, col: Collector, dataset: str | None) -> None:
    col.feed(iter_lines(text), lambda line: _avs_row(line, dataset))
