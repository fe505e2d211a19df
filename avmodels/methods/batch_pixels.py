"""Batched pixel operations on uint8 frame batches: resize, crop and flip, normalisation,
PIL's colour blends and its box-blur approximation (what :mod:`avmodels.methods.batch_augment`
composes; where they equal PIL and where not: its docstring)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from avmodels.methods.augment import IMAGENET_MEAN, IMAGENET_STD


def to_nchw(frames: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 (or float 0-255, SSPL's layout) -> (B, 3, H, W) uint8 view."""
    if frames.dtype != torch.uint8:  # SSPL's float32 frames: as np.clip(...).astype(uint8)
        frames = frames.clamp(0, 255).to(torch.uint8)
    return frames.permute(0, 3, 1, 2)


def resize(x: torch.Tensor, size: tuple[int, int], mode: str = "bicubic") -> torch.Tensor:
    """Antialiased resize of (B, 3, H, W) uint8 as PIL does it; uint8 out.

    On the CPU torch's uint8 kernel (channels-last, PIL-SIMD's algorithm); on
    other devices the float kernel with the same weights, rounded once.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
        return F.interpolate(x, size=size, mode=mode, antialias=True, align_corners=False)
    y = F.interpolate(x.float(), size=size, mode=mode, antialias=True, align_corners=False)
    return y.round_().clamp_(0, 255).to(torch.uint8)


def destination(
    out: dict[str, torch.Tensor] | None, name: str, shape: tuple[int, ...], dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor | None:  # fmt: skip
    """The first rows of ``out[name]`` (a loader's preallocated batch, e.g. a RingLoader
    slot) when it can hold a contiguous ``shape`` batch of ``dtype``, else None."""
    t = (out or {}).get(name)
    if (
        isinstance(t, torch.Tensor)
        and t.dtype == dtype
        and t.device == torch.device(device)
        and tuple(t.shape[1:]) == tuple(shape[1:])
        and len(t) >= shape[0]
        and t.is_contiguous()
    ):
        return t[: shape[0]]
    return None


def crop_flip(
    x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int, flip: torch.Tensor,
    dest: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """Per-sample ``size`` x ``size`` crops at (top, left), mirrored where ``flip``
    (written into ``dest`` when given)."""
    # keep the input's memory layout: a channels-last crop copies whole pixel rows
    cl = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
    fmt = torch.channels_last if cl and not x.is_contiguous() else torch.contiguous_format
    out = dest if dest is not None else torch.empty(
        (x.shape[0], x.shape[1], size, size), dtype=x.dtype, device=x.device, memory_format=fmt
    )  # fmt: skip
    for b, (i, j, f) in enumerate(zip(top.tolist(), left.tolist(), flip.tolist(), strict=True)):
        block = x[b, :, i : i + size, j : j + size]
        out[b].copy_(block.flip(-1) if f else block)  # mirrored as it is copied: one pass
    return out


def crop_flip_normalize(
    x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int, flip: torch.Tensor,
    dest: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """``normalize(crop_flip(...))`` in fewer passes: each crop is converted to float as it
    is copied into the contiguous batch (the same values, bit for bit). On the CPU each
    crop is normalised right after its copy, while it is still in cache (measured: 3.0 vs
    3.8 ms for 32 crops of 224 px); elsewhere the whole batch at once. Written into
    ``dest`` (contiguous float32) when given."""
    shape = (x.shape[0], x.shape[1], size, size)
    out = dest if dest is not None else torch.empty(shape, dtype=torch.float32, device=x.device)
    per_crop = x.device.type == "cpu"
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(3, 1, 1)
    for b, (i, j, f) in enumerate(zip(top.tolist(), left.tolist(), flip.tolist(), strict=True)):
        block = x[b, :, i : i + size, j : j + size]
        o = out[b].copy_(block.flip(-1) if f else block)
        if per_crop:  # ToTensor's division then Normalize's sub/div, as _normalize_float
            o.div_(255).sub_(mean).div_(std)
    return out if per_crop else _normalize_float(out)


def _normalize_float(y: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=y.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=y.device).view(1, 3, 1, 1)
    # ToTensor's division then Normalize's sub/div, in that order: bit-identical to them
    return y.div_(255).sub_(mean).div_(std)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 (or 0-255 float) (B, 3, H, W) -> ImageNet-normalised float32, contiguous."""
    # the copy also turns a channels-last input into the contiguous layout
    return _normalize_float(torch.empty(x.shape, dtype=torch.float32, device=x.device).copy_(x))


def luma(x: torch.Tensor) -> torch.Tensor:
    """PIL's ``convert("L")`` of (B, 3, H, W) 0-255 values: (B, 1, H, W) integers."""
    x = x.to(torch.int32)
    y = x[:, 0] * 19595 + x[:, 1] * 38470 + x[:, 2] * 7471 + 0x8000
    return (y >> 16).unsqueeze(1)


