"""The one box model every benchmark's annotations are parsed into.

A :class:`Box` is normalised ``xmin, ymin, xmax, ymax`` (fractions of the frame
width/height, end exclusive) with the index of the annotator who drew it.  An
:class:`Annotation` holds a clip's boxes *after* the bad-box policy, plus the
boxes exactly as the source file stated them (``raw_boxes``): the metric presets
that reproduce the papers apply each original's pixel rule to the raw values, so
a preset gives the paper's number whatever policy was used to load the file.

Defects the published files contain (VGG-SS: the sentinel ``-2.88e16`` standing
for a missing coordinate, zero-area boxes, clips left without any usable box)
are detected here, acted on by the policy and recorded as :class:`Defect`
entries, never silently copied.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from avprep.errors import ConfigError

# The ground-truth rules a benchmark's boxes make a map by (which benchmark uses
# which: avprep.annotations.benchmarks.BENCHMARKS, the registry of benchmarks).
CONSENSUS = "consensus"
UNION = "union"

# The value VGG-SS uses for a missing coordinate is -2.8823037615171176e16; any
# coordinate this far from the frame is a placeholder, not a position.
SENTINEL = -2.8823037615171176e16
SENTINEL_MAGNITUDE = 1e10

DROP, CLIP, KEEP = "drop", "clip", "keep"
BAD_BOX_POLICIES = (DROP, CLIP, KEEP)
#: ``clip`` keeps every box that has a meaning: coordinates slightly outside the
#: frame are moved onto its edge, while boxes with a missing coordinate
#: (sentinel, NaN) or no area are dropped. Everything is reported.
DEFAULT_BAD_BOXES = CLIP

# Defect kinds.
SENTINEL_COORD = "sentinel"
NON_FINITE = "non_finite"
OUT_OF_RANGE = "out_of_range"
DEGENERATE = "degenerate"
NO_VALID_BOX = "no_valid_box"
IGNORED_ELEMENT = "ignored_element"
DUPLICATE_ENTRY = "duplicate_entry"
DEFECT_KINDS = (
    SENTINEL_COORD,
    NON_FINITE,
    OUT_OF_RANGE,
    DEGENERATE,
    NO_VALID_BOX,
    IGNORED_ELEMENT,
    DUPLICATE_ENTRY,
)


@dataclasses.dataclass(frozen=True)
class Box:
    """A box in normalised frame coordinates (0..1, end exclusive)."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float
    annotator: int = 0

    def as_list(self) -> list[float]:
        return [self.xmin, self.ymin, self.xmax, self.ymax]

    @property
    def area(self) -> float:
        """Area as a fraction of the frame; 0 for empty or inverted boxes."""
        w = min(self.xmax, 1.0) - max(self.xmin, 0.0)
        h = min(self.ymax, 1.0) - max(self.ymin, 0.0)
        return w * h if w > 0 and h > 0 else 0.0

    @property
    def is_valid(self) -> bool:
        """Finite, inside the frame and with a positive area."""
        return not box_problems(self.as_list(), (1.0, 1.0))


@dataclasses.dataclass(frozen=True)
class Defect:
    """One problem found in an annotation file, and what was done about it."""

    clip_id: str
    kind: str
    detail: str
    box_index: int | None = None
    action: str = "reported"

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def _benchmark(name: str):  # -> benchmarks.Benchmark (that module reads files into this one)
    from avprep.annotations.benchmarks import BENCHMARKS

    return BENCHMARKS.get(name)


