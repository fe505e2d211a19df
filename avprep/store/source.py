"""The input side of packing: an ``avprep extract`` folder, read and checked.

An extraction folder holds ``frames/<id>.jpg``, ``audio/<id>.wav``,
``spectrograms/<name>/<id>.npy``, ``flow/<id>.npy`` and ``manifest.jsonl``
(header facts ``profile`` / ``profile_params``; one record per clip whose
``outputs`` name those files relative to the folder). Each selected clip is
the project's one clip record (:class:`avprep.clip.Clip`) with its outputs'
absolute paths and its record's meta. This module selects the
clips to pack (every ok clip, sorted by id, or an explicit ``--ids`` list in
its order), and probes each clip's files cheaply (headers only) so the row
list is final before any shard is written: a clip whose files are missing,
unreadable or shaped unlike the rest of the split is skipped with a reason.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from PIL import Image
from tqdm.auto import tqdm

from avprep.clip import OUTPUTS, Clip
from avprep.errors import InputError
from avprep.ids import check_id
from avprep.manifest import MANIFEST_NAME, Manifest

log = logging.getLogger(__name__)

MODALITIES = OUTPUTS  # what a store can hold: every output of extraction
# Per-clip timestamps copied from the extraction record into float64 columns.
TIME_KEYS = ("frame_time", "next_frame_time", "audio_start")


@dataclasses.dataclass(frozen=True)
class Probe:
    """What the headers of one clip's files say (no pixel or sample is decoded)."""

    frame_size: tuple[int, int] | None = None  # (height, width)
    audio: tuple[int, int, int] | None = None  # (sample_rate, channels, frames)
    spectrogram: tuple[int, ...] | None = None
    flow: tuple[int, ...] | None = None


@dataclasses.dataclass
class Selection:
    """The clips chosen for a split, in row order, and why others were left out."""

    clips: list[Clip]
    probes: list[Probe]
    skipped: list[tuple[str, str]]  # (clip_id, reason) for clips that cannot be packed
    missing: list[str]  # ids asked for with --ids that the manifest does not know
    duplicates: list[str]  # ids listed more than once in --ids (first kept)
    header: dict[str, Any]
    manifest_sha256: str
    spectrogram_name: str | None

    def skip(self, keep: Sequence[bool], reasons: Sequence[str | None]) -> None:
        """Drop rows where ``keep`` is false, recording ``reasons``."""
        clips, probes = [], []
        for clip, probe, ok, why in zip(self.clips, self.probes, keep, reasons):
            if ok:
                clips.append(clip)
                probes.append(probe)
            else:
                self.skipped.append((clip.clip_id, why or "skipped"))
        self.clips, self.probes = clips, probes


def read_ids(source: str | os.PathLike) -> tuple[list[str], str]:
    """The clip ids of an id list, in its order, and the list's file name.

    ``source`` is anything :func:`avprep.idspec.read_id_list` reads: a file in
    any id-list format it knows (one id a line, ``id,int`` CSVs such as
    ``flickr_test249_in5k.csv``, VGG-SS json, CRLF or not) or a registry name
    such as ``sspl/vggss-test-4692`` (fetched into the cache on first use), or
    a comma list ``a,b,c``.
    Duplicates are dropped (first kept). The name is the file's published
    name (``vggss_test_4692.csv`` for that registry entry), which SSPL's test
    layout names its id csv after. A missing file, an unsafe id or a list
    without ids is an :class:`InputError`.
    """
    from avprep.idspec import read_id_list

    return read_id_list(source)


def _resolve(root: Path, rel: Any, clip_id: str, key: str) -> Path:
    if not isinstance(rel, str) or not rel:
        raise InputError(f"clip {clip_id}: output {key!r} is not a path: {rel!r}")
    # A manifest is data: never let it point outside its own folder. The check is
    # lexical, so a folder whose sub-folders are symlinks to another disk still works.
    norm = os.path.normpath(rel)
    if os.path.isabs(norm) or norm == ".." or norm.startswith(".." + os.sep):
        raise InputError(f"clip {clip_id}: output {key!r} escapes the extraction folder: {rel}")
    return root / norm


def _clip_from_record(root: Path, clip_id: str, outputs: dict, meta: dict) -> Clip:
    paths = {m: _resolve(root, outputs[m], clip_id, m) for m in MODALITIES if outputs.get(m)}
    return Clip(clip_id=clip_id, meta=dict(meta or {}), **paths)


