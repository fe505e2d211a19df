"""The feature-cache bar (VGGish for SSPL) obeys ``--no-progress`` on a terminal too."""

from __future__ import annotations

import io
import sys

import numpy as np
import torch

from avmodels.data import ensure_feature_cache
from avmodels.methods.base import CachedFeature


class _Terminal(io.StringIO):
    def isatty(self) -> bool:  # what tqdm asks before drawing a bar with disable=None
        return True


def _prepare(sample: dict) -> dict:
    return {"x": np.float32(sample["x"])}


def _compute(batch: dict) -> torch.Tensor:
    return batch["x"][:, None] * 2


def _cache(tmp_path, monkeypatch, progress: bool) -> str:
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    spec = CachedFeature("double", f"v-{progress}", ("x",), _prepare, _compute)
    data = [{"x": float(i)} for i in range(5)]
    path = tmp_path / f"cache-{progress}.h5"
    ensure_feature_cache(spec, data, [f"c{i}" for i in range(5)], path, torch.device("cpu"),
                         batch_size=2, progress=progress)  # fmt: skip
    assert path.exists()
    return term.getvalue()


def test_feature_cache_bar_is_drawn_on_a_terminal_and_off_with_no_progress(tmp_path, monkeypatch):
    assert "cache double" in _cache(tmp_path, monkeypatch, progress=True)
    assert _cache(tmp_path, monkeypatch, progress=False) == ""
