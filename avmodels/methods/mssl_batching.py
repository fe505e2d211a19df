"""Multi-Source's original batching: scenes of ``mix`` clips x ``frames`` consecutive pairs.

The authors' full code (``main.py`` / ``audioset_main.py`` with
``utils/dataset.py`` / ``utils/audioset_data.py``) does not batch single
pairs. One dataset item is a *scene*: ``--mix`` different videos, drawn
afresh for every item (``np.random.permutation(clips)[:mix]``, the item's
index is ignored), and from each video ``--frame`` consecutive 1 s pairs
starting at a random second. A batch is ``--train-batch`` such scenes; an
epoch has as many scenes as the split has videos. Rows come in (scene, clip,
second) order, which is the order the original reshapes them in
(``visual.view(batch * mix * frame, ...)``).

The start second is drawn uniformly, by one of the original's two rules:

``ave`` (``utils/dataset.py``, AVE)
    ``randint(0, 10 - frame)`` over a 10-pair clip: starts ``0 .. P-1-frame``
    (the last window, the one ending on the clip's last second, is never drawn);
``audioset`` (``utils/audioset_data.py``)
    ``randint(0, 11 - frame)``: starts ``0 .. P-frame`` (every window).

``P`` is the clip's number of pairs (its highest ``.tNN`` index + 1; 10 for
AVE and AudioSet). Here a clip is the set of store rows ``<id>.tNN`` made by
``avprep pairs``; a row with any other id is a clip of one pair (Flickr's
``frame 1`` scenes). A window with a missing pair (a pair that failed in
``avprep pairs``) is not drawn, and a clip without any complete window is left
out; both are counted in the log, never filled in.

Positives are (audio second t, frame t) of the same clip. In the original the
negative of each positive is one frame of another clip: with ``frame 1`` the
other clip of the scene pair (``rank = seg + 1 if seg % 2 == 0 else seg - 1``),
otherwise a random other clip of the batch at a permuted second.
:func:`original_negatives` restates that rule (used by the AVE match score);
``mssl``'s pair loss, which scores every (audio, frame) pair of a batch, keeps
pairs of the same clip out of its negatives when it trains on scenes.

Validation (``get_val``): scene ``i`` starts with clip ``i`` followed by
``mix - 1`` other clips drawn at random (:func:`validation_scenes`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Sampler

from avprep.errors import ConfigError
from avprep.frame_pairs import split_pair_id

log = logging.getLogger(__name__)

BATCHING = ("pairs", "scenes")
WINDOW_RULES = ("ave", "audioset")


def check_batching(batching: str, mix: int, frames: int, rule: str) -> None:
    """Raise :class:`ConfigError` for an unknown choice or a non-positive count."""
    if batching not in BATCHING:
        raise ConfigError(f"data.batching {batching!r}; valid: {', '.join(BATCHING)}")
    if rule not in WINDOW_RULES:
        raise ConfigError(f"data.window_rule {rule!r}; valid: {', '.join(WINDOW_RULES)}")
    for key, value in (("data.mix", mix), ("data.frames_per_clip", frames)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{key} must be a positive integer, got {value!r}")


def window_starts(indices: Sequence[int], frames: int, rule: str) -> list[int]:
    """The start seconds a clip with pairs ``indices`` may be drawn from (see the module doc)."""
    if rule not in WINDOW_RULES:
        raise ConfigError(f"data.window_rule {rule!r}; valid: {', '.join(WINDOW_RULES)}")
    have = set(int(i) for i in indices)
    if not have:
        return []
    count = max(have) + 1
    stop = count - frames + (1 if rule == "audioset" else 0)
    return [s for s in range(stop) if all(s + t in have for t in range(frames))]


@dataclass(frozen=True)
class ClipTable:
    """Clips of a dataset's rows: per clip, its row positions by second and its starts."""

    names: list[str]
    rows: list[dict[int, int]]  # second -> position
    starts: list[list[int]]
    dropped_clips: int
    dropped_windows: int

    @classmethod
    def from_ids(cls, ids: Sequence[str], frames: int, rule: str) -> ClipTable:
        by_clip: dict[str, dict[int, int]] = {}
        for pos, cid in enumerate(ids):
            parts = split_pair_id(str(cid))
            clip, second = parts if parts is not None else (str(cid), 0)
            seconds = by_clip.setdefault(clip, {})
            if second in seconds:
                raise ConfigError(f"pair {cid!r} appears twice in the training data")
            seconds[second] = pos
        names, rows, starts = [], [], []
        dropped_clips = dropped_windows = 0
        for clip in sorted(by_clip):
            seconds = by_clip[clip]
            ok = window_starts(list(seconds), frames, rule)
            count = max(seconds) + 1
            possible = max(0, count - frames + (1 if rule == "audioset" else 0))
            dropped_windows += possible - len(ok)
            if not ok:
                dropped_clips += 1
                continue
            names.append(clip)
            rows.append(seconds)
            starts.append(ok)
        return cls(names, rows, starts, dropped_clips, dropped_windows)

    def __len__(self) -> int:
        return len(self.names)

    def window(self, clip: int, start: int, frames: int) -> list[int]:
        return [self.rows[clip][start + t] for t in range(frames)]


