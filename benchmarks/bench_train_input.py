"""Training input, end to end: what ``avmodels train`` feeds the model vs each original's loader.

For SSPL, SSL-TIE and Hear-The-Flow, on the same SynthAV clips (``avprep
synth`` -> ``avprep extract --profile P`` -> ``avprep pack-h5``), the same
batch size and the same number of worker processes, this measures samples/s
(wall) and CPU per sample (the main process and its workers, ``psutil``) of:

- ``ours-batch-torch`` / ``ours-batch-ring``: the engine's training input as
  ``avmodels train`` builds it (``train.augment=batch``, ``train.input=cpu``):
  ``MethodDataset`` (the stores' batch reads, the frames decoded into one
  buffer, parameters drawn per sample, the batched augmentation) through
  ``avmodels.engine.loaders.make_loader`` with ``EpochSampler``, torch's
  DataLoader or the RingLoader (the ring is what ``train.loader=auto``, the
  default, picks here; the batch is finished straight into its slots);
- ``ours-sample-torch``: the same with ``train.augment=sample`` (the per-sample
  PIL transforms: the engine's path before the batched augmentation);
- ``ours-gpu-input-torch``: ``train.input=gpu`` with the device being the CPU:
  workers hand over JPEG bytes and parameters, the main process decodes and
  augments (on CUDA that work moves to the GPU; here it shows the workers' part
  plus the main process's);
- ``original``: the original's dataset class and transforms, imported from a
  scratch checkout given on the command line (never part of this repository):
  SSPL's ``VideoDataset`` on the SSPL h5 layout (``--orig-sspl`` = its
  ``sspl_wo_pcm`` folder), Hear-The-Flow's ``VSSLFlowDataset`` on the folder
  layout (``--orig-htf`` = the repository root; flow written as its uint8 JPEGs),
  SSL-TIE's ``GetAudioVideoDataset`` (``--orig-ssltie`` = the repository root)
  on its VGGSound training layout (``total_video_frames/<id>/125.jpg``,
  ``total_video_3s_audio/<id>.wav``, built here as links to the extracted
  files), ``moco_v2`` + ``SpecAug``. It needs torchaudio: no torchaudio matching
  this torch is on the package index, so put a pure-Python-usable one on
  ``PYTHONPATH`` (``pip install --no-deps --target DIR torchaudio==2.11.1``: its
  ``MelSpectrogram``, masking and ``AmplitudeToDB`` run on this torch). Two
  calls it makes no longer exist there and are shimmed, nothing else:
  ``torchaudio.set_audio_backend`` (removed: a no-op here) and
  ``torchaudio.load`` (moved to torchcodec, not installed: read here with
  soundfile as float32 (channels, frames) scaled by 1/32768, what the sox_io
  backend returned for 16-bit WAV). A baseline whose path is absent or that
  cannot be imported is skipped with the reason;
- ``ours-batch-ring-raw`` (HTF, SSL-TIE): ``ours-batch-ring`` on the same clips
  packed with ``pack-h5 --compression none`` (float16 flow and spectrograms
  stored without gzip: more bytes, no inflate on each read).

Rounds are interleaved (every contender once per round, warm workers, files
in the page cache); figures are medians over rounds, ratios medians of
per-round ratios. ``--tiny`` makes a few small clips and one short round (for
the test that keeps the script working). Writes
``benchmarks/results/train_input.md``.

    PYTHONPATH=/tmp/orig21/ta python benchmarks/bench_train_input.py --workdir /tmp/bti \\
        --orig-sspl /tmp/orig21/SSPL/sspl_wo_pcm --orig-htf /tmp/orig21/heartheflow \\
        --orig-ssltie /tmp/orig21/SSL-TIE
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Subset  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "train_input.md"
AVPREP = [sys.executable, "-c", "from avprep.cli import main; main()"]
PROFILES = {"sspl": "sspl", "ssl-tie": "ssltie", "htf": "htf"}
RAW_TOO = ("ssl-tie", "htf")  # also packed with --compression none (float16 rows, no gzip)


# -- content -------------------------------------------------------------------
def build_content(work: Path, n: int, methods: list[str]) -> dict[str, dict[str, Path]]:
    """SynthAV clips extracted with each method's profile and packed (reused if present)."""
    jobs = str(min(2, os.cpu_count() or 1))

    def run(*args: str) -> None:
        res = subprocess.run([*AVPREP, *args], capture_output=True, text=True)
        if res.returncode:
            raise SystemExit(f"avprep {args[0]} failed:\n{res.stderr[-2000:]}")

    if not (work / "synthav" / "videos").is_dir():
        # 6 s clips: the ssltie profile takes SSL-TIE's frame 125 (4.96 s at 25 fps)
        run("synth", "--out", str(work / "synthav"), "--clips", str(n), "--jobs", jobs,
            "--seconds", "6")  # fmt: skip
    out: dict[str, dict[str, Path]] = {}
    for m in methods:
        prof = PROFILES[m]
        ex, sh = work / f"ex_{prof}", work / f"sh_{prof}"
        if not (ex / "manifest.jsonl").is_file():
            run("extract", "--in", str(work / "synthav" / "videos"), "--out", str(ex),
                "--profile", prof, "--jobs", jobs, "--no-progress")  # fmt: skip
        if not (sh / "index.json").is_file():
            run("pack-h5", "--in", str(ex), "--out", str(sh), "--split", "train", "--shards", "2")
        out[m] = {"extracted": ex, "shards": sh}
        if m in RAW_TOO:  # the same rows without gzip (ours-batch-ring-raw)
            raw = work / f"sh_{prof}_none"
            if not (raw / "index.json").is_file():
                run("pack-h5", "--in", str(ex), "--out", str(raw), "--split", "train",
                    "--shards", "2", "--compression", "none")  # fmt: skip
            out[m]["raw_shards"] = raw
    if "sspl" in methods:
        lay = work / "sspl_root" / "SoundNet_Flickr" / "10k_unlabeled"
        if not (lay / "h5py_train_frames_10k.h5").is_file():
            run("pack-h5", "--in", str(out["sspl"]["extracted"]), "--out", str(lay),
                "--split", "10k", "--shards", "1", "--layout", "sspl")  # fmt: skip
        out["sspl"]["sspl_root"] = work / "sspl_root"
    if "htf" in methods:
        out["htf"]["folder"] = htf_folder(out["htf"]["extracted"], work / "htf_folder")
    if "ssl-tie" in methods:
        out["ssl-tie"]["folder"] = ssltie_folder(
            out["ssl-tie"]["extracted"], work / "ssltie_vggsound"
        )
    return out


