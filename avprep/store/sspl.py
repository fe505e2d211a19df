"""SSPL's HDF5 layout, reproduced so SSPL's own dataset code reads it unchanged.

SSPL (Song et al., "Self-Supervised Predictive Learning", CVPR 2022,
github.com/zjsong/SSPL) trains from three HDF5 files per split, one dataset
each, and reads one row per sample by opening all three files:

=================================  ======================  ====================
file                               key                     shape, dtype
=================================  ======================  ====================
``h5py_train_frames_<split>.h5``   ``train_frames``        (N,256,256,3) float32
``h5py_train_audios_<split>.h5``   ``train_audios``        (N,48000) float32
``h5py_train_spects_<split>.h5``   ``train_spects``        (N,3,96,64) float32
=================================  ======================  ====================

A sharded split adds ``_<k>`` (k = 1..K) to each name; SSPL's loader opens
shard ``index // 14400 + 1`` at row ``index % 14400`` for its 144k split, so
every shard but the last holds 14,400 rows whatever N is
(:mod:`avprep.store.shard_plan`). The test variant is
``h5py_test_{frames,audios,spects}.h5`` with ``test_*`` keys, rows aligned
with the test id csv. Datasets are contiguous, unchunked, uncompressed, as
SSPL's script writes them. The clip ids live outside the files in a
one-column csv with no header (SSPL: ``flickr_train_videos_10k.csv``).

How SSPL makes a row (``metadata/read_frame_audio_then_save_hdf5.py``):
frame: ``cv2.imread`` -> ``cv2.resize((256, 256), INTER_CUBIC)`` ->
BGR->RGB -> float32. Audio: 16 kHz mono float, tiled when shorter than 3 s,
the centre 48,000 samples, then ``normalize_audio`` (min-max to about
[-1, 1]). Spectrogram: VGGish log-mel examples of the normalised clip,
(3, 96, 64); here it is the extraction's spectrogram, which the ``sspl``
profile computes the same way.

We add root attributes (``avprep_*``: version, plan hash, profile) that
SSPL's code never looks at; they let a rerun skip complete shards.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from avprep.errors import StoreError
from avprep.store.source import Clip

SAMPLE_RATE = 16000
AUDIO_SECONDS = 3
AUDIO_LENGTH = SAMPLE_RATE * AUDIO_SECONDS
FRAME_SIZE = 256
SPECT_SHAPE = (3, 96, 64)
KINDS = ("frames", "audios", "spects")
SSPL_SHARD_ROWS = 14400  # SSPL's loader hard-codes this for the 144k split
_VGGSOUND_ID = re.compile(r"^[A-Za-z0-9_-]{11}_\d{6}$")


def normalize_audio(audio: np.ndarray) -> np.ndarray:
    """SSPL's ``utils.normalize_audio`` on a float32 copy: min-max to about [-1, 1].

    ``(x - min) / (max + 1e-3) * 2 - 1`` step by step in float32, as SSPL's
    in-place version does. Under numpy 1.x (SSPL's environment) ``max + 1e-3``
    is a float64 sum rounded to float32 when it divides the array; we do the
    same so results match bit for bit under numpy 2 as well.
    """
    x = np.array(audio, dtype=np.float32, copy=True)
    x -= x.min()
    x /= np.float32(np.float64(x.max()) + 1e-3)
    x -= np.float32(0.5)
    x *= np.float32(2)
    return x


def center_clip(audio: np.ndarray, length: int = AUDIO_LENGTH) -> np.ndarray:
    """SSPL's 3 s window: tile a short track, then take the centre ``length`` samples."""
    n = audio.shape[0]
    if n == 0:
        raise StoreError("empty audio track")
    if n < length:
        audio = np.tile(audio, int(length / n) + 1)
        n = audio.shape[0]
    start = int(n / 2) - int(length / 2)
    return audio[start : start + length]


def sspl_audio(path: str | os.PathLike) -> np.ndarray:
    """A wav file as an SSPL training row: (48000,) float32, normalised."""
    # soundfile's float32 read of int16 PCM is x / 32768, as librosa.load gives.
    pcm, sr = sf.read(str(path), dtype="float32", always_2d=False)
    if sr != SAMPLE_RATE or pcm.ndim != 1:
        raise StoreError(f"{path}: SSPL rows need 16 kHz mono audio, got {sr} Hz {pcm.shape}")
    return normalize_audio(center_clip(pcm))


def sspl_frame(path: str | os.PathLike) -> np.ndarray:
    """A frame file as an SSPL row: 256x256 squashed (INTER_CUBIC), RGB, float32 0-255."""
    import cv2

    bgr = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise StoreError(f"{path}: frame cannot be decoded")
    bgr = cv2.resize(bgr, (FRAME_SIZE, FRAME_SIZE), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32)


def variant_of(split: str, test: bool | None = None) -> str:
    """``train`` or ``test``: explicit, else a split whose name starts with "test" is a test split."""
    if test is None:
        test = split.lower().startswith("test")
    return "test" if test else "train"


def file_names(
    split: str, variant: str, k: int, num_shards: int, *, sharded: bool | None = None
) -> dict[str, str]:
    """The three file names of shard ``k`` (0-based) as SSPL spells them.

    ``sharded`` (default: more than one shard) numbers the files from 1, as
    SSPL's 144k loader opens them, even when the rows fit one shard.
    """
    if sharded is None:
        sharded = num_shards > 1
    if variant == "test":
        # SSPL's test loader reads exactly these names (no split, no shard number).
        suffix = "" if not sharded else f"_{k + 1}"
        return {kind: f"h5py_test_{kind}{suffix}.h5" for kind in KINDS}
    suffix = f"_{split}" if not sharded else f"_{split}_{k + 1}"
    return {kind: f"h5py_train_{kind}{suffix}.h5" for kind in KINDS}


def dataset_key(variant: str, kind: str) -> str:
    return f"{variant}_{kind}"


def id_list_name(split: str, variant: str, ids: Sequence[str], ids_file: str | None) -> str:
    """Name of the id csv written beside the files.

    Train: SSPL's ``<corpus>_train_videos_<split>.csv`` (corpus ``vggsound``
    when every id is ``<ytid>_<start:06d>``, else ``flickr``). Test: the name
    of the ``--ids`` list (e.g. ``vggss_test_4692.csv``), whose rows the
    files follow, else ``<corpus>_test_videos.csv``.
    """
    corpus = "vggsound" if ids and all(_VGGSOUND_ID.match(i) for i in ids) else "flickr"
    if variant == "test":
        return Path(ids_file).name if ids_file else f"{corpus}_test_videos.csv"
    return f"{corpus}_train_videos_{split}.csv"


def write_shard(
    paths: dict[str, Path],
    clips: Sequence[Clip],
    variant: str,
    attrs: dict[str, Any],
    progress: bool = False,
) -> None:
    """Write one shard's three files (normally at temporary names), row by row."""
    n = len(clips)
    shapes = {
        "frames": (n, FRAME_SIZE, FRAME_SIZE, 3),
        "audios": (n, AUDIO_LENGTH),
        "spects": (n, *SPECT_SHAPE),
    }
    files = {kind: h5py.File(paths[kind], "w", libver="earliest") for kind in KINDS}
    try:
        dsets = {}
        for kind, f in files.items():
            for key, value in attrs.items():
                f.attrs[key] = value
            dsets[kind] = f.create_dataset(
                dataset_key(variant, kind), shapes[kind], dtype=np.float32, track_times=False
            )
        rows = tqdm(clips, desc=paths["frames"].name, unit="row", leave=False, disable=not progress)
        for i, clip in enumerate(rows):
            dsets["frames"][i] = sspl_frame(clip.frame)
            dsets["audios"][i] = sspl_audio(clip.audio)
            spect = np.load(clip.spectrogram, allow_pickle=False).astype(np.float32)
            if spect.shape != SPECT_SHAPE:
                raise StoreError(f"clip {clip.clip_id}: spectrogram {spect.shape} != {SPECT_SHAPE}")
            if not np.isfinite(spect).all():
                raise StoreError(f"clip {clip.clip_id}: spectrogram has NaN/inf")
            dsets["spects"][i] = spect
    finally:
        for f in files.values():
            f.close()


def shard_bytes(rows: int) -> int:
    """The bytes of one shard's three files (contiguous float32, plus 1 MiB of HDF5 tables)."""
    per_row = (FRAME_SIZE * FRAME_SIZE * 3 + AUDIO_LENGTH + int(np.prod(SPECT_SHAPE))) * 4
    return rows * per_row + (1 << 20)


def unfinished_pack(root: str | os.PathLike, frames_file: str) -> str | None:
    """Why the SSPL files in ``root`` are an unfinished pack, or None.

    ``avprep pack-h5`` writes ``index.json`` after every shard is complete, and
    marks its files with ``avprep_*`` attributes: such files without an index
    are what a killed or failed pack leaves (some shards, or none, may be
    missing). SSPL's own script writes no attributes; its files are judged by
    their id csv instead (see :func:`find_id_csv`).
    """
    root = Path(root)
    if (root / "index.json").is_file():
        return None
    try:
        with h5py.File(root / frames_file, "r") as f:
            ours = "avprep_format" in f.attrs
            num = f.attrs.get("avprep_num_shards")
    except OSError:
        return None  # unreadable: reported as such by the caller
    if not ours:
        return None
    shards = f", of {int(num)} shard(s)" if num is not None else ""
    return (
        f"{root} has no index.json, which avprep pack-h5 writes last: the pack did not "
        f"finish{shards} (killed or failed); rerun the same pack-h5 command to complete it"
    )


def incomplete(
    root: str | os.PathLike, split: str, frames_files: Sequence[str], rows: int
) -> str | None:
    """Why the shards found for ``split`` in ``root`` are not the whole store, or None.

    With ``index.json`` (of this split), the shard files and row count must
    be the indexed ones; without it, the files must not be an unfinished
    avprep pack (:func:`unfinished_pack`).
    """
    import json

    root = Path(root)
    if not frames_files:
        return None
    path = root / "index.json"
    if not path.is_file():
        return unfinished_pack(root, frames_files[0])
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        if d.get("split") != split or d.get("layout") != "sspl":
            return None
        want_rows = int(d["rows"])
        want_files = [s["file"] for s in d["shards"]]
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        return f"{path} is malformed ({type(exc).__name__}); repack the store"
    if list(frames_files) != want_files or rows != want_rows:
        return (
            f"{root} holds {len(frames_files)} shard(s) with {rows} rows of split {split!r}; "
            f"its index.json lists {len(want_files)} shard(s) with {want_rows} rows "
            "(shards missing or cut short: run `avprep verify`)"
        )
    return None


def find_id_csv(root: str | os.PathLike, split: str, variant: str) -> Path | None:
    """SSPL's id csv for ``split`` beside the files, if exactly one is there."""
    root = Path(root)
    pattern = f"*_train_videos_{split}.csv" if variant == "train" else "*test*.csv"
    found = sorted(root.glob(pattern))
    return found[0] if len(found) == 1 else None


def write_id_list(path: str | os.PathLike, ids: Sequence[str]) -> Path:
    """One id a line, no header: what ``pandas.read_csv(header=None)`` reads back."""
    from avprep.atomic import write_text

    return write_text(path, "".join(f"{i}\n" for i in ids))


def read_id_csv(path: str | os.PathLike) -> list[str]:
    """The ids of an SSPL id csv (one a line), as strings, in order."""
    from avprep.store.source import read_ids

    return read_ids(path)[0]
