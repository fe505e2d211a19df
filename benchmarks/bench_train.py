"""Training-step throughput: cached frozen features vs computing them every step.

For SSPL the frozen VGGish embedding of each clip can be computed once and
cached (``model.cache_vggish``). This measures, in one interleaved run on the
same batches, the samples/s of one optimiser step (forward, backward, AdamW):

- ``original-loop`` (SSPL only): the released code's structure — VGGish run
  on every step, one call per clip in a Python loop, each view through VGG16
  separately;
- ``live``: our step with VGGish run on every step (batched);
- ``cached``: our step with the cached embeddings.

Other methods: ``--method NAME`` measures ``live`` and, if the method
declares feature caches, ``cached``. Data loading is excluded (the batches
are built once) so the figures isolate the model step. On CPU the figure is
samples per CPU-second of this process (``time.process_time``, one thread by
default): on a shared machine wall time mostly measures the neighbours, CPU
time measures the work. With ``--device cuda`` it is wall time (synchronised)
and each variant is also measured with bf16 autocast.

    python benchmarks/bench_train.py                      # CPU, SSPL, 224/112/64 px
    python benchmarks/bench_train.py --device cuda --batch 128 --image-sizes 224
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from avmodels.engine import amp as amp_mod  # noqa: E402
from avmodels.engine.config import resolve_config  # noqa: E402
from avmodels.layers.attention import attention_pool  # noqa: E402
from avmodels.methods import METHODS  # noqa: E402
from avmodels.methods.sspl import SSPL  # noqa: E402


def original_loop_loss(m: SSPL, batch: dict) -> torch.Tensor:
    """SSPL's released NetWrapper.forward, on our modules (the baseline)."""
    spect = batch["spectrogram"]
    orig, trans = [], []
    for i in range(spect.size(0)):
        emb = m.vggish(spect[i][:, None])
        orig.append(emb.mean(dim=0))
        trans.append(m.sound_fc(emb).mean(dim=0))
    audio_pcm = F.normalize(torch.stack(orig), p=2, dim=1)
    audio_vec = torch.stack(trans)
    feats = []
    for view in (batch["view1"], batch["view2"]):
        f = m.frame_net(view)
        feats.append(m.pcm(f, audio_pcm) if m.pcm is not None else f)
    x1, _ = attention_pool(feats[0], audio_vec)
    x2, _ = attention_pool(feats[1], audio_vec)
    return m.head.loss(x1, x2)


def build(method: str, image_size: int, device: torch.device):
    cls = METHODS.get(method)
    sets = ["model.pretrained=false"]
    cfg = resolve_config(method, sets=sets)
    for section in ("model", "data"):  # SSPL keeps the image size in model, LVS-family in data
        if "image_size" in cfg.get(section, {}):
            cfg[section]["image_size"] = image_size
    torch.manual_seed(0)
    return cls(cfg).to(device)


def batches(m, batch_size: int, device: torch.device) -> dict[str, dict]:
    tf = m.sample_transform(train=True)
    samples = []
    for i in range(batch_size):
        s = m.smoke_sample(i)
        for spec in m.feature_caches():
            s.pop(spec.name, None)  # the live batch has no cached values
        samples.append(s)
    live = default_collate([tf(s) for s in samples])
    out = {"live": live}
    specs = m.feature_caches()
    if specs:
        cached_samples = [dict(s) for s in samples]
        for spec in specs:
            prep = default_collate([spec.prepare(s) for s in samples])
            prep = {k: v.to(device) if torch.is_tensor(v) else v for k, v in prep.items()}
            with torch.no_grad():
                values = spec.compute(prep).float().cpu().numpy()
            for s, v in zip(cached_samples, values):
                s[spec.name] = v
        out["cached"] = default_collate([tf(s) for s in cached_samples])
    return {k: m.batch_to_device(v, device, False) for k, v in out.items()}


def step_time(m, opt, batch, variant: str, amp: str, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    t = clock()
    with amp_mod.autocast(amp, device):
        if variant == "original-loop":
            loss = original_loop_loss(m, batch)
        else:
            loss = m.training_losses(batch)["loss"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return clock() - t


def run(args) -> list[dict]:
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    rows = []
    for size in args.image_sizes:
        m = build(args.method, size, device)
        m.train()
        opt = m.build_optimizer()
        data = batches(m, args.batch, device)
        variants = (["original-loop"] if isinstance(m, SSPL) else []) + list(data)
        amps = ["none", "bf16"] if device.type == "cuda" else ["none"]
        times: dict[tuple[str, str], list[float]] = {(v, a): [] for v in variants for a in amps}
        for key in times:  # warm-up (allocator, oneDNN/cuDNN algorithm choice)
            for _ in range(args.warmup):
                step_time(m, opt, data["live" if key[0] == "original-loop" else key[0]],
                          key[0], key[1], device)  # fmt: skip
        for _ in range(args.steps):  # interleaved rounds: load changes hit every variant
            for v, a in times:
                batch = data["live" if v == "original-loop" else v]
                times[(v, a)].append(step_time(m, opt, batch, v, a, device))
        base = statistics.median(times[(variants[0], "none")])
        for (v, a), ts in times.items():
            med = statistics.median(ts)
            rows.append(
                {
                    "method": args.method,
                    "image": size,
                    "batch": args.batch,
                    "variant": v,
                    "amp": a,
                    "s_per_step": med,
                    "samples_per_s": args.batch / med,
                    "vs_first": base / med,
                }
            )
            print(
                f"{args.method:<9} {size:>4}px b{args.batch:<4} {v:<14} {a:<5} "
                f"{med:8.3f} s/step {args.batch / med:9.2f} samples/s  x{base / med:5.2f}",
                flush=True,
            )
        del m, opt, data
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def table(rows: list[dict], args) -> str:
    dev = (
        torch.cuda.get_device_name(0)
        if args.device.startswith("cuda")
        else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s)"
    )
    lines = [
        f"### {args.method} training step, {args.device} ({dev})",
        "",
        f"torch {torch.__version__}; median of {args.steps} interleaved steps after "
        f"{args.warmup} warm-up; data loading excluded; random weights (timing only); "
        + ("wall time." if args.device.startswith("cuda") else "CPU time of the process."),
        "",
        "| image | batch | variant | amp | s/step | samples/s | speed-up vs "
        f"{rows[0]['variant']} |",
        "|---:|---:|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['image']} | {r['batch']} | {r['variant']} | {r['amp']} | "
            f"{r['s_per_step']:.3f} | {r['samples_per_s']:.2f} | {r['vs_first']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--method", default="sspl")
    p.add_argument("--device", default="cpu")
    p.add_argument("--image-sizes", default="224,112,64")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (CPU runs).")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train.md"))
    p.add_argument("--append", action="store_true", help="Add to --out instead of replacing.")
    args = p.parse_args()
    args.image_sizes = [int(s) for s in args.image_sizes.split(",")]
    rows = run(args)
    text = table(rows, args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.append and out.exists():
        text = out.read_text() + "\n" + text
    out.write_text(text)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
