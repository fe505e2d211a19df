"""Multi-Source's AVE audio-visual match rates (``main.py``'s ``test_avs``).

The full original model scores each audio-visual pair with its
``DiscrimHead`` (two outputs per pair). ``test_avs`` runs one validation
scene per batch (:func:`avmodels.methods.mssl_batching.validation_scenes`),
takes the head's outputs on the positive pairs (``common``: audio second t
with frame t of the same clip) and on the negatives (``differ``: each audio
second with a frame of another clip, :func:`~avmodels.methods.mssl_batching.
original_negatives`), flattens both -- every output value counts, both of a
two-output head -- and reports per batch

- the match rate: the fraction of ``common`` values below 1.0,
- the differ rate: the fraction of ``differ`` values above 1.0,

each averaged over the batches with weight 1 (its ``AverageMeter.update(x,
1)``), printed as ``Accuracy: a2v v2a``. The threshold 1.0 is half the margin
(2) of the contrastive variant whose head gave one distance per pair; the code
as published scores the raw two-way logits of the cross-entropy head with it
unchanged, and so do we (:data:`THRESHOLD`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from avprep.errors import InputError

THRESHOLD = 1.0


def batch_match_rates(
    common: torch.Tensor, differ: torch.Tensor, threshold: float = THRESHOLD
) -> tuple[float, float]:
    """(match, differ) rates of one batch: ``mean(common < t)``, ``mean(differ > t)``.

    The original concatenates both flattened and splits the result in half,
    which is this when the two have as many values (they always do there);
    tensors of other sizes are refused rather than split wrongly.
    """
    c = common.detach().reshape(-1).float()
    d = differ.detach().reshape(-1).float()
    if c.numel() == 0 or c.numel() != d.numel():
        raise InputError(
            f"match rates need as many positive as negative values, got {c.numel()} and {d.numel()}"
        )
    return float((c < threshold).float().mean()), float((d > threshold).float().mean())


@dataclass
class MatchMeter:
    """Per-batch rates averaged with weight 1 per batch, as the original's meters."""

    threshold: float = THRESHOLD
    match: list[float] = field(default_factory=list)
    differ: list[float] = field(default_factory=list)

    def update(self, common: torch.Tensor, differ: torch.Tensor) -> tuple[float, float]:
        m, d = batch_match_rates(common, differ, self.threshold)
        self.match.append(m)
        self.differ.append(d)
        return m, d

    def result(self) -> dict[str, float | int]:
        n = len(self.match)
        if n == 0:
            raise InputError("no batch was scored")
        return {
            "match_rate": sum(self.match) / n,
            "differ_rate": sum(self.differ) / n,
            "batches": n,
            "threshold": self.threshold,
        }