def ssltie_folder(ex: Path, dst: Path) -> Path:
    """SSL-TIE's VGGSound training layout over the extracted files (links), and the list
    file its dataset opens from ``metadata/`` relative to the working directory."""
    frames, audio = dst / "total_video_frames", dst / "total_video_3s_audio"
    if (dst / "done").is_file():
        return dst
    audio.mkdir(parents=True, exist_ok=True)
    (dst / "metadata").mkdir(exist_ok=True)
    ids = []
    for f in sorted((ex / "frames").glob("*.jpg")):
        cid = f.stem
        (frames / cid).mkdir(parents=True, exist_ok=True)
        for link, src in (
            (frames / cid / "125.jpg", f),
            (audio / f"{cid}.wav", ex / "audio" / f"{cid}.wav"),
        ):
            if not link.exists():
                os.symlink(src.resolve(), link)
        ids.append(cid)
    (dst / "metadata" / "train_vggss_train_10k.txt").write_text("".join(f"{c}\n" for c in ids))
    (dst / "done").write_text("ok")
    return dst


def _shim_torchaudio() -> None:
    """The two torchaudio calls SSL-TIE's loader makes that this torchaudio lacks (see the
    module docstring); everything else it uses is torchaudio's own."""
    import soundfile
    import torchaudio

    if not hasattr(torchaudio, "set_audio_backend"):
        torchaudio.set_audio_backend = lambda backend: None

    def load(path: str) -> tuple[torch.Tensor, int]:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
        return torch.from_numpy(np.ascontiguousarray(data.T)), int(rate)

    torchaudio.load = load


