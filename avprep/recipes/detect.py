"""Guess a file's format from its content.

JSON lists are told apart by their boxes (VGG-SS: a list of boxes per item,
Chaotic World: one flat box). Line lists are decided by a vote over the
first lines: each line is matched against the shapes below, the most common
shape wins, so one malformed first line does not change the verdict (it is
then reported as malformed). ``dataset`` limits the candidates.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from itertools import islice

from avprep.errors import InputError
from avprep.ids import is_safe_id
from avprep.recipes.clip_table import is_header as is_table_header
from avprep.recipes.filelists import MEDIA_EXTS
from avprep.recipes.flickr import FLICKR_ID, is_soundnet_url
from avprep.recipes.formats import FORMATS
from avprep.recipes.text import iter_lines
from avprep.recipes.vggsound import CSV_SPLITS, HTF_ID, VGGSOUND_ID, YTID

SAMPLE_LINES = 200
# fall-back when no line matches a format the dataset allows
DEFAULT_FORMAT = {
    "flickr": "flickr-ids",
    "vggsound": "vggsound-ids",
    "url": "url-list",
    "chaotic": "chaotic-json",
    None: "ids",
}
_NAME = re.compile(r"^[^/\\]+\.[A-Za-z0-9]{1,5}$")
_PATH = re.compile(r"^.+[/\\][^/\\]+\.[A-Za-z0-9]{1,5}$")


def _line_shape(line: str) -> str | None:
    if is_table_header(line):
        return "clip-table-csv"  # its header alone decides (the rows have 7 columns)
    if line.count("&") == 4 and "," not in line:
        return "ave-annotations"  # Category&VideoID&Quality&StartTime&EndTime
    if is_soundnet_url(line):
        return "soundnet-urls"
    if re.match(r"^https?://", line, re.IGNORECASE):
        return "url-list"
    if "," in line:
        if re.fullmatch(r"\d+\s*,\s*-?\d+", line):
            return "flickr-id-csv"
        fields = next(csv.reader([line]), [])
        if (
            len(fields) == 4
            and YTID.match(fields[0].strip())
            and fields[1].strip().isdigit()
            and fields[3].strip() in CSV_SPLITS
        ):
            return "vggsound-csv"
        first = fields[0].strip() if fields else ""
        if first and is_safe_id(first) and len(fields) <= 3:
            return "id-csv"  # an id list with extra columns: the first one is the id
        return None
    ext = line.rsplit(".", 1)[-1].lower() if "." in line else ""
    if ext in MEDIA_EXTS and _PATH.match(line):
        return "file-paths"
    if ext in MEDIA_EXTS and _NAME.match(line):
        return "file-names"
    if FLICKR_ID.match(line):
        return "flickr-ids"
    if VGGSOUND_ID.match(line) or HTF_ID.match(line):
        return "vggsound-ids"
    if is_safe_id(line):
        return "ids"
    return None


def _json_format(text: str, path: str) -> str:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path}: looks like JSON but line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise InputError(f"{path}:1: JSON nested too deeply to be a list of annotations") from None
    first = next((x for x in data if isinstance(x, dict)), None) if isinstance(data, list) else None
    if first is None:
        raise InputError(
            f"{path}: JSON of an unknown layout (expected a list of annotation objects)"
        )
    bbox = first.get("bbox")
    if isinstance(bbox, list) and bbox and all(isinstance(b, list) for b in bbox):
        return "vggss-json"
    if isinstance(bbox, list) and len(bbox) == 4:
        return "chaotic-json"
    file = str(first.get("file", ""))
    return "vggss-json" if VGGSOUND_ID.match(file) else "chaotic-json"


def detect_format(text: str, dataset: str | None = None, path: str = "<input>") -> str:
    """The name of the format ``text`` is in (see :data:`avprep.recipes.FORMATS`)."""
    head = text.lstrip("\ufeff \t\r\n")
    if head.startswith(("[", "{")):
        return _json_format(text, path)
    votes: Counter[str] = Counter()
    for _, line in islice(iter_lines(text), SAMPLE_LINES):
        shape = _line_shape(line)
        if shape is None:
            continue
        if dataset == "url" and shape == "soundnet-urls":
            shape = "url-list"  # the URL parser reads SoundNet lines too
        if dataset is None or dataset in FORMATS.get(shape).datasets:
            votes[shape] += 1
    if not votes:
        return DEFAULT_FORMAT[dataset]
    ranked = votes.most_common()
    # bare Flickr and VGGSound ids mixed in one list: read both with the generic parser
    kinds = {k for k, _ in ranked}
    if dataset is None and {"flickr-ids", "vggsound-ids"} <= kinds:
        return "ids"
    return ranked[0][0]
