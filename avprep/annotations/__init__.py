"""Ground-truth annotations of the sound-localisation benchmarks.

Readers for VGG-SS (JSON, and SSL-TIE's per-clip XML), Flickr-SoundNet (XML,
three annotators) and Chaotic World (JSON, pixel boxes) parse into one box
model (:class:`Box`, :class:`Annotation`); defects are detected and handled by a
bad-box policy; ground-truth maps are drawn at any size by our pixel rule or by
each original's (used by the metric presets in ``avmodels.metrics``).

    >>> from avprep.annotations import load_annotations, gt_map
    >>> anns = load_annotations("vggss.json", "vggss")          # doctest: +SKIP
    >>> g = gt_map(anns["zpWuikVorYg_000032"], size=224)         # doctest: +SKIP
"""

from avprep.annotations.benchmarks import BENCHMARKS
from avprep.annotations.chaotic import CHAOTIC_SIZE, read_chaotic_json
from avprep.annotations.convert import ConvertResult, flickr_xml_to_json, vggss_json_to_xml
from avprep.annotations.flickr import FLICKR_SIZE, read_flickr_dir, read_flickr_xml
from avprep.annotations.gtmap import (
    DEFAULT_PIXEL_RULE,
    PIXEL_RULES,
    box_pixel_ranges,
    gt_map,
    gt_map_x2,
)
from avprep.annotations.idlist import read_ids
from avprep.annotations.loader import load_annotations
from avprep.annotations.model import (
    BAD_BOX_POLICIES,
    DEFAULT_BAD_BOXES,
    DEFECT_KINDS,
    SENTINEL,
    Annotation,
    Box,
    Defect,
    DefectSummary,
    apply_policy,
    summarise_defects,
)
from avprep.annotations.vggss import (
    dumps_json_entries,
    read_vggss_json,
    read_vggss_xml,
    read_vggss_xml_dir,
    to_json_entries,
    vggss_xml_bytes,
)

__all__ = [
    "BAD_BOX_POLICIES",
    "BENCHMARKS",
    "CHAOTIC_SIZE",
    "DEFAULT_BAD_BOXES",
    "DEFAULT_PIXEL_RULE",
    "DEFECT_KINDS",
    "FLICKR_SIZE",
    "PIXEL_RULES",
    "SENTINEL",
    "Annotation",
    "ConvertResult",
    "Box",
    "Defect",
    "DefectSummary",
    "apply_policy",
    "box_pixel_ranges",
    "dumps_json_entries",
    "flickr_xml_to_json",
    "gt_map",
    "gt_map_x2",
    "load_annotations",
    "read_chaotic_json",
    "read_flickr_dir",
    "read_flickr_xml",
    "read_ids",
    "read_vggss_json",
    "read_vggss_xml",
    "read_vggss_xml_dir",
    "summarise_defects",
    "to_json_entries",
    "vggss_json_to_xml",
    "vggss_xml_bytes",
]