def htf_folder(ex: Path, dst: Path) -> Path:
    """HTF's training folder: frames/, audio/ (22,050 Hz wav) and flow/flow_{x,y}/ JPEGs,
    the flow written as HTF stores it (``cv2.imwrite`` of the float flow: clipped to uint8)."""
    import cv2

    if (dst / "done").is_file():
        return dst
    for sub in ("frames", "audio", "flow/flow_x", "flow/flow_y"):
        (dst / sub).mkdir(parents=True, exist_ok=True)
    for f in sorted((ex / "frames").glob("*.jpg")):
        cid = f.stem
        flow = np.load(ex / "flow" / f"{cid}.npy").astype(np.float32)
        for c, name in enumerate(("flow_x", "flow_y")):
            u8 = np.clip(np.rint(flow[c]), 0, 255).astype(np.uint8)
            cv2.imwrite(str(dst / "flow" / name / f"{cid}.jpg"), u8, [cv2.IMWRITE_JPEG_QUALITY, 95])
        for sub, ext in (("frames", "jpg"), ("audio", "wav")):
            link = dst / sub / f"{cid}.{ext}"
            if not link.exists():
                os.symlink((ex / sub / f"{cid}.{ext}").resolve(), link)
    (dst / "done").write_text("ok")
    return dst


# -- contenders ----------------------------------------------------------------
def method_transform(method: str) -> Any:
    from avmodels.engine.config import resolve_config

    cfg = resolve_config(method)
    if method == "sspl":
        from avmodels.methods.sspl import SsplTransform

        m = cfg["model"]
        return SsplTransform(int(m["image_size"]), float(m["resize_ratio"]), True), cfg
    if method == "ssl-tie":
        from avmodels.methods.ssl_tie import SslTieSample

        return SslTieSample(cfg, True), cfg
    from avmodels.methods.htf import HtfSample

    return HtfSample(cfg, True), cfg


def ours(method: str, shards: Path, batch: int, workers: int, augment: str, kind: str,
         gpu_input: bool = False) -> Any:  # fmt: skip
    """The engine's loader for ``method``, built as avmodels.engine.train builds it."""
    from avmodels.data import EpochSampler, MethodDataset, open_sources
    from avmodels.engine.loaders import DeviceInput, make_loader

    tf, _ = method_transform(method)
    mods = {"sspl": ("frame", "spectrogram"), "ssl-tie": ("frame", "spectrogram"),
            "htf": ("frame", "spectrogram", "flow")}[method]  # fmt: skip
    src = open_sources([shards], mods)
    ds = MethodDataset(src, tf, seed=0, augment=augment, defer_frames=gpu_input)
    sampler = EpochSampler(len(ds), batch_size=batch, shuffle=True, seed=0)
    loader = make_loader(ds, batch_size=batch, sampler=sampler, num_workers=workers,
                         drop_last=True, kind=kind)  # fmt: skip
    if gpu_input:
        loader = DeviceInput(loader, ds.finish, torch.device("cpu"))
    return _Epochs(loader, sampler)


class _Epochs:
    def __init__(self, loader: Any, sampler: Any) -> None:
        self.loader, self.sampler, self.epoch = loader, sampler, 0

    def __iter__(self):
        self.sampler.set_epoch(self.epoch)
        self.epoch += 1
        return iter(self.loader)

    def close(self) -> None:
        inner = getattr(self.loader, "loader", self.loader)
        if hasattr(inner, "close"):
            inner.close()