@dataclasses.dataclass
class Annotation:
    """Ground truth of one clip.

    ``boxes`` are the usable boxes after the bad-box policy, normalised.
    ``raw_boxes`` are all boxes as the file states them, in file order and in
    the file's units (``source_size`` = frame size in pixels for pixel units,
    ``None`` for normalised), with ``raw_annotators`` beside them.
    """

    clip_id: str
    benchmark: str
    boxes: list[Box]
    label: str | None = None
    raw_boxes: tuple[tuple[float, float, float, float], ...] = ()
    raw_annotators: tuple[int, ...] = ()
    source_size: tuple[int, int] | None = None
    defects: tuple[Defect, ...] = ()

    def __post_init__(self) -> None:
        _benchmark(self.benchmark)  # an unknown name: ConfigError listing the valid ones
        if not self.raw_boxes and self.boxes:
            # Built in code (SynthAV, tests): the boxes are the raw values.
            self.raw_boxes = tuple(tuple(b.as_list()) for b in self.boxes)
            self.raw_annotators = tuple(b.annotator for b in self.boxes)
        if len(self.raw_annotators) != len(self.raw_boxes):
            self.raw_annotators = (0,) * len(self.raw_boxes)

    @property
    def gt_kind(self) -> str:
        """``consensus`` (Flickr) or ``union`` (VGG-SS, Chaotic World)."""
        return _benchmark(self.benchmark).gt_kind

    @property
    def n_annotators(self) -> int:
        return len(set(self.raw_annotators)) if self.raw_annotators else 0

    def raw_normalised(self) -> list[tuple[float, float, float, float]]:
        """The raw boxes divided by the source frame size (exact for powers of two)."""
        if self.source_size is None:
            return [tuple(map(float, b)) for b in self.raw_boxes]  # type: ignore[misc]
        w, h = self.source_size
        return [(b[0] / w, b[1] / h, b[2] / w, b[3] / h) for b in self.raw_boxes]


def check_policy(policy: str) -> str:
    if policy not in BAD_BOX_POLICIES:
        raise ConfigError(
            f"unknown bad-box policy {policy!r}; valid: {', '.join(BAD_BOX_POLICIES)}"
        )
    return policy


def _is_sentinel(v: float) -> bool:
    return math.isfinite(v) and abs(v) >= SENTINEL_MAGNITUDE


def box_problems(coords: Sequence[float], size: tuple[float, float]) -> list[tuple[str, str]]:
    """``[(kind, detail), ...]`` for one box in units where the frame is ``size`` (w, h).

    The first matching of sentinel / non-finite / out-of-range is reported, then
    degeneracy (checked on finite, non-sentinel values only).
    """
    w, h = size
    out: list[tuple[str, str]] = []
    names = ("xmin", "ymin", "xmax", "ymax")
    sentinel = [n for n, v in zip(names, coords) if _is_sentinel(v)]
    nonfinite = [n for n, v in zip(names, coords) if not math.isfinite(v)]
    if sentinel:
        out.append((SENTINEL_COORD, f"{'/'.join(sentinel)} = {SENTINEL:.3g} (missing value)"))
    if nonfinite:
        out.append((NON_FINITE, f"{'/'.join(nonfinite)} is not a finite number"))
    if sentinel or nonfinite:
        return out
    limits = (w, h, w, h)
    outside = [f"{n}={v:g}" for n, v, lim in zip(names, coords, limits) if v < 0 or v > lim]
    if outside:
        out.append((OUT_OF_RANGE, f"outside the frame: {', '.join(outside)}"))
    x0, y0, x1, y1 = coords
    flat = []
    if x0 >= x1:
        flat.append("xmin = xmax" if x0 == x1 else "xmin > xmax")
    if y0 >= y1:
        flat.append("ymin = ymax" if y0 == y1 else "ymin > ymax")
    if flat:
        out.append((DEGENERATE, f"no area: {', '.join(flat)}"))
    return out


