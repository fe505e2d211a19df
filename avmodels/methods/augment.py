"""Sample-level augmentations of SSL-TIE and Hear-The-Flow (numpy in, tensors out).

Everything here runs in DataLoader workers, draws from torch's RNG (seeded per
worker by the DataLoader) and is picklable.

- :class:`MocoV2` - SSL-TIE's ``--img_aug moco_v2``: RandomResizedCrop(scale
  0.3-1), ColorJitter(0.4, 0.4, 0.4, 0.1) with p 0.8, grayscale p 0.2, PIL
  Gaussian blur (radius 0.1-2) p 0.5, horizontal flip, ImageNet normalisation.
- :class:`ResizeCenterCrop` / :class:`ResizeSquash` - the test-time frames of
  SSL-TIE (short side + centre crop) and HTF (squash to a square), bicubic.
- :class:`SpecAugment` - SSL-TIE's ``--aud_aug SpecAug``: with p 0.8 one time mask
  (width < 180 frames) then one frequency mask (< 35 bins), torchaudio's draw.
  SSL-TIE masks the power mel with 0 before its dB conversion; on a dB
  spectrogram the same result is a fill of -100 dB (its floor, 10 log10 1e-10).
- :class:`ResizeRandomCropFlip` - the training frames of LVS, EZ-VSL, FNAC and SLAVC.
- :class:`FrameFlowCrop` - HTF's paired augmentation: the same resize, crop and
  flip for frame and flow. Our flow is signed float (pixels per frame): resizing
  scales the vectors, and a horizontal flip negates their x component. With
  ``legacy=True`` it reproduces the original exactly: the flow is first turned
  into its two uint8 JPEGs (``clip(round(f), 0, 255)``, JPEG quality 95 as
  ``cv2.imwrite`` writes them), resized as images, flipped without negating x and
  scaled to [0, 1] - negative motion is lost and flipped flow points the wrong way.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import torch
from PIL import Image, ImageFilter
from torchvision import transforms as T
from torchvision.transforms import functional as TF

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DB_FLOOR = -100.0  # 10 * log10(1e-10): where SSL-TIE's masked (zeroed) mel bins end up


def _pil(frame: np.ndarray) -> Image.Image:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got {frame.dtype} {frame.shape}")
    return Image.fromarray(frame, mode="RGB")


def _to_tensor_normalized(img: Image.Image) -> torch.Tensor:
    return TF.normalize(TF.to_tensor(img), IMAGENET_MEAN, IMAGENET_STD)


class _GaussianBlur:
    """SimCLR/MoCo blur: PIL Gaussian blur with a radius drawn in ``sigma``."""

    def __init__(self, sigma: tuple[float, float] = (0.1, 2.0)) -> None:
        self.sigma = sigma

    def __call__(self, img: Image.Image) -> Image.Image:
        lo, hi = self.sigma
        radius = lo + (hi - lo) * float(torch.rand(1))
        return img.filter(ImageFilter.GaussianBlur(radius=radius))


class MocoV2:
    """SSL-TIE's training augmentation of the frame."""

    def __init__(
        self,
        size: int,
        crop_scale: tuple[float, float] = (0.3, 1.0),
        jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1),
        p_jitter: float = 0.8,
        p_gray: float = 0.2,
        p_blur: float = 0.5,
        hflip: bool = True,
    ) -> None:
        steps = [
            T.RandomResizedCrop(size, scale=tuple(crop_scale)),
            T.RandomApply([T.ColorJitter(*jitter)], p=p_jitter),
            T.RandomGrayscale(p=p_gray),
            T.RandomApply([_GaussianBlur((0.1, 2.0))], p=p_blur),
        ]
        if hflip:
            steps.append(T.RandomHorizontalFlip())
        self.pipeline = T.Compose(steps)

    def __call__(self, frame: np.ndarray) -> torch.Tensor:
        return _to_tensor_normalized(self.pipeline(_pil(frame)))


class ResizeCenterCrop:
    """Short side to ``size`` (bicubic), centre crop: SSL-TIE/LVS test frames."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, frame: np.ndarray) -> torch.Tensor:
        img = TF.resize(_pil(frame), self.size, interpolation=T.InterpolationMode.BICUBIC)
        return _to_tensor_normalized(TF.center_crop(img, self.size))


class ResizeSquash:
    """Both sides to ``size`` (bicubic, aspect not kept): HTF test frames."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, frame: np.ndarray) -> torch.Tensor:
        img = TF.resize(_pil(frame), [self.size, self.size], T.InterpolationMode.BICUBIC)
        return _to_tensor_normalized(img)