def _npy_shape(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    return tuple(int(s) for s in shape), dtype


def probe_clip(clip: Clip, modalities: Iterable[str]) -> Probe:
    """Read the headers of ``clip``'s files; raise InputError with a reason if unusable."""
    found: dict[str, Any] = {}
    for m in modalities:
        path = clip.output(m)
        if path is None:
            raise InputError(f"no {m} output")
        if not path.is_file():
            raise InputError(f"{m} file missing: {path.name}")
        try:
            if m == "frame":
                with Image.open(path) as im:
                    if im.format != "JPEG":
                        raise InputError(f"frame is {im.format}, not JPEG: {path.name}")
                    found["frame_size"] = (im.height, im.width)
            elif m == "audio":
                info = sf.info(str(path))
                found["audio"] = (int(info.samplerate), int(info.channels), int(info.frames))
            else:
                shape, dtype = _npy_shape(path)
                if dtype.kind != "f":
                    raise InputError(f"{m} has dtype {dtype}, expected float: {path.name}")
                found[m] = shape
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - any unreadable header is a skip reason
            raise InputError(f"{m} unreadable ({type(exc).__name__}: {exc}): {path.name}") from exc
    return Probe(**found)


def select(
    in_dir: str | os.PathLike,
    *,
    ids: Sequence[str] | None = None,
    modalities: Sequence[str] | None = None,
    progress: bool = True,
) -> tuple[Selection, tuple[str, ...]]:
    """Choose and probe the clips of a split.

    Without ``ids``: every ok clip of the manifest, sorted by id (so the row
    order does not depend on the order extraction finished in). With
    ``ids``: exactly those, in that order; unknown ids go to ``missing``,
    failed ones to ``skipped``. ``modalities`` defaults to every modality at
    least one selected clip has; a clip lacking one of them is skipped.
    Returns the selection and the modalities packed.
    """
    root = Path(in_dir)
    mpath = root / MANIFEST_NAME
    if not mpath.is_file():
        raise InputError(
            f"{root} is not an extraction folder: {MANIFEST_NAME} not found "
            "(run `avprep extract` first)"
        )
    from avprep.atomic import sha256_file

    manifest = Manifest(mpath)
    skipped: list[tuple[str, str]] = []
    missing: list[str] = []
    duplicates: list[str] = []
    wanted = _wanted_ids(manifest, ids, skipped, missing, duplicates)
    clips: list[Clip] = []
    for cid in wanted:
        rec = manifest.get(cid)
        try:
            clips.append(_clip_from_record(root, cid, rec.outputs, rec.meta))
        except InputError as exc:
            skipped.append((cid, str(exc)))
    modalities = _packed_modalities(clips, modalities)

    # Probe headers; a clip we cannot read is skipped here, before rows are numbered.
    kept, probes = [], []
    for clip in tqdm(clips, desc="probing clips", unit="clip", disable=not progress or not clips):
        try:
            probes.append(probe_clip(clip, modalities))
            kept.append(clip)
        except InputError as exc:
            skipped.append((clip.clip_id, str(exc)))

    names = {c.spectrogram.parent.name for c in kept if c.spectrogram is not None}
    spec_name = sorted(names)[0] if names else None
    if len(names) > 1:
        log.warning(
            "clips use several spectrogram folders %s; recording %r", sorted(names), spec_name
        )
    sel = Selection(
        clips=kept,
        probes=probes,
        skipped=skipped,
        missing=missing,
        duplicates=duplicates,
        header=manifest.header,
        manifest_sha256=sha256_file(mpath),
        spectrogram_name=spec_name,
    )
    return sel, tuple(modalities)


def _wanted_ids(
    manifest: Manifest,
    ids: Sequence[str] | None,
    skipped: list[tuple[str, str]],
    missing: list[str],
    duplicates: list[str],
) -> list[str]:
    """The ok clip ids to pack: every one sorted (no ``ids``), else ``ids`` in their order.
    Failed clips go to ``skipped``, unknown ids to ``missing``, repeats to ``duplicates``."""
    if ids is None:
        for rec in manifest.records():
            if not rec.ok:
                skipped.append((rec.clip_id, f"extraction {rec.status}: {rec.error or '-'}"))
        skipped.sort()
        return sorted(manifest.ok_ids())
    seen: set[str] = set()
    wanted = []
    for cid in ids:
        check_id(cid)
        if cid in seen:
            duplicates.append(cid)
            continue
        seen.add(cid)
        rec = manifest.get(cid)
        if rec is None:
            missing.append(cid)
        elif not rec.ok:
            skipped.append((cid, f"extraction {rec.status}: {rec.error or '-'}"))
        else:
            wanted.append(cid)
    return wanted


def _packed_modalities(clips: list[Clip], modalities: Sequence[str] | None) -> tuple[str, ...]:
    """``modalities`` in the canonical order (checked), or every one some clip has."""
    if modalities is None:
        present = {m for c in clips for m in MODALITIES if c.output(m) is not None}
        return tuple(m for m in MODALITIES if m in present)
    bad = [m for m in modalities if m not in MODALITIES]
    if bad:
        from avprep.errors import ConfigError

        raise ConfigError(f"unknown modality {bad[0]!r}; valid: {', '.join(MODALITIES)}")
    return tuple(m for m in MODALITIES if m in modalities)


def most_common(values: Sequence[Any]) -> Any:
    """The most frequent value (ties: the one seen first): the split's reference shape."""
    if not values:
        return None
    counts = Counter(values)
    best = max(counts.values())
    return next(v for v in values if counts[v] == best)