def apply_policy(
    clip_id: str,
    raw: Sequence[Sequence[float]],
    annotators: Sequence[int],
    size: tuple[float, float] | None,
    policy: str,
) -> tuple[list[Box], list[Defect]]:
    """Turn raw boxes (units of ``size``; ``None`` = normalised) into usable boxes.

    ``drop`` removes every box with a problem; ``clip`` clips coordinates that
    are merely outside the frame and drops the rest; ``keep`` keeps every box
    unchanged (but still reports it).
    """
    check_policy(policy)
    w, h = size if size is not None else (1.0, 1.0)
    boxes: list[Box] = []
    defects: list[Defect] = []
    for i, (coords, who) in enumerate(zip(raw, annotators)):
        coords = [float(v) for v in coords]
        problems = box_problems(coords, (w, h))
        kinds = {k for k, _ in problems}
        norm = [coords[0] / w, coords[1] / h, coords[2] / w, coords[3] / h]
        if policy == KEEP or not problems:
            action = "kept"
        elif policy == CLIP and kinds == {OUT_OF_RANGE}:
            norm = [min(max(v, 0.0), 1.0) for v in norm]
            if norm[0] < norm[2] and norm[1] < norm[3]:
                action = "clipped"
            else:
                action = "dropped"
                problems.append((DEGENERATE, "no area left after clipping"))
        else:
            action = "dropped"
        for kind, detail in problems:
            defects.append(Defect(clip_id, kind, detail, i, action))
        if action != "dropped":
            boxes.append(Box(*norm, annotator=int(who)))
    if not any(b.is_valid for b in boxes):
        what = "no box at all" if not raw else "no usable box"
        defects.append(
            Defect(clip_id, NO_VALID_BOX, f"{what}: the ground truth is empty", None, "reported")
        )
    return boxes, defects


@dataclasses.dataclass(frozen=True)
class DefectSummary:
    """Counts of the defects of a set of annotations."""

    n_clips: int
    n_boxes: int
    n_raw_boxes: int
    boxes_by_kind: dict[str, int]
    clips_by_kind: dict[str, int]
    actions: dict[str, int]
    empty_clips: list[str]

    def lines(self) -> list[str]:
        out = [f"{self.n_clips} clips, {self.n_raw_boxes} boxes read, {self.n_boxes} usable"]
        for kind in DEFECT_KINDS:
            if kind in self.clips_by_kind:
                nb = self.boxes_by_kind.get(kind)
                what = f"{nb} boxes in " if nb else ""
                out.append(f"  {kind}: {what}{self.clips_by_kind[kind]} clips")
        if self.actions:
            out.append(
                "  actions: " + ", ".join(f"{k} {v}" for k, v in sorted(self.actions.items()))
            )
        if self.empty_clips:
            shown = ", ".join(self.empty_clips[:10])
            more = f" (+{len(self.empty_clips) - 10} more)" if len(self.empty_clips) > 10 else ""
            out.append(f"  clips with an empty ground truth: {shown}{more}")
        return out


def summarise_defects(
    annotations: Mapping[str, Annotation] | Iterable[Annotation],
) -> DefectSummary:
    anns = list(annotations.values()) if isinstance(annotations, Mapping) else list(annotations)
    boxes_by_kind: Counter[str] = Counter()
    clips_by_kind: dict[str, set[str]] = {}
    actions: Counter[str] = Counter()
    seen_box: set[tuple[str, int | None, str]] = set()
    for a in anns:
        for d in a.defects:
            clips_by_kind.setdefault(d.kind, set()).add(d.clip_id)
            if d.box_index is not None and (d.clip_id, d.box_index, d.kind) not in seen_box:
                seen_box.add((d.clip_id, d.box_index, d.kind))
                boxes_by_kind[d.kind] += 1
        for i in sorted({d.box_index for d in a.defects if d.box_index is not None}):
            acts = {d.action for d in a.defects if d.box_index == i}
            actions["boxes " + ("dropped" if "dropped" in acts else acts.pop())] += 1
    return DefectSummary(
        n_clips=len(anns),
        n_boxes=sum(len(a.boxes) for a in anns),
        n_raw_boxes=sum(len(a.raw_boxes) for a in anns),
        boxes_by_kind=dict(boxes_by_kind),
        clips_by_kind={k: len(v) for k, v in clips_by_kind.items()},
        actions=dict(actions),
        empty_clips=sorted(clips_by_kind.get(NO_VALID_BOX, set())),
    )