class SpecAugment:
    """One time mask then one frequency mask, with probability ``p`` (torchaudio's draw)."""

    def __init__(
        self, time_mask: int = 180, freq_mask: int = 35, p: float = 0.8, fill: float = DB_FLOOR
    ) -> None:
        self.time_mask, self.freq_mask, self.p, self.fill = time_mask, freq_mask, p, fill

    def __call__(self, spec: torch.Tensor) -> torch.Tensor:
        """``spec`` (..., freq, time); returns a masked copy (or ``spec`` itself)."""
        if float(torch.rand(1)) >= self.p:
            return spec
        spec = spec.clone()
        t0, t1 = _mask_span(spec.shape[-1], self.time_mask)
        spec[..., t0:t1] = self.fill
        f0, f1 = _mask_span(spec.shape[-2], self.freq_mask)
        spec[..., f0:f1, :] = self.fill
        return spec


def _mask_span(size: int, param: int) -> tuple[int, int]:
    # torchaudio.functional.mask_along_axis: width ~ U[0, param), start ~ U[0, size - width)
    width = float(torch.rand(1)) * param
    start = float(torch.rand(1)) * (size - width)
    return int(start), int(start) + int(width)


class FrameFlowCrop:
    """HTF's paired augmentation of a frame (H, W, 3) uint8 and a flow (2, H', W') float.

    Train: short side to ``int(size * 1.1)`` (bicubic), the same random crop of
    ``size`` and the same horizontal flip (p 0.5) for both. Test: both squashed
    to ``size`` x ``size``. Returns (frame (3, S, S) normalised, flow (2, S, S)).
    """

    def __init__(self, size: int, train: bool, legacy: bool = False, p_flip: float = 0.5) -> None:
        self.size, self.train, self.legacy, self.p_flip = size, train, legacy, p_flip

    def __call__(self, frame: np.ndarray, flow: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        img = _pil(frame)
        flow = np.asarray(flow, dtype=np.float32)
        if flow.ndim != 3 or flow.shape[0] != 2:
            raise ValueError(f"expected a (2, H, W) flow, got {flow.shape}")
        if self.train:
            w, h = img.size
            nh, nw = _short_side_size(h, w, int(self.size * 1.1))
        else:
            nh = nw = self.size
        img = TF.resize(img, [nh, nw], interpolation=T.InterpolationMode.BICUBIC)
        flow_t = self._resize_flow(flow, nh, nw)
        if self.train:
            i = int(torch.randint(0, nh - self.size + 1, (1,)))
            j = int(torch.randint(0, nw - self.size + 1, (1,)))
            img = TF.crop(img, i, j, self.size, self.size)
            flow_t = flow_t[:, i : i + self.size, j : j + self.size]
            if float(torch.rand(1)) < self.p_flip:
                img = TF.hflip(img)
                flow_t = torch.flip(flow_t, dims=[-1])
                if not self.legacy:
                    flow_t = flow_t.clone()
                    flow_t[0] = -flow_t[0]  # x motion points the other way in a mirror
        return _to_tensor_normalized(img), flow_t.contiguous()

    def _resize_flow(self, flow: np.ndarray, nh: int, nw: int) -> torch.Tensor:
        if self.legacy:
            chans = []
            for c in range(2):
                img = _legacy_flow_image(flow[c])
                img = TF.resize(img, [nh, nw], interpolation=T.InterpolationMode.BICUBIC)
                chans.append(TF.to_tensor(img)[0])
            return torch.stack(chans)
        h, w = flow.shape[1:]
        out = np.stack(
            [cv2.resize(flow[c], (nw, nh), interpolation=cv2.INTER_CUBIC) for c in range(2)]
        )
        out[0] *= nw / w  # vectors are in pixels: they grow and shrink with the image
        out[1] *= nh / h
        return torch.from_numpy(out)


def _short_side_size(h: int, w: int, short: int) -> tuple[int, int]:
    # torchvision's Resize(int): the long side becomes int(short * long / short_side)
    if h <= w:
        return short, int(short * w / h)
    return int(short * h / w), short


def _legacy_flow_image(component: np.ndarray) -> Image.Image:
    """One flow component as HTF stores it: ``cv2.imwrite`` of float -> uint8 JPEG."""
    u8 = np.clip(np.rint(component), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise ValueError("could not encode a flow component as JPEG")
    return Image.open(io.BytesIO(buf.tobytes())).convert("L")


class ResizeRandomCropFlip:
    """LVS / EZ-VSL / FNAC / SLAVC training frames.

    Short side to ``int(size * 1.1)`` (bicubic), a random ``size`` crop, a
    horizontal flip with p 0.5, ImageNet normalisation (torchvision's draws).
    """

    def __init__(self, size: int, scale: float = 1.1) -> None:
        self.pipeline = T.Compose(
            [
                T.Resize(int(size * scale), interpolation=T.InterpolationMode.BICUBIC),
                T.RandomCrop(size),
                T.RandomHorizontalFlip(),
            ]
        )

    def __call__(self, frame: np.ndarray) -> torch.Tensor:
        return _to_tensor_normalized(self.pipeline(_pil(frame)))
