"""avprep's native HDF5 shard: one file per shard holding every modality of its rows.

Datasets (N = rows in the shard; every per-row dataset is chunked one row per
chunk so a random read touches one chunk):

==================  ==========================  =====================================
name                shape, dtype                what
==================  ==========================  =====================================
``clip_id``         (N,) utf-8 string           clip ids, unique across the store
``frame_jpeg``      (B,) uint8                  the key frames' JPEG files, concatenated
``frame_offset``    (N+1,) int64                row i = ``frame_jpeg[off[i]:off[i+1]]``
``frame``           (N,H,W,3) uint8             RGB frames, with ``--frames raw`` instead
``audio_flac``      (B,) uint8                  each row's audio as a FLAC file, concatenated
``audio_offset``    (N+1,) int64                row i = ``audio_flac[off[i]:off[i+1]]``
``audio``           (N,T) int16                 mono PCM instead, with ``--audio pcm``
``spectrogram``     (N,...) float16             attr ``name``: the extraction's folder
``flow``            (N,2,H,W) float16           signed optical flow (dx, dy), pixels
``frame_time``      (N,) float64                key frame time in the source, seconds
``next_frame_time`` (N,) float64                flow's second frame (NaN if none)
``audio_start``     (N,) float64                first audio sample's time, seconds
``meta``            (N,) utf-8 string           the extraction record's meta, JSON
==================  ==========================  =====================================

JPEG bytes are kept in one flat byte dataset with an offset table rather
than an HDF5 variable-length dataset: a vlen element lives in the global heap
and costs ~0.2 ms to read, a slice of a flat dataset ~0.02 ms (measured with
h5py 3.16 / HDF5 2.0). ``frame_jpeg`` is chunked in 32 KiB pieces, so a
frame is read with one or two chunk reads.

Audio is FLAC by default (format version 2): lossless, so the decoded int16
samples are bit-identical to the extraction's WAV, in fewer bytes (how many
depends on the sound: 28 % of PCM for two tones, 83 % for tones in white
noise, measured). Each row is a complete FLAC stream
(16-bit mono, libFLAC at soundfile's compression level 0.5), kept in the same
flat-bytes + offset-table scheme as the frames; ``audio_encoding`` says which
of ``flac`` / ``pcm`` a shard holds. Version-1 shards (int16 ``audio`` only)
read as before.

File attributes: ``format`` (``avprep-native``), ``format_version``,
``avprep_version``, ``split``, ``shard``, ``num_shards``, ``row_start``,
``rows``, ``modalities`` (JSON list), ``frames`` (``jpeg``/``raw``),
``audio_encoding`` (``flac``/``pcm``), ``compression``, ``sample_rate``, ``spectrogram_name``, ``profile``, ``profile_params`` (JSON),
``source_manifest_sha256`` and ``plan_sha256`` (the hash of everything that
decides this shard's bytes: a rerun keeps a shard whose plan hash matches).

Files are byte-for-byte reproducible: object timestamps are off
(``track_times=False``) and nothing time-dependent is stored.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from avprep.clip import Clip
from avprep.errors import StoreError
from avprep.store.source import TIME_KEYS

FRAME_CHUNK_BYTES = 32 * 1024
AUDIO_CHUNK_BYTES = 32 * 1024
COMPRESSIONS = ("none", "lzf", "gzip")
AUDIO_ENCODINGS = ("flac", "pcm")
# soundfile's 0-1 scale (libFLAC level 5, its default): 1.0 saves ~1.5 % more and
# decodes slower. Fixed here so the bytes do not follow a library default.
FLAC_LEVEL = 0.5
# The native format's version: 1 had int16 audio only; 2 adds FLAC audio.
NATIVE_FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclasses.dataclass(frozen=True)
class NativeSpec:
    """The shapes and options every shard of one split shares."""

    modalities: tuple[str, ...]
    frames: str = "jpeg"  # "jpeg" | "raw"
    frame_shape: tuple[int, int, int] | None = None  # (H, W, 3), raw frames only
    sample_rate: int | None = None
    audio_length: int | None = None
    spectrogram_shape: tuple[int, ...] | None = None
    spectrogram_name: str | None = None
    flow_shape: tuple[int, ...] | None = None
    compression: str = "none"  # for pcm audio / spectrogram / flow ("none" | "lzf" | "gzip")
    audio: str = "flac"  # "flac" | "pcm"


def shard_name(split: str, k: int, num_shards: int) -> str:
    """``<split>-<k>-of-<K>.h5`` with 5-digit, 0-based k."""
    return f"{split}-{k:05d}-of-{num_shards:05d}.h5"


def _filters(spec: NativeSpec) -> dict[str, Any]:
    if spec.compression == "gzip":
        return {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    if spec.compression == "lzf":
        return {"compression": "lzf", "shuffle": True}
    return {}


def _decode_rgb(data: bytes | np.ndarray) -> np.ndarray | None:
    if _simplejpeg is not None:
        # libjpeg-turbo through simplejpeg: the same pixels as OpenCV's decoder (tested),
        # ~15 % less CPU (no BGR round trip, no cv::Mat). What it refuses (CMYK, or a
        # damaged file libjpeg only warns about) goes to OpenCV as before.
        try:
            return _simplejpeg.decode_jpeg(data, colorspace="RGB")
        except ValueError:
            pass
    import cv2

    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    rgb_flag = getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV >= 4.11: no BGR round trip
    if rgb_flag is not None:
        return cv2.imdecode(buf, rgb_flag)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def decode_jpeg(data: bytes | np.ndarray, reduce: int = 1) -> np.ndarray | None:
    """RGB uint8 (H, W, 3) from JPEG bytes (OpenCV's libjpeg-turbo); None if undecodable.

    ``reduce`` 2, 4 or 8 decodes at 1/2, 1/4 or 1/8 of the size (ceil) with
    libjpeg's DCT scaling: cheaper than decoding in full and resizing, and not
    the same pixels as a resize.
    """
    if reduce == 1:
        return _decode_rgb(data)
    import cv2

    flag = _REDUCED.get(reduce)
    if flag is None:
        raise ValueError(f"reduce must be 1, 2, 4 or 8, not {reduce!r}")
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    rgb_flag = getattr(cv2, "IMREAD_COLOR_RGB", None)
    if rgb_flag is not None:
        return cv2.imdecode(buf, (flag & ~cv2.IMREAD_COLOR) | rgb_flag)
    bgr = cv2.imdecode(buf, flag)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


_REDUCED = {2: 17, 4: 33, 8: 65}  # cv2.IMREAD_REDUCED_COLOR_{2,4,8}


def decode_jpeg_into(data: bytes | np.ndarray, dst: np.ndarray) -> bool:
    """Decode RGB straight into ``dst`` (uint8 (H, W, 3), C-contiguous); False when that
    cannot be done (no simplejpeg, another size, a file it refuses): decode otherwise."""
    if _simplejpeg is None:
        return False
    try:
        got = _simplejpeg.decode_jpeg(data, colorspace="RGB", buffer=dst)
    except ValueError:
        return False
    return got.shape == dst.shape and got.ctypes.data == dst.ctypes.data


def encode_flac(pcm: np.ndarray, sample_rate: int) -> bytes:
    """One complete FLAC stream (16-bit mono) holding ``pcm`` (int16 (T,)), losslessly.

    Deterministic: the same samples give the same bytes (libFLAC writes no
    time; its vendor string names the libFLAC version soundfile bundles).
    """
    buf = io.BytesIO()
    sf.write(buf, pcm, sample_rate, format="FLAC", subtype="PCM_16", compression_level=FLAC_LEVEL)
    return buf.getvalue()


def decode_flac(data: bytes | np.ndarray, reference: bool = False) -> np.ndarray:
    """The int16 samples (T,) of one FLAC stream written by :func:`encode_flac`.

    Uses miniaudio's dr_flac when installed (about 2x faster than libsndfile
    here), else soundfile; ``reference=True`` always uses soundfile (libFLAC,
    the reference decoder; ``avprep verify`` does). Both give the same
    samples. Raises :class:`StoreError` if the bytes are not a mono FLAC
    stream.
    """
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    if _miniaudio is not None and not reference:
        try:
            dec = _miniaudio.flac_read_s16(raw)
        except Exception as exc:  # noqa: BLE001 - miniaudio.DecodeError and friends
            raise StoreError(f"FLAC audio cannot be decoded ({exc})") from exc
        if dec.nchannels != 1:
            raise StoreError(f"FLAC audio has {dec.nchannels} channels, expected mono")
        return np.frombuffer(dec.samples, dtype=np.int16)
    try:
        pcm, _ = sf.read(io.BytesIO(raw), dtype="int16", always_2d=False)
    except Exception as exc:  # noqa: BLE001 - soundfile.LibsndfileError, RuntimeError
        raise StoreError(f"FLAC audio cannot be decoded ({exc})") from exc
    if pcm.ndim != 1:
        raise StoreError(f"FLAC audio has {pcm.shape[1]} channels, expected mono")
    return pcm


def check_audio_length(pcm: np.ndarray, length: int, where: str) -> None:
    """Raise :class:`StoreError` unless decoded audio has the stored length.

    A damaged FLAC row can decode to fewer samples (0, or some of its frames)
    without a decoder error; ``length`` is the shard's ``audio_length``
    attribute (0 when unknown: not checked).
    """
    if length > 0 and pcm.shape[0] != length:
        raise StoreError(
            f"{where}: decoded to {pcm.shape[0]} samples, the store says {length} "
            "(damaged row: run `avprep verify`, repack the clip)"
        )


try:  # optional fast JPEG decoder (OpenCV decodes the same pixels)
    import simplejpeg as _simplejpeg
except ImportError:  # pragma: no cover
    _simplejpeg = None

try:  # optional fast FLAC decoder
    import miniaudio as _miniaudio
except ImportError:  # pragma: no cover - soundfile decodes the same samples
    _miniaudio = None


def write_shard(
    path: str | os.PathLike,
    clips: Sequence[Clip],
    spec: NativeSpec,
    attrs: dict[str, Any],
    progress: bool = False,
) -> None:
    """Write ``clips`` as one native shard at ``path`` (normally a temporary name).

    Rows are written one at a time straight into the file: at most one clip's
    data is in memory, whatever the shard size. The steps, in the order that
    decides the file's bytes: the attributes, the ``clip_id`` column, every
    dataset (:class:`_ShardRows`), then each row, then the closing offsets.
    """
    attrs = dict(attrs)
    if "audio" in spec.modalities:  # how to read the audio is the shard's own fact
        attrs.setdefault("audio_encoding", spec.audio)
        attrs.setdefault("audio_length", int(spec.audio_length or 0))
    with h5py.File(path, "w", libver="earliest") as f:
        for key, value in attrs.items():
            f.attrs[key] = value
        rows = _ShardRows(f, clips, spec)
        bar = tqdm(clips, desc=Path(path).name, unit="row", leave=False, disable=not progress)
        for i, clip in enumerate(bar):
            rows.write(i, clip)
        rows.close()


_TRACK = {"track_times": False}  # no object timestamps: the same rows give the same bytes


class _ShardRows:
    """The datasets of one open shard, created in a fixed order, and the row writer.

    ``frame_jpeg`` and ``audio_flac`` grow by each row's bytes; their offset
    tables get the running totals (and the end, by :meth:`close`).
    """

    def __init__(self, f: h5py.File, clips: Sequence[Clip], spec: NativeSpec) -> None:
        n = len(clips)
        self.n, self.spec = n, spec
        text = h5py.string_dtype("utf-8")
        # every dataset stays open until the file closes: closing one early moves where
        # HDF5 places the next ones (same data, other bytes)
        self.ids = ids = f.create_dataset(
            "clip_id", (n,), dtype=text, chunks=(max(1, min(n, 4096)),), **_TRACK
        )
        ids[:] = [c.clip_id for c in clips]
        self.meta = f.create_dataset(
            "meta", (n,), dtype=text, chunks=(max(1, min(n, 1024)),), **_TRACK
        )
        self.times = {
            k: f.create_dataset(k, (n,), dtype=np.float64, fillvalue=np.nan, **_TRACK)
            for k in TIME_KEYS
        }
        self.d: dict[str, h5py.Dataset] = {}
        self._create_frames(f)
        self._create_audio(f)
        filt = _filters(spec)
        for m, shape in (("spectrogram", spec.spectrogram_shape), ("flow", spec.flow_shape)):
            if m in spec.modalities:
                self.d[m] = f.create_dataset(
                    m, (n, *shape), dtype=np.float16, chunks=(1, *shape), **filt, **_TRACK
                )
        if "spectrogram" in self.d:
            self.d["spectrogram"].attrs["name"] = spec.spectrogram_name or ""
        self.frame_end = self.audio_end = 0

    def _create_frames(self, f: h5py.File) -> None:
        spec, n, d = self.spec, self.n, self.d
        if "frame" not in spec.modalities:
            return
        if spec.frames == "raw":
            h, w, c = spec.frame_shape
            d["frame"] = f.create_dataset(
                "frame", (n, h, w, c), dtype=np.uint8, chunks=(1, h, w, c), **_TRACK
            )
            return
        d["frame_jpeg"] = f.create_dataset(
            "frame_jpeg", (0,), maxshape=(None,), dtype=np.uint8,
            chunks=(FRAME_CHUNK_BYTES,), **_TRACK,
        )  # fmt: skip
        d["frame_offset"] = f.create_dataset("frame_offset", (n + 1,), dtype=np.int64, **_TRACK)

    def _create_audio(self, f: h5py.File) -> None:
        spec, n, d = self.spec, self.n, self.d
        if "audio" in spec.modalities and spec.audio == "flac":
            # FLAC bytes are entropy-coded already: no HDF5 filter on them
            d["audio_flac"] = f.create_dataset(
                "audio_flac", (0,), maxshape=(None,), dtype=np.uint8,
                chunks=(AUDIO_CHUNK_BYTES,), **_TRACK,
            )  # fmt: skip
            d["audio_offset"] = f.create_dataset("audio_offset", (n + 1,), dtype=np.int64, **_TRACK)
        elif "audio" in spec.modalities:
            t = spec.audio_length
            d["audio"] = f.create_dataset(
                "audio", (n, t), dtype=np.int16, chunks=(1, t), **_filters(spec), **_TRACK
            )

    def write(self, i: int, clip: Clip) -> None:
        """Row ``i``: its meta and times, then frame, audio, spectrogram, flow."""
        self.meta[i] = json.dumps(clip.meta, sort_keys=True, default=str)
        for k in TIME_KEYS:
            v = clip.meta.get(k)
            if isinstance(v, (int, float)):
                self.times[k][i] = float(v)
        self._write_frame(i, clip)
        if "audio" in self.d or "audio_flac" in self.d:
            self._write_audio(i, clip)
        for m in ("spectrogram", "flow"):
            if m in self.d:
                self.d[m][i] = _load_f16(clip, m, self.d[m].shape[1:])

    def _write_frame(self, i: int, clip: Clip) -> None:
        d = self.d
        if "frame_jpeg" in d:
            data = clip.frame.read_bytes()
            if data[:2] != b"\xff\xd8":
                raise StoreError(f"clip {clip.clip_id}: {clip.frame} is not a JPEG file")
            d["frame_offset"][i] = self.frame_end
            self.frame_end = _append_bytes(d["frame_jpeg"], self.frame_end, data)
        elif "frame" in d:
            rgb = _decode_rgb(clip.frame.read_bytes())
            if rgb is None or rgb.shape != self.spec.frame_shape:
                raise StoreError(f"clip {clip.clip_id}: frame undecodable or resized since probing")
            d["frame"][i] = rgb

    def _write_audio(self, i: int, clip: Clip) -> None:
        spec, d = self.spec, self.d
        pcm, sr = sf.read(str(clip.audio), dtype="int16", always_2d=False)
        if pcm.ndim != 1 or pcm.shape[0] != spec.audio_length or sr != spec.sample_rate:
            raise StoreError(
                f"clip {clip.clip_id}: audio changed since probing "
                f"({pcm.shape}, {sr} Hz; expected ({spec.audio_length},), "
                f"{spec.sample_rate} Hz)"
            )
        if "audio" in d:
            d["audio"][i] = pcm
        else:
            d["audio_offset"][i] = self.audio_end
            self.audio_end = _append_bytes(d["audio_flac"], self.audio_end, encode_flac(pcm, sr))

    def close(self) -> None:
        """The offset tables' end entries (row n = the flat datasets' lengths)."""
        if "frame_offset" in self.d:
            self.d["frame_offset"][self.n] = self.frame_end
        if "audio_offset" in self.d:
            self.d["audio_offset"][self.n] = self.audio_end


def _append_bytes(flat: h5py.Dataset, end: int, data: bytes) -> int:
    """Grow the flat byte dataset ``flat`` (``end`` bytes long) by ``data``; its new length."""
    flat.resize((end + len(data),))
    flat[end : end + len(data)] = np.frombuffer(data, np.uint8)
    return end + len(data)


def estimate_shard_bytes(clips: Sequence[Clip], spec: NativeSpec) -> int:
    """An upper bound of the bytes :func:`write_shard` will write for ``clips``.

    JPEG frames are stored as they are; FLAC audio is at most PCM plus its
    header; float16 arrays at most their raw size (compression only shrinks
    them); plus each row's metadata and a fixed margin for HDF5's own tables.
    Pack checks the disk has this much free before it starts a shard: HDF5
    hitting a full disk mid-write can crash the process instead of raising.
    """
    total = 1 << 20
    per_row = 4096 + 8 * (len(TIME_KEYS) + 2)
    if spec.frames == "raw" and spec.frame_shape and "frame" in spec.modalities:
        per_row += int(np.prod(spec.frame_shape))
    if "audio" in spec.modalities:
        per_row += 2 * int(spec.audio_length or 0) + 8192
    for m, shape in (("spectrogram", spec.spectrogram_shape), ("flow", spec.flow_shape)):
        if m in spec.modalities and shape:
            per_row += 2 * int(np.prod(shape))
    for clip in clips:
        total += per_row + len(json.dumps(clip.meta, default=str))
        if "frame" in spec.modalities and spec.frames != "raw":
            total += os.path.getsize(clip.frame) + FRAME_CHUNK_BYTES // 8
    return total


def _load_f16(clip: Clip, modality: str, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.load(clip.output(modality), allow_pickle=False)
    if arr.shape != tuple(shape):
        raise StoreError(f"clip {clip.clip_id}: {modality} shape {arr.shape} != {tuple(shape)}")
    out = arr.astype(np.float16)
    if not np.isfinite(out).all():
        raise StoreError(
            f"clip {clip.clip_id}: {modality} has NaN/inf (or values beyond float16's "
            f"±65504); re-extract it or leave it out with --ids"
        )
    return out


# Flat byte datasets and their offset tables (JPEG frames, FLAC audio).
BYTE_DATASETS = (("frame_jpeg", "frame_offset"), ("audio_flac", "audio_offset"))


def write_virtual(folder: Path, name: str, shard_files: Sequence[str], rows: Sequence[int]) -> Path:
    """One HDF5 file whose datasets present all shards' rows as one (no data copied).

    Row-aligned datasets are stitched; JPEG and FLAC bytes are stitched too,
    and their offsets rewritten to be global so ``frame_jpeg[off[i]:off[i+1]]``
    still holds. The file refers to the shards by relative name: keep them in
    one folder.
    """
    from avprep.atomic import atomic_path

    total = int(sum(rows))
    flat = {b for pair in BYTE_DATASETS for b in pair}
    with h5py.File(folder / shard_files[0], "r") as f0:
        names = [k for k in f0.keys() if k not in flat]
        info = {k: (f0[k].shape[1:], f0[k].dtype) for k in names}
        byte_sets = [(b, o) for b, o in BYTE_DATASETS if b in f0]
        attrs = dict(f0.attrs)
    stitched = {}  # bytes dataset -> (sizes per shard, global offsets)
    for b, o in byte_sets:
        sizes, offsets, base = [], [], 0
        for sf_name in shard_files:
            with h5py.File(folder / sf_name, "r") as fk:
                sizes.append(int(fk[b].shape[0]))
                offsets.append(fk[o][:-1] + base)
                base += sizes[-1]
        stitched[b] = (o, sizes, np.concatenate([*offsets, [base]]))
    final = folder / name
    with atomic_path(final) as tmp, h5py.File(tmp, "w") as out:
        for key in ("format", "format_version", "avprep_version", "split", "modalities",
                    "frames", "audio_encoding", "sample_rate", "spectrogram_name", "profile",
                    "profile_params", "source_manifest_sha256"):  # fmt: skip
            if key in attrs:
                out.attrs[key] = attrs[key]
        out.attrs["rows"] = total
        out.attrs["virtual"] = True
        for k, (shape, dtype) in info.items():
            layout = h5py.VirtualLayout(shape=(total, *shape), dtype=dtype)
            start = 0
            for sf_name, r in zip(shard_files, rows):
                layout[start : start + r] = h5py.VirtualSource(sf_name, k, shape=(r, *shape))
                start += r
            fill = np.nan if dtype.kind == "f" else None
            out.create_virtual_dataset(k, layout, fillvalue=fill)
        for b, (o, sizes, offsets) in stitched.items():
            layout = h5py.VirtualLayout(shape=(int(offsets[-1]),), dtype=np.uint8)
            start = 0
            for sf_name, size in zip(shard_files, sizes):
                layout[start : start + size] = h5py.VirtualSource(sf_name, b, shape=(size,))
                start += size
            out.create_virtual_dataset(b, layout)
            out.create_dataset(o, data=offsets)
    return final
