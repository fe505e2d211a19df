"""Benchmark the HDF5 store: bytes per sample, pack memory, random-access read speed.

One run, the same clips for every contender. By default (``--content
synthav``) they are SynthAV videos made by ``avprep synth`` and extracted by
``avprep extract --profile sspl``: real 256x256 q95 key frames, 3 s of 16 kHz
audio and VGGish log-mel spectrograms (3, 96, 64), SSPL's sizes;
``--content fixture`` uses the tests' generated files instead (random-normal
spectrograms, which no lossless coder can shrink).

* bytes per sample: avprep native shards (the defaults: JPEG, FLAC, float16
  spectrograms with gzip) vs SSPL's layout (float32 frames, audio and
  spectrograms), plus native variants (no gzip, PCM audio, raw frames);
* pack peak RSS (``/usr/bin/time -v`` around ``avprep pack-h5`` in a
  subprocess) for N and 4N clips, beside a script that builds the split in
  RAM the way SSPL's ``read_frame_audio_then_save_hdf5.py`` does;
* random-access read throughput with 2 worker processes, shuffled, batch 32,
  one warm-up epoch then four timed (workers warm, files in the page cache),
  in ``--rounds`` interleaved rounds (medians are reported, and ratios are
  medians of per-round ratios: on a shared machine the load changes between
  rounds), every full reader returning the same sample (frame uint8 HxWx3,
  audio float32, spectrogram float32):
    - native shards through torch's DataLoader (``__getitems__`` batch
      reads), ``batch_loader`` and ``RingLoader`` (views, and copies), and
      ``--audio pcm --compression none`` shards;
    - SSPL layout read SSPL's way (three ``h5py.File`` opened per sample);
    - jpg+wav folders decoded per sample as SSPL's folder loader does (PIL
      frame, ``librosa.load`` wav, normalise, VGGish log-mel per sample);
  the training content (frame + spectrogram: what SSPL's training uses) read
  by native readers and by SSPL's way without the audio file; for context
  SSPLDataset (SSPL layout, files opened once per worker) and zero-filled
  samples through DataLoader and RingLoader (each loader's own ceiling);
* CPU time per sample in one process, and what decoding one frame and one
  clip of audio costs (the floor under any reader that returns pixels and
  samples).

Goals (DESIGN.md): native <= 1/8 of SSPL's bytes per sample; native read
>= 5x the SSPL-style read and >= 2x the folder read; pack RSS bounded.
Writes benchmarks/results/store.md. Usage: ``python benchmarks/bench_store.py
[--clips 300] [--rounds 5] [--content synthav|fixture] [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "store.md"
AVPREP = [sys.executable, "-c", "from avprep.cli import main; main()"]


# -- baselines ---------------------------------------------------------------
class SSPLStyleDataset(Dataset):
    """SSPL's VideoDataset h5 access: every sample opens the three files anew."""

    def __init__(self, root: Path, split: str, rows_per_shard: int, n: int, audio: bool = True):
        self.root, self.split, self.rps, self.n = root, split, rows_per_shard, n
        self.audio = audio

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        k, r = index // self.rps + 1, index % self.rps
        stem = f"{self.split}_{k}.h5"
        with h5py.File(self.root / f"h5py_train_frames_{stem}", "r") as hf:
            frame = hf["train_frames"][r, :, :, :]
        sample = {"index": index, "frame": frame.astype(np.uint8)}
        if self.audio:
            with h5py.File(self.root / f"h5py_train_audios_{stem}", "r") as hf:
                sample["audio"] = hf["train_audios"][r, :]
        with h5py.File(self.root / f"h5py_train_spects_{stem}", "r") as hf:
            sample["spectrogram"] = hf["train_spects"][r, :, :, :]
        return sample