def draw_scene(
    rng: np.random.Generator, table: ClipTable, mix: int, frames: int, first: int | None = None
) -> list[int]:
    """One scene's row positions: ``mix`` distinct clips x ``frames`` consecutive pairs.

    ``first``: the validation scene of that clip (it first, then ``mix - 1`` others).
    """
    n = len(table)
    if first is None:
        clips = rng.permutation(n)[:mix].tolist()
    else:
        others = rng.permutation(n - 1)[: mix - 1]
        others[others >= first] += 1
        clips = [first, *others.tolist()]
    rows: list[int] = []
    for c in clips:
        starts = table.starts[c]
        rows += table.window(c, starts[int(rng.integers(len(starts)))], frames)
    return rows


def _table(ids: Sequence[str], mix: int, frames: int, rule: str) -> ClipTable:
    table = ClipTable.from_ids(ids, frames, rule)
    if table.dropped_clips or table.dropped_windows:
        log.warning(
            "scenes of %d pairs per clip (%s rule): %d clips without a complete window left "
            "out, %d windows with a missing pair not drawn",
            frames,
            rule,
            table.dropped_clips,
            table.dropped_windows,
        )
    if len(table) < mix:
        raise ConfigError(
            f"scenes of data.mix={mix} clips need {mix} clips with {frames} consecutive pairs; "
            f"the data has {len(table)}"
        )
    return table


class SceneSampler(Sampler):
    """Yields ``(position, epoch)`` keys, ``scenes x mix x frames`` of them per batch.

    The same interface as :class:`avmodels.data.EpochSampler`: ``set_epoch``
    (with batches to skip on resume), ``batches_per_epoch``; ``rows_per_batch``
    is the loader's batch size. Global batch ``k`` of epoch ``e`` is drawn from
    a generator seeded by (seed, e, k) and dealt to the processes by whole
    scenes (rank ``r`` takes scenes ``r*scenes .. (r+1)*scenes - 1``), so a
    resumed or N-process run sees the batches of an uninterrupted one-process run.
    """

    def __init__(
        self,
        ids: Sequence[str],
        *,
        scenes: int,
        mix: int,
        frames: int,
        rule: str,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        drop_last: bool = True,
    ) -> None:
        check_batching("scenes", mix, frames, rule)
        if scenes < 1:
            raise ConfigError(f"train.batch_size (scenes per batch) must be >= 1, got {scenes}")
        self.table = _table(ids, mix, frames, rule)
        self.scenes, self.mix, self.frames = int(scenes), int(mix), int(frames)
        self.rank, self.world = int(rank), int(world_size)
        self.seed, self.drop_last = int(seed), bool(drop_last)
        self.rows_per_batch = self.scenes * self.mix * self.frames
        self.epoch = 0
        self.skip_batches = 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip_batches = int(epoch), int(skip_batches)

    def batches_per_epoch(self) -> int:
        """An epoch draws as many scenes as there are clips (the original's ``__len__``)."""
        glob = self.scenes * self.world
        n = len(self.table)
        return n // glob if self.drop_last else -(-n // glob)

    def _scenes_in(self, batch: int) -> int:
        """This process's scenes in global batch ``batch`` (the last may be partial)."""
        glob = self.scenes * self.world
        left = len(self.table) - batch * glob
        if left >= glob:
            return self.scenes
        return max(0, min(self.scenes, -(-left // self.world)))

    def batch(self, epoch: int, batch: int) -> list[int]:
        """This process's row positions of global batch ``batch`` of ``epoch``."""
        ss = np.random.SeedSequence([self.seed, epoch, batch])
        rng = np.random.default_rng(ss)
        glob = self.scenes * self.world
        scenes = [draw_scene(rng, self.table, self.mix, self.frames) for _ in range(glob)]
        mine = scenes[self.rank * self.scenes : self.rank * self.scenes + self._scenes_in(batch)]
        return [r for s in mine for r in s]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for k in range(self.skip_batches, self.batches_per_epoch()):
            for pos in self.batch(self.epoch, k):
                yield (pos, self.epoch)

    def __len__(self) -> int:
        n = self.batches_per_epoch() - self.skip_batches
        return max(0, n) * self.rows_per_batch


def validation_scenes(
    ids: Sequence[str], mix: int, frames: int, rule: str, seed: int = 0
) -> list[list[int]]:
    """One scene per clip, the clip first (the original's ``get_val``); row positions."""
    check_batching("scenes", mix, frames, rule)
    table = _table(ids, mix, frames, rule)
    rng = np.random.default_rng(np.random.SeedSequence([seed]))
    return [draw_scene(rng, table, mix, frames, first=i) for i in range(len(table))]


def original_negatives(
    clips: int, frames: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(clip, second) of the frame each positive (clip c, second t) is contrasted with.

    The original's ``DiscrimHead``: with one frame per clip, clip ``c`` meets
    its scene partner (``c + 1`` for even ``c``, ``c - 1`` for odd); otherwise,
    for each clip, ``frames`` clips drawn uniformly from the other clips of the
    batch and a random permutation of the seconds. Returns two (clips, frames)
    long tensors.
    """
    if clips < 2:
        raise ConfigError("negatives need at least two clips in a batch (data.mix x scenes)")
    if frames == 1:
        if clips % 2:
            raise ConfigError("one frame per clip pairs clips two by two: an even count is needed")
        c = torch.arange(clips)
        partner = torch.where(c % 2 == 0, c + 1, c - 1)
        return partner[:, None], torch.zeros(clips, 1, dtype=torch.long)
    other = torch.empty(clips, frames, dtype=torch.long)
    second = torch.empty(clips, frames, dtype=torch.long)
    for c in range(clips):
        pick = torch.randint(0, clips - 1, (frames,), generator=generator)
        pick[pick >= c] += 1
        other[c] = pick
        second[c] = torch.randperm(frames, generator=generator)
    return other, second
