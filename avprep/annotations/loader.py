"""One entry point for every benchmark's annotations: :func:`load_annotations`."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from avprep.annotations.benchmarks import BENCHMARKS
from avprep.annotations.model import DEFAULT_BAD_BOXES, Annotation, check_policy
from avprep.errors import AnnotationError

log = logging.getLogger(__name__)


def load_annotations(
    path: str | os.PathLike, benchmark: str, *, bad_boxes: str = DEFAULT_BAD_BOXES
) -> dict[str, Annotation]:
    """Read a benchmark's ground truth into ``{clip_id: Annotation}`` (file order).

    ``benchmark`` picks the ground-truth rule and the reader
    (:data:`avprep.annotations.benchmarks.BENCHMARKS`: ``vggss``, ``flickr``,
    ``chaotic``).

    ``bad_boxes`` (``drop`` | ``clip`` | ``keep``) decides what happens to defective
    boxes; each defect is kept in ``Annotation.defects``.
    """
    bench = BENCHMARKS.get(benchmark)  # an unknown name: ConfigError listing the valid ones
    check_policy(bad_boxes)
    path = Path(path)
    if not path.exists():
        raise AnnotationError(f"annotation path not found: {path}")
    out = bench.read(path, bad_boxes)
    if not out:
        raise AnnotationError(f"{path}: no annotations found")
    n_defects = sum(len(a.defects) for a in out.values())
    if n_defects:
        log.info(
            "%s: %d defects in %d clips (policy %s)",
            path,
            n_defects,
            sum(1 for a in out.values() if a.defects),
            bad_boxes,
        )
    return out