class FolderDataset(Dataset):
    """jpg + wav folders decoded per sample, as SSPL's folder (Flickr test) loader does."""

    def __init__(self, root: Path, ids: list[str], spectrogram_npy: bool = False):
        self.root, self.ids, self.npy = root, ids, spectrogram_npy

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        cid = self.ids[index]
        if self.npy:  # the extraction folder: frame, wav and a precomputed spectrogram
            import cv2
            import soundfile as sf

            bgr = cv2.imread(str(self.root / "frames" / f"{cid}.jpg"))
            frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            audio, _ = sf.read(self.root / "audio" / f"{cid}.wav", dtype="float32")
            spect = np.load(self.root / "spectrograms" / spect_dir(self.root) / f"{cid}.npy")
        else:
            from PIL import Image

            from avprep.spectrogram import compute
            from avprep.store.sspl import center_clip, normalize_audio

            frame = np.array(Image.open(self.root / "frames" / f"{cid}.jpg").convert("RGB"))
            wav = _load_wav(self.root / "audio" / f"{cid}.wav")
            audio = normalize_audio(center_clip(wav))
            spect = compute("vggish", audio.astype(np.float64), 16000)
        return {"index": index, "frame": frame, "audio": audio, "spectrogram": spect}


def spect_dir(root: Path) -> str:
    """The extraction folder's spectrogram subfolder (``vggish``, ``vggish-sspl``, ...)."""
    return next(p.name for p in sorted((root / "spectrograms").iterdir()) if p.is_dir())


def _load_wav(path: Path) -> np.ndarray:
    """SSPL's ``librosa.load(sr=16000, mono=True)``; soundfile's read where librosa is
    absent (for a 16 kHz mono wav librosa does the same read and nothing else)."""
    try:
        import librosa
    except ImportError:
        import soundfile as sf

        return sf.read(path, dtype="float32")[0]
    return librosa.load(path, sr=16000, mono=True)[0]


def synthav_extract(work: Path, n: int) -> Path:
    """``n`` SynthAV clips through the real pipeline: ``avprep synth`` then ``avprep extract
    --profile sspl`` (256x256 q95 key frame, centre 3 s at 16 kHz, VGGish log-mel)."""
    jobs = str(min(2, os.cpu_count() or 1))
    out = work / "extracted"
    for cmd in (
        [*AVPREP, "synth", "--out", str(work / "synthav"), "--clips", str(n), "--jobs", jobs],
        [*AVPREP, "extract", "--in", str(work / "synthav" / "videos"), "--out", str(out),
         "--profile", "sspl", "--jobs", jobs, "--no-progress"],
    ):  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out


def _replicate(src: Path, dst: Path, ids: list[str], times: int) -> Path:
    """An extraction folder holding ``ids`` ``times`` times under new ids ``<id>-r<k>``
    (symlinked files, rewritten manifest records): more rows of the same content."""
    from avprep.manifest import Manifest

    man_src = Manifest(src / "manifest.jsonl")
    man = Manifest(dst / "manifest.jsonl")
    man.write_header(**man_src.header)
    for k in range(times):
        for cid in ids:
            rec = man_src.get(cid)
            new_id = f"{cid}-r{k}"
            outputs = {}
            for key, rel in rec.outputs.items():
                new_rel = rel.replace(cid, new_id)
                (dst / new_rel).parent.mkdir(parents=True, exist_ok=True)
                if not (dst / new_rel).exists():
                    os.symlink((src / rel).resolve(), dst / new_rel)
                outputs[key] = new_rel
            man.append(dataclasses.replace(rec, clip_id=new_id, outputs=outputs))
    return dst