def _blend(degenerate: torch.Tensor, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    # PIL's Image.blend on uint8: computed in float, clipped, truncated
    f = factor.view(-1, 1, 1, 1)
    return (degenerate + f * (x - degenerate)).clamp_(0, 255).floor_()


def adjust_brightness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return _blend(torch.zeros_like(x), x, f)


def adjust_contrast(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    # PIL ImageEnhance.Contrast: a flat image of int(mean luma + 0.5)
    mean = luma(x).float().mean(dim=(1, 2, 3), keepdim=True).add_(0.5).floor_()
    return _blend(mean.expand_as(x), x, f)


def adjust_saturation(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return _blend(luma(x).float().expand_as(x), x, f)


def adjust_hue(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by ``f`` turns: on the CPU PIL's own 8-bit HSV per image (exact, and
    faster than float HSV there); elsewhere in float HSV (within a few levels of PIL)."""
    if x.device.type == "cpu":
        from PIL import Image
        from torchvision.transforms import functional as TF

        u8 = x.to(torch.uint8).permute(0, 2, 3, 1).numpy()
        out = [np.asarray(TF.adjust_hue(Image.fromarray(im), float(h))) for im, h in zip(u8, f)]
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float()
    return adjust_hue_float(x, f)


def adjust_hue_float(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by ``f`` turns in float HSV (PIL uses an 8-bit HSV)."""
    rgb = x / 255.0
    r, g, b = rgb.unbind(1)
    maxc, _ = rgb.max(dim=1)
    minc, _ = rgb.min(dim=1)
    v = maxc
    cr = maxc - minc
    s = cr / torch.where(maxc == 0, torch.ones_like(maxc), maxc)
    crd = torch.where(cr == 0, torch.ones_like(cr), cr)
    rc, gc, bc = (maxc - r) / crd, (maxc - g) / crd, (maxc - b) / crd
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(cr == 0, torch.zeros_like(h), h)
    h = (h / 6.0 + f.view(-1, 1, 1)) % 1.0
    i = torch.floor(h * 6.0)
    fr = h * 6.0 - i
    i = i.to(torch.int64) % 6
    p, q, t = v * (1 - s), v * (1 - s * fr), v * (1 - s * (1 - fr))
    choices = [
        torch.stack(c, dim=1)
        for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))
    ]
    out = torch.zeros_like(x)
    for k, c in enumerate(choices):
        out = torch.where((i == k).unsqueeze(1), c, out)
    return (out * 255.0).round_().clamp_(0, 255)


_JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def color_jitter(
    x: torch.Tensor, apply: torch.Tensor, order: torch.Tensor, factors: torch.Tensor
) -> torch.Tensor:
    """ColorJitter with per-sample op order (B, 4) and factors (B, 4: b, c, s, h)."""
    if not bool(apply.any()):
        return x
    x = x.clone()
    for pos in range(4):
        for op in range(4):
            m = (apply & (order[:, pos] == op)).to(x.device)
            if bool(m.any()):
                x[m] = _JITTER_OPS[op](x[m], factors[:, op].to(x.device)[m])
    return x


def pil_box_radius(radius: float, passes: int = 3) -> float:
    """PIL's box radius for a Gaussian blur of ``radius`` (Gwosdek et al.'s extended box)."""
    sigma2 = radius * radius / passes
    length = math.sqrt(12.0 * sigma2 + 1.0)
    lo = math.floor((length - 1.0) / 2.0)
    a = (2 * lo + 1) * (lo * (lo + 1) - 3 * sigma2)
    a /= 6 * (sigma2 - (lo + 1) * (lo + 1))
    return lo + a


def pil_box_kernel(radius: float, passes: int = 3) -> torch.Tensor:
    """One box of PIL's GaussianBlur(radius): width 2n+3, ends weighted by the fraction."""
    r = pil_box_radius(radius, passes)
    n = int(r)
    box = torch.ones(2 * n + 3, dtype=torch.float64)
    box[0] = box[-1] = r - n
    return (box / box.sum()).float()


def pil_blur_kernel(radius: float, passes: int = 3) -> torch.Tensor:
    """The whole 1-D kernel: ``passes`` boxes convolved (away from the edges)."""
    box = pil_box_kernel(radius, passes).numpy()
    k = box
    for _ in range(passes - 1):
        k = np.convolve(k, box)
    return torch.from_numpy(k).float()


def blur(
    x: torch.Tensor, apply: torch.Tensor, radius: torch.Tensor, passes: int = 3
) -> torch.Tensor:
    """PIL's GaussianBlur of the samples where ``apply``: ``passes`` edge-clamped box passes
    along the rows, then along the columns, as PIL runs them (in float, rounded once)."""
    idx = torch.nonzero(apply).flatten().tolist()
    if not idx:
        return x
    boxes = [pil_box_kernel(float(radius[b]), passes) for b in idx]
    width = max(len(k) for k in boxes)
    weight = torch.zeros((len(idx), width), dtype=torch.float32)
    for n, k in enumerate(boxes):
        off = (width - len(k)) // 2
        weight[n, off : off + len(k)] = k
    weight = weight.to(x.device).repeat_interleave(x.shape[1], dim=0)  # (n * c, width)
    sel = x[torch.tensor(idx, device=x.device)]
    n, c, h, w = sel.shape
    pad = width // 2
    y = sel.reshape(1, n * c, h, w)
    wh, wv = weight.view(n * c, 1, 1, width), weight.view(n * c, 1, width, 1)
    for _ in range(passes):
        y = F.conv2d(F.pad(y, (pad, pad, 0, 0), mode="replicate"), wh, groups=n * c)
    for _ in range(passes):
        y = F.conv2d(F.pad(y, (0, 0, pad, pad), mode="replicate"), wv, groups=n * c)
    x = x.clone()
    x[torch.tensor(idx, device=x.device)] = y.view(n, c, h, w).round_().clamp_(0, 255)
    return x
