"""Does a test store hold inputs made the way the model's training inputs were?

A model file records how its training data was extracted (``meta
["extraction"]``: written by ``avmodels train``, and by ``avmodels import``
for a paper's released checkpoint, whose data was made by the paper's
profile). ``avmodels eval`` scores whatever store it is given; when that
store was extracted with other parameters than the model was trained on
(another audio window, sample rate, spectrogram front end, flow method...),
the numbers are not the paper's, so this says which parameters differ.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

# parameters that change nothing the model sees
_IGNORED = {"name", "description", "flow_legacy_htf"}


def extraction_differences(
    store: Mapping[str, Any], trained: Mapping[str, Any]
) -> dict[str, tuple[Any, Any]]:
    """``{param: (store's value, training's value)}`` for the parameters that differ."""
    a = {k: v for k, v in (store.get("params") or {}).items() if k not in _IGNORED}
    b = {k: v for k, v in (trained.get("params") or {}).items() if k not in _IGNORED}
    if not a or not b:
        return {}
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def warn_if_extracted_otherwise(sources: Any, model_obj: Mapping[str, Any], where: str) -> list:
    """Log one warning per test store extracted otherwise than the model's training data."""
    from avmodels.engine.localize import training_extraction

    trained = [r for r in (model_obj.get("meta") or {}).get("extraction") or [] if r.get("params")]
    if not trained:
        return []
    found = []
    for rec in training_extraction(sources):
        diff = extraction_differences(rec, trained[0])
        if diff:
            said = ", ".join(f"{k}={s!r} (model: {t!r})" for k, (s, t) in diff.items())
            log.warning("%s: the test data was extracted otherwise than its training data: %s",
                        where, said)  # fmt: skip
            found.append(diff)
    return found