def sspl_script_baseline(in_dir: Path, out_dir: Path) -> None:
    """SSPL's packing script's memory pattern: the whole split in RAM, then one write."""
    from avprep.manifest import Manifest
    from avprep.store.sspl import sspl_audio, sspl_frame

    ids = sorted(Manifest(in_dir / "manifest.jsonl").ok_ids())
    n = len(ids)
    frames = np.zeros((n, 256, 256, 3), dtype="float32")
    audios = np.zeros((n, 48000), dtype="float32")
    spects = np.zeros((n, 3, 96, 64), dtype="float32")
    for i, cid in enumerate(ids):
        frames[i] = sspl_frame(in_dir / "frames" / f"{cid}.jpg")
        audios[i] = sspl_audio(in_dir / "audio" / f"{cid}.wav")
        spects[i] = np.load(in_dir / "spectrograms" / spect_dir(in_dir) / f"{cid}.npy")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, key, arr in (("frames", "train_frames", frames), ("audios", "train_audios", audios),
                           ("spects", "train_spects", spects)):  # fmt: skip
        with h5py.File(out_dir / f"h5py_train_{name}_script.h5", "w") as hf:
            hf.create_dataset(key, data=arr)


# -- measuring ---------------------------------------------------------------
def timed_rss(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of a subprocess, via /usr/bin/time -v when present."""
    t0 = time.perf_counter()
    if Path("/usr/bin/time").exists():
        res = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if res.returncode != 0:
            raise RuntimeError(f"{cmd} failed:\n{res.stderr[-2000:]}")
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr)
        return wall, int(m.group(1)) / 1024
    # No GNU time: a fresh wrapper process whose only child is the command, so its
    # RUSAGE_CHILDREN peak is that command's alone.
    wrapper = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
        "capture_output=True); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    res = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{res.stderr[-2000:]}")
    return wall, int(res.stdout.split()[-1]) / 1024


def folder_bytes(folder: Path, pattern: str = "*.h5") -> int:
    return sum(p.stat().st_size for p in folder.glob(pattern))


class PerSample(Dataset):
    """Only a dataset's per-sample reads (hides ``__getitems__``): how a DataLoader read a
    ShardDataset before batch reads existed."""

    def __init__(self, ds: Dataset):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int) -> dict:
        return self.ds[index]


class ZeroDataset(Dataset):
    """Zero-filled samples of SSPL's sizes, no reading: what a 2-worker DataLoader costs by
    itself (worker collation into shared memory, transfer), the ceiling for every reader."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        return {
            "index": index,
            "frame": np.zeros((256, 256, 3), np.uint8),
            "audio": np.zeros(48000, np.float32),
            "spectrogram": np.zeros((3, 96, 64), np.float32),
        }


@dataclasses.dataclass
class Reader:
    label: str
    ds: Any
    # "loader": DataLoader(batch_size=32) | "batch": batch_loader | "ring": RingLoader
    # (views) | "ring_copy": RingLoader(copy=True)
    how: str = "loader"
    collate_fn: Any = None


def make_loader(r: Reader, batch: int) -> DataLoader:
    from avprep.store import batch_loader

    kw = {"num_workers": 2, "persistent_workers": True,
          "generator": torch.Generator().manual_seed(0)}  # fmt: skip
    if r.how == "batch":
        return batch_loader(r.ds, batch, shuffle=True, **kw)
    if r.how.startswith("ring"):
        from avprep.store import RingLoader

        return RingLoader(r.ds, batch, shuffle=True, num_workers=2, generator=kw["generator"],
                          copy=r.how == "ring_copy")  # fmt: skip
    return DataLoader(r.ds, batch_size=batch, shuffle=True, collate_fn=r.collate_fn, **kw)


def read_rate(r: Reader, batch: int = 32, epochs: int = 5, on_batch=None) -> float:
    """Samples per second over all but the first epoch of a 2-worker shuffled DataLoader
    (the first starts the workers and warms the page cache)."""
    loader = make_loader(r, batch)
    n, t = 0, 0.0
    for epoch in range(epochs):
        t0 = time.perf_counter()
        count = 0
        for b in loader:
            if on_batch is not None:
                on_batch(b)
            count += len(b["index"])
        if epoch:
            n += count
            t += time.perf_counter() - t0
    close = getattr(loader, "close", None)
    if close is not None:
        close()
    del loader
    return n / t