def _import_from(folder: Path, module: str, purge: tuple[str, ...]) -> Any:
    for name in [m for m in sys.modules if m.split(".")[0] in purge]:
        del sys.modules[name]
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(folder))


def original(method: str, content: dict[str, Path], orig: Path | None, n: int) -> Any:
    """The original's dataset on our content, or a string saying why it cannot run."""
    if orig is None or not orig.exists():
        return "no checkout given (--orig-*)" if orig is None else f"{orig} is absent"
    try:
        if method == "sspl":
            mod = _import_from(orig, "dataset.videodataset", ("dataset", "models", "utils"))
            args = types.SimpleNamespace(
                seed=0, imgSize=224, audRate=16000, audSec=3, trainset="flickr",
                testset="flickr", num_train=10000, data_path=str(content["sspl_root"]) + "/",
            )  # fmt: skip
            ds = mod.VideoDataset(args, mode="train")
            return Subset(ds, list(range(n)))  # its 10k file layout, our n rows
        if method == "htf":
            from torchvision import transforms

            mod = _import_from(orig, "datasets_flow", ("datasets_flow",))
            folder = content["folder"]
            frames = sorted(p.name for p in (folder / "frames").glob("*.jpg"))
            audio = [f[:-4] + ".wav" for f in frames]
            tf = transforms.Compose(
                [transforms.ToTensor(), transforms.Normalize(mean=[0.0], std=[12.0])]
            )
            return mod.VSSLFlowDataset("train", frames, audio, str(folder / "frames") + "/",
                                       str(folder / "flow") + "/", str(folder / "audio") + "/",
                                       audio_transform=tf)  # fmt: skip
        _shim_torchaudio()
        folder = content["folder"]
        here = os.getcwd()
        os.chdir(folder)  # it opens metadata/train_vggss_train_10k.txt from the cwd
        try:
            mod = _import_from(orig, "datasets.dataloader", ("datasets",))
            args = types.SimpleNamespace(
                dataset_mode="VGGSound", trainset_path=str(folder), debug=False,
                training_set_scale="subset_10k", image_size=224, img_aug="moco_v2",
                aud_aug="SpecAug",
            )  # fmt: skip
            return mod.GetAudioVideoDataset(args, mode="train")
        finally:
            os.chdir(here)
    except Exception as exc:  # noqa: BLE001 - a baseline that cannot run is reported, not fatal
        return f"cannot import/build: {type(exc).__name__}: {exc}"


def original_loader(ds: Any, batch: int, workers: int) -> Any:
    g = torch.Generator().manual_seed(0)
    return DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                      persistent_workers=workers > 0, generator=g)  # fmt: skip


