"""Reference maps every localisation result should be read against.

- :func:`centre_prior`: a centred Gaussian, the same for every clip. Photos
  and videos put their subject near the centre, so this map scores well above
  zero on real benchmarks; a model that does not beat it has not learned to
  use the sound.
- :func:`random_maps`: seeded uniform noise on a coarse grid (like a model's
  14x14 map), a floor.
- :func:`ceiling`: the ground truth itself as a map. Median binarisation (the
  field's cIoU rule) keeps about half the frame, so even a perfect map scores
  IoU of about ``box area / half the frame`` when the boxes cover less than half
  of it. The default ``mode="soft"`` ranks pixels by the ground truth first
  (box pixels highest) and by distance to the boxes next, so the kept half is
  the boxes plus their nearest surroundings: the best any tie-free map can do.
  ``mode="binary"`` is the bare 0/1 (Flickr: 0/0.5/1) map; its score depends on
  how a preset breaks ties at the median (LVS's strict ``>`` keeps exactly the
  boxes and scores 1.0), which is why it is not the default.

All functions return ``dict[clip_id -> float32 array]`` for
``avmodels.metrics.evaluate``. Ground truth is read from annotation objects
(``avprep.annotations.Annotation``, rasterised by ``avprep.annotations.gt_map``
with the chosen pixel rule), from VGG-SS style entries (``{"bbox": [...]}``) or
from plain lists of normalised ``[xmin, ymin, xmax, ymax]`` boxes (a union).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np

GRID = 224  # the evaluation grid of every original
CONSENSUS = "consensus"
UNION = "union"
MODES = ("soft", "binary")


def centre_prior(
    clip_ids: Iterable[str], size: int = GRID, sigma: float = 0.25
) -> dict[str, np.ndarray]:
    """A centred isotropic Gaussian (``sigma`` as a fraction of the side) for every clip."""
    ax = (np.arange(size, dtype=np.float64) + 0.5) / size - 0.5
    g = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma**2)).astype(np.float32)
    g.setflags(write=False)  # one array shared by every clip: keep it read-only
    return {cid: g for cid in clip_ids}


def random_maps(clip_ids: Iterable[str], seed: int = 0, size: int = 14) -> dict[str, np.ndarray]:
    """Uniform noise on a ``size``x``size`` grid, seeded by ``(seed, clip_id)``.

    A clip's map does not depend on which other clips are asked for.
    """
    out = {}
    for cid in clip_ids:
        rng = np.random.default_rng([seed, zlib.crc32(cid.encode("utf-8"))])
        out[cid] = rng.random((size, size), dtype=np.float32)
    return out


def _boxes_and_kind(ann: Any) -> tuple[list[Sequence[float]], str]:
    if isinstance(ann, Mapping) and "bbox" in ann:
        return list(ann["bbox"]), UNION
    return [list(b) for b in ann], UNION


def gt_map(boxes: Sequence[Sequence[float]], kind: str = UNION, size: int = GRID) -> np.ndarray:
    """Rasterise plain normalised boxes on a ``size`` grid (pixel ``int(size * v)``, end exclusive).

    ``union``: 1 inside any box. ``consensus`` (Flickr): each box adds 1, then
    halve and cap at 1 (a pixel in one box weighs 0.5, in two or more 1).
    Annotation objects go through ``avprep.annotations.gt_map`` instead, with
    the pixel rule of the metric preset.
    """
    g = np.zeros((size, size), np.float32)
    for b in boxes:
        x0, y0, x1, y1 = (int(size * min(max(float(v), 0.0), 1.0)) for v in b)
        if kind == CONSENSUS:
            g[y0:y1, x0:x1] += 1
        else:
            g[y0:y1, x0:x1] = 1
    if kind == CONSENSUS:
        g = np.minimum(g / 2, 1)
    return g


def _ground_truth(ann: Any, size: int, rule: str) -> np.ndarray:
    if hasattr(ann, "boxes") and hasattr(ann, "gt_kind"):
        from avprep.annotations import gt_map as annotation_gt_map

        return annotation_gt_map(ann, size, rule).astype(np.float32)
    boxes, kind = _boxes_and_kind(ann)
    return gt_map(boxes, kind, size)


def soften(g: np.ndarray) -> np.ndarray:
    """Keep the ground truth's order inside, rank the outside by distance to it.

    Outside values lie in (0, 0.4], below the lowest inside value (0.5 for
    Flickr's consensus, 1 for a union), and fall with the Euclidean distance
    to the nearest ground-truth pixel.
    """
    inside = g > 0
    if not inside.any():
        return g.copy()
    dist = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 5)
    outside = 0.4 * np.exp(-dist / max(g.shape))
    return np.where(inside, g, outside).astype(np.float32)


def ceiling(
    annotations: Mapping[str, Any], mode: str = "soft", size: int = GRID, rule: str = "clean"
) -> dict[str, np.ndarray]:
    """The ground truth of each clip as a map (see the module docstring for ``mode``).

    ``rule`` is the pixel rule of ``avprep.annotations.gt_map`` (``clean``, or a
    preset's: ``lvs``, ``ezvsl``, ...), used for annotation objects.
    """
    if mode not in MODES:
        from avprep.errors import ConfigError

        raise ConfigError(f"unknown ceiling mode {mode!r}; valid: {', '.join(MODES)}")
    out = {}
    for cid, ann in annotations.items():
        g = _ground_truth(ann, size, rule)
        out[cid] = soften(g) if mode == "soft" else g
    return out


def baseline_maps(
    annotations: Mapping[str, Any], seed: int = 0, ceiling_mode: str = "soft", rule: str = "clean"
) -> dict[str, dict[str, np.ndarray]]:
    """``{"centre": ..., "random": ..., "ceiling": ...}`` maps for the clips of ``annotations``."""
    ids = list(annotations)
    return {
        "centre": centre_prior(ids),
        "random": random_maps(ids, seed=seed),
        "ceiling": ceiling(annotations, mode=ceiling_mode, rule=rule),
    }


BASELINES = ("centre", "random", "ceiling")


def score_baselines(
    annotations: Mapping[str, Any],
    preset: str = "default",
    *,
    seed: int = 0,
    ceiling_mode: str = "soft",
) -> dict[str, Any]:
    """Score the three baselines with ``avmodels.metrics.evaluate``: ``{name: EvalResult}``.

    The ceiling is drawn with the preset's own pixel rule, so it is exactly the
    ground truth that preset scores against.
    """
    from avmodels.metrics import evaluate, get_preset

    p = get_preset(preset)
    maps = baseline_maps(annotations, seed=seed, ceiling_mode=ceiling_mode, rule=p.pixel_rule)
    return {name: evaluate(maps[name], annotations, p) for name in BASELINES}


def score_whole_image(annotations: Mapping[str, Any], preset: str = "default") -> dict[str, Any]:
    """The field's trivial baseline: the whole frame predicted as the sounding region.

    Scored directly from the ground truth drawn with ``preset``'s pixel rule
    (no map, so no preset's tie rule at the median can turn it into "nothing"):
    IoU = GT mass / (GT mass + pixels outside the GT). On Flickr-SoundNet's
    consensus ground truth this is the 60.8 % cIoU the literature quotes.
    Pointing is undefined for a map without a peak and is ``None``. Returns a
    metrics dict shaped like ``EvalResult.to_dict()``.
    """
    from avmodels.metrics import get_preset
    from avmodels.metrics.curves import (
        auc_from_ious,
        ciou_from_ious,
        iou_from_counts,
        success_curve,
    )
    from avmodels.metrics.curves import mean_iou as mean_of
    from avprep.annotations.gtmap import gt_map_x2

    p = get_preset(preset)
    n_pixels = p.size * p.size
    inter, union = [], []
    g2 = np.empty((p.size, p.size), dtype=np.uint8)
    for ann in annotations.values():
        gt_map_x2(ann, p.size, p.pixel_rule, out=g2)
        gt = float(g2.sum()) * 0.5
        inside = int(np.count_nonzero(g2))
        inter.append(gt)
        union.append(gt + (n_pixels - inside))
    ious = iou_from_counts(np.array(inter), np.array(union), zero_over_zero=p.zero_over_zero)
    curve = success_curve(ious)
    return {
        "preset": p.name,
        "n": len(ious),
        "ciou": ciou_from_ious(ious),
        "auc": auc_from_ious(ious),
        "mean_iou": mean_of(ious),
        "pointing": None,
        "curve": [float(v) for v in curve],
    }