def cpu_us(r: Reader, reads: int = 320, batch: int = 32) -> float:
    """CPU microseconds per random sample in this process (no DataLoader), read the way the
    reader's loader reads: per sample, ``__getitems__`` or ``read_batch`` per 32 rows."""
    rng = np.random.default_rng(1)
    ds = r.ds
    rows = rng.integers(0, len(ds), reads + batch).tolist()
    if r.how.startswith("ring") and hasattr(ds, "read_batch"):
        first = ds.read_batch(rows[:batch])  # the ring's path: decode into reused buffers
        out = {k: v.clone() for k, v in first.items() if isinstance(v, torch.Tensor)}

        def read(b):
            return ds.read_batch(b, out=out)
    elif r.how == "batch":

        def read(b):
            return ds.read_batch(b)
    elif hasattr(ds, "__getitems__"):

        def read(b):
            return ds.__getitems__(b)
    else:

        def read(b):
            return [ds[i] for i in b]

    read(rows[:batch])  # warm: files open, page cache
    t0 = time.process_time()
    for k in range(batch, reads + batch, batch):
        read(rows[k : k + batch])
    return (time.process_time() - t0) / reads * 1e6


def decode_costs(native_dir: Path, reps: int = 200) -> dict[str, float]:
    """CPU µs to decode one stored JPEG frame (full and half size) and one FLAC clip."""
    from avprep.store import native

    path = sorted(native_dir.glob("*.h5"))[0]
    with h5py.File(path, "r") as f:
        off, aoff = f["frame_offset"][:], f["audio_offset"][:]
        rows = range(min(8, len(off) - 1))
        jpegs = [f["frame_jpeg"][off[i] : off[i + 1]] for i in rows]
        flacs = [f["audio_flac"][aoff[i] : aoff[i + 1]].tobytes() for i in rows]

    def cost(fn, items) -> float:
        for x in items:
            fn(x)
        t0 = time.process_time()
        for k in range(reps):
            fn(items[k % len(items)])
        return (time.process_time() - t0) / reps * 1e6

    return {
        "jpeg": cost(native.decode_jpeg, jpegs),
        "jpeg_half": cost(lambda x: native.decode_jpeg(x, 2), jpegs),
        "flac": cost(native.decode_flac, flacs),
        "flac_soundfile": cost(lambda x: native.decode_flac(x, reference=True), flacs),
        "flac_bytes": float(np.mean([len(x) for x in flacs])),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument(
        "--content",
        choices=["synthav", "fixture"],
        default="synthav",
        help="synthav: SynthAV videos through avprep synth + extract (real frames, "
        "sounds and log-mel spectrograms); fixture: the tests' generated files "
        "(random-normal spectrograms: incompressible, a worst case for bytes)",
    )
    ap.add_argument("--sspl-script-baseline", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sspl_script_baseline:
        sspl_script_baseline(*args.sspl_script_baseline)
        return

    from avprep.manifest import Manifest
    from avprep.store import ShardDataset, SSPLDataset
    from tests.store_fixtures import make_extract_dir

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_store_"))
    work.mkdir(parents=True, exist_ok=True)
    n = args.clips
    t0 = time.perf_counter()
    load_start = os.getloadavg()
    if args.content == "synthav":
        print(f"making {n} SynthAV clips and extracting them (profile sspl) in {work} ...",
              flush=True)  # fmt: skip
        content = synthav_extract(work, n)
        ids = sorted(Manifest(content / "manifest.jsonl").ok_ids())[:n]
        big = _replicate(content, work / "ex4n", ids, 4)
        ids_big = [f"{cid}-r{k}" for k in range(4) for cid in ids]
        ids = ids_big[:n]
    else:
        print(f"making {4 * n} fixture clips in {work} ...", flush=True)
        big, ids_big = make_extract_dir(work / "ex4n", 4 * n, quality=95)
        ids = ids_big[:n]
    small = work / "ex"
    with open(work / "ids.txt", "w") as fh:
        fh.write("".join(f"{i}\n" for i in ids))

    def pack_cmd(out: str, split: str, *extra: str, ids_file: bool = True) -> list[str]:
        cmd = [*AVPREP, "pack-h5", "--in", str(big), "--out", str(work / out), "--split", split,
               "--jobs", "1", *extra]  # fmt: skip
        return cmd + (["--ids", str(work / "ids.txt")] if ids_file else [])

    print("packing ...", flush=True)
    rps = max(1, n // 4)
    t_nat, rss_nat = timed_rss(pack_cmd("native", "train", "--rows-per-shard", str(rps)))
    timed_rss(
        pack_cmd("native_plain", "train", "--rows-per-shard", str(rps), "--compression", "none")
    )
    t_pcm, rss_pcm = timed_rss(
        pack_cmd("native_pcm", "train", "--rows-per-shard", str(rps), "--audio", "pcm",
                 "--compression", "none")
    )  # fmt: skip
    t_sspl, rss_sspl = timed_rss(
        pack_cmd("sspl", "bench", "--layout", "sspl", "--rows-per-shard", str(rps))
    )
    t_nat4, rss_nat4 = timed_rss(
        pack_cmd("native4n", "train", "--rows-per-shard", str(rps), ids_file=False)
    )
    timed_rss(
        pack_cmd("native_gzip", "train", "--rows-per-shard", str(rps), "--audio", "pcm",
                 "--compression", "gzip")
    )  # fmt: skip
    timed_rss(pack_cmd("native_raw", "train", "--rows-per-shard", str(rps), "--frames", "raw"))
    timed_rss(
        pack_cmd("native_fs", "train", "--rows-per-shard", str(rps), "--modalities",
                 "frame,spectrogram")
    )  # fmt: skip
    small.mkdir(exist_ok=True)  # a folder of exactly the n clips, for the script baseline
    _, rss_script = timed_rss(
        [
            sys.executable,
            __file__,
            "--sspl-script-baseline",
            str(_subset(big, small, ids)),
            str(work / "script"),
        ]  # fmt: skip
    )

    b_nat = folder_bytes(work / "native") / n
    b_pcm = folder_bytes(work / "native_pcm") / n
    b_sspl = folder_bytes(work / "sspl") / n
    b_gzip = folder_bytes(work / "native_gzip") / n
    b_plain = folder_bytes(work / "native_plain") / n
    b_raw = folder_bytes(work / "native_raw") / n
    b_fs = folder_bytes(work / "native_fs") / n
    b_folder = (
        sum(
            (big / sub / f"{cid}{ext}").stat().st_size
            for cid in ids
            for sub, ext in (
                ("frames", ".jpg"),
                ("audio", ".wav"),
                (f"spectrograms/{spect_dir(big)}", ".npy"),
            )  # fmt: skip
        )
        / n
    )
    with h5py.File(sorted((work / "native").glob("*.h5"))[0], "r") as f:
        rows0 = int(f["clip_id"].shape[0])
        b_flac = f["audio_flac"].shape[0] / rows0
        b_jpeg = f["frame_jpeg"].shape[0] / rows0
        b_spec = f["spectrogram"].id.get_storage_size() / rows0

    print("reading ...", flush=True)
    nat = work / "native"
    fs = ["frame", "spectrogram"]
    readers = {
        "native": Reader("**avprep native** (FLAC audio, JPEG decoded in the worker), "
                         "DataLoader", ShardDataset(nat)),
        "native_batch": Reader("native, `batch_loader` (each batch read + collated in a worker)",
                               ShardDataset(nat), "batch"),
        "ring": Reader("**native, `RingLoader`** (views of the shared slot)",
                       ShardDataset(nat), "ring"),
        "ring_copy": Reader("native, `RingLoader(copy=True)` (each batch copied out)",
                            ShardDataset(nat), "ring_copy"),
        "pcm": Reader("native `--audio pcm --compression none`, DataLoader", ShardDataset(work / "native_pcm")),
        "pcm_ring": Reader("native `--audio pcm --compression none`, `RingLoader`",
                           ShardDataset(work / "native_pcm"), "ring"),
        "sspl_style": Reader("SSPL layout, SSPL's way (3 files opened per sample)",
                             SSPLStyleDataset(work / "sspl", "bench", rps, n)),
        "folder": Reader("jpg+wav folders, SSPL's folder loader (decode + log-mel per sample)",
                         FolderDataset(big, ids)),
        "fs_batch": Reader("*training content:* native, frame + spectrogram, `batch_loader`",
                           ShardDataset(nat, modalities=fs), "batch"),
        "fs_ring": Reader("***training content:* native, frame + spectrogram, `RingLoader`**",
                          ShardDataset(nat, modalities=fs), "ring"),
        "fs_ring_copy": Reader("*training content:* native, frame + spectrogram, "
                               "`RingLoader(copy=True)`", ShardDataset(nat, modalities=fs),
                               "ring_copy"),
        "sspl_style_fs": Reader("*training content:* SSPL layout, SSPL's way without the audio "
                                "file (2 files opened per sample)",
                                SSPLStyleDataset(work / "sspl", "bench", rps, n, audio=False)),
        "sspl_dataset": Reader("*context:* SSPL layout via SSPLDataset (files opened once)",
                               SSPLDataset(work / "sspl", "bench")),
        "zeros": Reader("*ceiling:* zero-filled samples of the same sizes, nothing read, "
                        "DataLoader", ZeroDataset(n)),
        "zeros_ring": Reader("*ceiling:* zero-filled samples, `RingLoader` (views)",
                             ZeroDataset(n), "ring"),
    }  # fmt: skip
    rounds: dict[str, list[float]] = {k: [] for k in readers}
    costs: dict[str, list[float]] = {k: [] for k in readers}
    loads = []
    for rnd in range(args.rounds):
        for key, r in readers.items():
            rounds[key].append(read_rate(r))
        for key, r in readers.items():
            costs[key].append(cpu_us(r))
        loads.append(os.getloadavg()[0])
        print(f"round {rnd + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rounds.items()),
              flush=True)  # fmt: skip
    med = statistics.median
    rates = {k: med(v) for k, v in rounds.items()}
    cost = {k: med(v) for k, v in costs.items()}

    def ratio(key: str, base: str) -> float:
        """Median over rounds of this reader's rate / the base reader's rate that round."""
        return med(a / b for a, b in zip(rounds[key], rounds[base]))

    dec = decode_costs(nat)
    total = time.perf_counter() - t0

    r_bytes = b_sspl / b_nat
    r_full = ratio("ring", "sspl_style")
    r_full_pcm = ratio("pcm_ring", "sspl_style")
    r_train_named = ratio("fs_ring", "sspl_style")
    r_train = ratio("fs_ring", "sspl_style_fs")
    r_folder = ratio("ring", "folder")
    ok = lambda c: "met" if c else "NOT met"  # noqa: E731
    floor = dec["jpeg"] + dec["flac"]
    what = (
        "SynthAV clips made by `avprep synth` and extracted by `avprep extract --profile sspl` "
        "(256x256 q95 key frame, centre 3 s at 16 kHz, VGGish log-mel (3, 96, 64)); the "
        f"{n} clips are repeated 4x under new ids for the {4 * n}-clip pack"
        if args.content == "synthav"
        else "fixture clips at SSPL's sizes (256x256 q95 frame, 3 s 16 kHz audio, random-normal "
        "(3, 96, 64) spectrograms: incompressible, a worst case for bytes)"
    )
    lines = [
        "# Store benchmark (`benchmarks/bench_store.py`)",
        "",
        f"{n} {what}; {rps} rows per shard. Machine: {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"h5py {h5py.__version__} (HDF5 {h5py.version.hdf5_version}), torch {torch.__version__}"
        + f". Load average (1 min) at the start {load_start[0]:.1f}, after each read round "
        + ", ".join(f"{x:.1f}" for x in loads)
        + f". Run time {total:.0f} s.",
        "",
        "## Bytes per sample",
        "",
        "| store | bytes/sample | vs SSPL |",
        "|---|---:|---:|",
        f"| SSPL layout (float32 frames, audio, spectrograms) | {b_sspl:,.0f} | 1.00 |",
        f"| **avprep native** (JPEG, FLAC, float16 + gzip: the defaults) | **{b_nat:,.0f}** | "
        f"**1/{r_bytes:.1f}** |",
        f"| native, `--compression none` | {b_plain:,.0f} | 1/{b_sspl / b_plain:.1f} |",
        f"| native, `--audio pcm --compression none` (int16; nothing to decode) | {b_pcm:,.0f} | "
        f"1/{b_sspl / b_pcm:.1f} |",
        f"| native, `--audio pcm --compression gzip` | {b_gzip:,.0f} | 1/{b_sspl / b_gzip:.1f} |",
        f"| native, `--frames raw` | {b_raw:,.0f} | 1/{b_sspl / b_raw:.1f} |",
        f"| native, frames + spectrograms only (all SSPL's training uses) | {b_fs:,.0f} | "
        f"1/{b_sspl / b_fs:.1f} |",
        f"| extraction folder (jpg + wav + npy files) | {b_folder:,.0f} | 1/{b_sspl / b_folder:.1f} |",
        "",
        f"Per native row: JPEG {b_jpeg:,.0f} B, FLAC {b_flac:,.0f} B (int16 PCM: 96,000 B; FLAC "
        f"is {b_flac / 96000:.0%} of it), spectrogram {b_spec:,.0f} B (float16 36,864 B before "
        "gzip), ids/times/meta and HDF5 overhead the rest.",
        "",
        f"Goal native <= 1/8 of SSPL (same content): **{ok(r_bytes >= 8)}** (1/{r_bytes:.2f}).",
        "",
        "## Pack: wall time and peak RSS (`/usr/bin/time -v`, one writer process)",
        "",
        "| run | clips | wall s | peak RSS MB |",
        "|---|---:|---:|---:|",
        f"| native | {n} | {t_nat:.1f} | {rss_nat:.0f} |",
        f"| native | {4 * n} | {t_nat4:.1f} | {rss_nat4:.0f} |",
        f"| native `--audio pcm --compression none` | {n} | {t_pcm:.1f} | {rss_pcm:.0f} |",
        f"| SSPL layout | {n} | {t_sspl:.1f} | {rss_sspl:.0f} |",
        f"| SSPL's script pattern (whole split in RAM) | {n} | - | {rss_script:.0f} |",
        "",
        f"Peak RSS grows {rss_nat4 / rss_nat:.2f}x for 4x the clips (bounded: rows stream into "
        f"the file); SSPL's pattern needs about {n * 1_052_160 / 2**20:.0f} MB for the arrays "
        f"alone at {n} clips, {144_000 * 1_052_160 / 2**30:.0f} GiB at 144k.",
        "",
        f"## Random-access read, 2 workers (shuffled, batch 32, warm page cache, "
        f"median of {args.rounds} interleaved rounds)",
        "",
        "Full content = frame (uint8 HxWx3), audio (float32) and spectrogram (float32), what "
        "SSPL's loader returns; training content = frame and spectrogram, what SSPL's training "
        "uses (`main.py` never reads the audio its loader returns) and all `avmodels train "
        "sspl` asks the store for. `RingLoader` hands out views of a shared slot that stay valid until the "
        "next batch (how the training engine consumes batches); `copy=True` copies each batch "
        "out in the main process.",
        "",
        "| reader | samples/s | each round | vs SSPL-style | vs folders | "
        "CPU µs/sample, one process |",
        "|---|---:|---|---:|---:|---:|",
        *[
            f"| {r.label} | {rates[key]:,.0f} | "
            + "/".join(f"{x:,.0f}" for x in rounds[key])
            + f" | {ratio(key, 'sspl_style'):.1f}x | {ratio(key, 'folder'):.1f}x"
            f" | {cost[key]:,.0f} |"
            for key, r in readers.items()
        ],
        "",
        "CPU µs to decode, one process: a 256x256 q95 JPEG frame "
        f"{dec['jpeg']:,.0f} (at half size {dec['jpeg_half']:,.0f}); a 3 s FLAC clip "
        f"({dec['flac_bytes']:,.0f} B) {dec['flac']:,.0f} with miniaudio, "
        f"{dec['flac_soundfile']:,.0f} with soundfile. A reader that returns SSPL's full content "
        f"from compressed rows pays at least {floor:,.0f} µs per sample "
        f"(PCM audio: {dec['jpeg']:,.0f}); the SSPL-style reader costs "
        f"{cost['sspl_style']:,.0f} µs. Through torch's 2-worker DataLoader, "
        f"zero-filled samples of the same sizes moved at {rates['zeros']:,.0f} samples/s "
        f"({ratio('zeros', 'sspl_style'):.1f}x the SSPL-style read): fresh shared memory "
        "per batch caps any reader behind it; through `RingLoader` the same zeros moved at "
        f"{rates['zeros_ring']:,.0f} samples/s.",
        "",
        "Goals (DESIGN.md: training-data loading >= 5x SSPL's, whose loader opens 3 files per "
        "sample; >= 2x the folder read):",
        "",
        f"- what SSPL's training uses (frame + spectrogram), through `RingLoader` (in the "
        f"engine: `train.loader=ring`), vs SSPL's loader: **{ok(r_train_named >= 5)}** "
        f"({r_train_named:.1f}x);",
        f"- full content, `RingLoader`: with FLAC audio (the default) **{ok(r_full >= 5)}** "
        f"({r_full:.1f}x: decoding a FLAC clip costs {dec['flac']:,.0f} µs), with `--audio pcm "
        f"--compression none` **{ok(r_full_pcm >= 5)}** ({r_full_pcm:.1f}x, at "
        f"1/{b_sspl / b_pcm:.1f} of SSPL's bytes);",
        f"- like for like, training content vs SSPL's loader without its audio file: "
        f"**{ok(r_train >= 5)}** ({r_train:.1f}x; decoding the JPEG frame, {dec['jpeg']:,.0f} µs "
        f"measured alone, is the largest part of our {cost['fs_ring']:,.0f} µs per sample "
        f"against its {cost['sspl_style_fs']:,.0f}: the CPU ratio bounds the read ratio on 2 "
        "cores);",
        f"- >= 2x the folder read (full content, FLAC): **{ok(r_folder >= 2)}** ({r_folder:.1f}x).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(f"wrote {RESULTS}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


def _subset(src: Path, dst: Path, ids: list[str]) -> Path:
    """An extraction folder holding only ``ids`` (symlinks to the files, a filtered manifest)."""
    from avprep.manifest import Manifest

    man_src = Manifest(src / "manifest.jsonl")
    man = Manifest(dst / "manifest.jsonl")
    man.write_header(**man_src.header)
    for cid in ids:
        rec = man_src.get(cid)
        for rel in rec.outputs.values():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            if not (dst / rel).exists():
                os.symlink(src / rel, dst / rel)
        man.append(rec)
    return dst


if __name__ == "__main__":
    main()