# -- measuring -----------------------------------------------------------------
def _cpu_seconds() -> float:
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for c in me.children(recursive=True):
        try:
            total += sum(c.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def measure(loader: Any, epochs: int) -> tuple[float, float]:
    """(samples/s, CPU ms per sample) over ``epochs`` timed epochs."""
    n = 0
    c0, t0 = _cpu_seconds(), time.perf_counter()
    for _ in range(epochs):
        for b in loader:
            first = next(iter(b.values())) if isinstance(b, dict) else b[0]
            n += len(first)
    wall = time.perf_counter() - t0
    cpu = _cpu_seconds() - c0
    return n / wall, 1e3 * cpu / max(n, 1)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=160)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per contender and round")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--methods", default="sspl,ssl-tie,htf")
    ap.add_argument("--workdir", type=Path, default=None, help="content is reused from here")
    ap.add_argument("--orig-sspl", type=Path, default=None)
    ap.add_argument("--orig-htf", type=Path, default=None)
    ap.add_argument("--orig-ssltie", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--tiny", action="store_true", help="a few clips, one round (for tests)")
    a = ap.parse_args(argv)
    if a.tiny:
        a.clips, a.rounds, a.epochs, a.batch, a.workers = 8, 1, 1, 4, 1
    torch.set_num_threads(1)
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    work = a.workdir or Path(tempfile.mkdtemp(prefix="bench-train-input-"))
    work.mkdir(parents=True, exist_ok=True)
    content = build_content(work, a.clips, methods)
    origs = {"sspl": a.orig_sspl, "htf": a.orig_htf, "ssl-tie": a.orig_ssltie}
    lines = [
        "# Training input, end to end (benchmarks/bench_train_input.py)",
        "",
        f"{a.clips} SynthAV clips, batch {a.batch}, {a.workers} workers, {a.rounds} interleaved "
        f"rounds of {a.epochs} epochs; {platform.node()}, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__}. samples/s wall (median), CPU ms per sample (main process + "
        "workers), ratio = median of per-round ratios to the original.",
        "",
    ]
    for method in methods:
        shards = content[method]["shards"]
        n = len(__import__("avprep.store", fromlist=["open_dataset"]).open_dataset(shards))
        contenders: dict[str, Any] = {
            "ours-batch-torch": ours(method, shards, a.batch, a.workers, "batch", "torch"),
            "ours-batch-ring": ours(method, shards, a.batch, a.workers, "batch", "ring"),
            "ours-sample-torch": ours(method, shards, a.batch, a.workers, "sample", "torch"),
            "ours-gpu-input-torch": ours(
                method, shards, a.batch, a.workers, "batch", "torch", gpu_input=True
            ),  # fmt: skip
        }
        if "raw_shards" in content[method]:
            contenders["ours-batch-ring-raw"] = ours(
                method, content[method]["raw_shards"], a.batch, a.workers, "batch", "ring"
            )
        base = original(method, content[method], origs[method], n)
        skipped = base if isinstance(base, str) else None
        if skipped is None:
            contenders["original"] = original_loader(base, a.batch, a.workers)
        load0 = os.getloadavg()[0]
        rates: dict[str, list[float]] = {k: [] for k in contenders}
        cpus: dict[str, list[float]] = {k: [] for k in contenders}
        for loader in contenders.values():  # warm-up: workers started, files cached
            measure(loader, 1)
        for r in range(a.rounds):
            for name, loader in contenders.items():
                s, c = measure(loader, a.epochs)
                rates[name].append(s)
                cpus[name].append(c)
            print(f"{method} round {r + 1}: " + ", ".join(
                f"{k} {v[-1]:.0f}/s" for k, v in rates.items()), flush=True)  # fmt: skip
        for loader in contenders.values():
            if hasattr(loader, "close"):
                loader.close()
        names = list(contenders)
        contenders.clear()  # torch's persistent workers stop with their loader
        gc.collect()
        load1 = os.getloadavg()[0]
        lines += [f"## {method}", "",
                  f"1-min load average {load0:.1f} before the warm-up, {load1:.1f} after the "
                  f"last round (2 CPUs shared with other jobs).", "",
                  "| path | samples/s | each round | CPU ms/sample | x original (samples/s) "
                  "| x original (CPU/sample) |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for name in names:
            ratio = cratio = "-"
            if skipped is None and name != "original":
                per = [x / y for x, y in zip(rates[name], rates["original"], strict=True)]
                ratio = f"{statistics.median(per):.2f}"
                per = [y / x for x, y in zip(cpus[name], cpus["original"], strict=True)]
                cratio = f"{statistics.median(per):.2f}"
            each = "/".join(f"{r:.0f}" for r in rates[name])
            lines.append(f"| {name} | {statistics.median(rates[name]):.0f} | {each} | "
                         f"{statistics.median(cpus[name]):.2f} | {ratio} | {cratio} |")  # fmt: skip
        if skipped is not None:
            lines.append(f"| original | skipped: {skipped} | | | | |")
        lines.append("")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
