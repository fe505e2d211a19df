"""The benchmarks whose ground truth avprep reads: one registry, ``--benchmark``'s choices.

Each :class:`Benchmark` says how its boxes make the ground-truth map
(``gt_kind``: Flickr-SoundNet's three annotators by consensus, a pixel in one
box weighing 0.5 and in two or more 1; VGG-SS and Chaotic World the union) and
how a path is read (``read(path, bad_boxes)``):

- ``vggss``: the VGG-SS JSON, a folder of SSL-TIE XML (``avprep convert
  vggss-xml``) or one such XML;
- ``flickr``: a folder of Flickr-SoundNet XML (one per clip), one such XML, or the
  JSON made by ``avprep convert flickr-json``;
- ``chaotic``: the Chaotic World test JSON (pixel boxes in 320x180).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from avprep.annotations.chaotic import read_chaotic_json
from avprep.annotations.flickr import read_flickr_dir, read_flickr_xml
from avprep.annotations.model import CONSENSUS, UNION, Annotation
from avprep.annotations.vggss import read_vggss_json, read_vggss_xml, read_vggss_xml_dir
from avprep.errors import AnnotationError
from avprep.registry import Registry

Reader = Callable[[Path, str], dict[str, Annotation]]


@dataclass(frozen=True)
class Benchmark:
    name: str
    gt_kind: str  # CONSENSUS | UNION
    read: Reader  # (an existing path, bad-box policy) -> {clip_id: Annotation}


def _one(ann: Annotation) -> dict[str, Annotation]:
    return {ann.clip_id: ann}


def _read_vggss(path: Path, bad_boxes: str) -> dict[str, Annotation]:
    if path.is_dir():
        return read_vggss_xml_dir(path, bad_boxes=bad_boxes)
    if path.suffix.lower() == ".xml":
        return _one(read_vggss_xml(path, bad_boxes=bad_boxes))
    return read_vggss_json(path, bad_boxes=bad_boxes)


def _read_flickr(path: Path, bad_boxes: str) -> dict[str, Annotation]:
    if path.is_dir():
        return read_flickr_dir(path, bad_boxes=bad_boxes)
    if path.suffix.lower() == ".xml":
        return _one(read_flickr_xml(path, bad_boxes=bad_boxes))
    return read_vggss_json(path, benchmark="flickr", bad_boxes=bad_boxes)


def _read_chaotic(path: Path, bad_boxes: str) -> dict[str, Annotation]:
    if path.is_dir():
        raise AnnotationError(f"{path}: Chaotic World annotations are one JSON file")
    return read_chaotic_json(path, bad_boxes=bad_boxes)


BENCHMARKS: Registry[Benchmark] = Registry("benchmark")
BENCHMARKS.add("vggss", Benchmark("vggss", UNION, _read_vggss))
BENCHMARKS.add("flickr", Benchmark("flickr", CONSENSUS, _read_flickr))
BENCHMARKS.add("chaotic", Benchmark("chaotic", UNION, _read_chaotic))
