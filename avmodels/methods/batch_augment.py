"""The methods' frame augmentations applied to whole batches of uint8 frames.

The per-sample frame augmentations (SSPL's resize + two crop/flip views,
:class:`~avmodels.methods.augment.MocoV2`,
:class:`~avmodels.methods.augment.FrameFlowCrop`) run PIL on one frame at a
time; on two cores that, not reading, bounds the training input. Here each is
split in two:

- ``prepare(sample)``, run per sample inside the sample's seeded RNG block
  (:class:`avmodels.data.MethodDataset`): everything that is not frame pixels
  (spectrograms, cached embeddings, SpecAugment) and **the random parameters
  of the frame augmentation, drawn with exactly the calls, in exactly the
  order, of the per-sample transform** (``torch.randint`` for crops,
  ``torch.rand`` for flips and ``RandomApply``, torchvision's own
  ``get_params`` for RandomResizedCrop and ColorJitter). A fixed RNG stream
  gives the same crops, flips and jitter factors on both paths.
- ``finish(batch, device)``: the pixels, as batched tensor ops on a
  (B, H, W, 3) uint8 batch (or on the batch's JPEG bytes, decoded with
  ``torchvision.io.decode_jpeg`` on ``device``): resize, crop boxes, flips,
  colour jitter, grayscale, blur, ImageNet normalisation. The same code runs
  in a CPU worker (``train.input=cpu``) and on the GPU (``train.input=gpu``).

Where the pixels are the same and where not (``tests/avmodels/methods/test_batch_augment.py``
measures it; docs/training.md gives the figures):

- crops, flips, grayscale (PIL's integer luma), SpecAugment: identical.
- resize: on the CPU torch's uint8 antialiased kernels (PIL-SIMD's algorithm)
  match PIL's bicubic/bilinear to at most 2 levels, mean < 0.01 level; on CUDA
  the float kernel (same weights, rounded once) differs from PIL by at most 2
  levels, mean ~0.1.
- SSL-TIE's colour steps: on the CPU PIL's own, per image, with the drawn
  parameters (the same pixels as the per-sample path once cropped). On a GPU
  batched tensor ops: brightness, contrast and saturation restate PIL's
  ``ImageEnhance`` blends (integer luma, truncation to uint8: within 1 level
  of PIL per step); hue is PIL's own on the CPU, a float HSV on the GPU. The
  Gaussian blur runs PIL's extended-box approximation (3 edge-clamped passes
  of a box with fractional ends, radius by PIL's formula, rows then columns)
  in float, where PIL rounds after each pass.
- HTF's flow: on the CPU cv2's INTER_CUBIC, as the per-sample transform; on
  the GPU torch's bicubic (a = -0.75, no antialias, edge-clamped: within 4e-5).

Nothing here knows a method. A method's per-sample training transform
declares its batched form with a ``batch_augment()`` method returning one of
the classes below (built from its own frame augmentation and a ``rest``
callable giving everything that is not the frame), or ``None``;
:func:`batched` only asks for it. A transform without the hook (MSSL, LVS,
...) or whose hook returns ``None`` (HTF's ``legacy_flow``, test transforms)
keeps the per-sample path.
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torchvision import transforms as T

from avmodels.methods.augment import (
    FrameFlowCrop,
    MocoV2,
    _GaussianBlur,
    _short_side_size,
)
from avmodels.methods.batch_pixels import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_hue_float,
    adjust_saturation,
    blur,
    color_jitter,
    crop_flip,
    crop_flip_normalize,
    destination,
    luma,
    normalize,
    pil_blur_kernel,
    pil_box_kernel,
    pil_box_radius,
    resize,
    to_nchw,
)

PARAMS = "aug."  # prefix of the batch keys holding the drawn parameters (tensors)
JPEG = "frame_jpeg"  # batch key holding undecoded frames (a list of bytes)


def with_params(batch: dict[str, Any], params: dict[str, torch.Tensor]) -> dict[str, Any]:
    """``batch`` with the parameters as flat ``aug.<name>`` fields (RingLoader takes flat)."""
    batch.update({PARAMS + k: v for k, v in params.items()})
    return batch


def pop_params(batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k[len(PARAMS) :]: batch.pop(k) for k in [k for k in batch if k.startswith(PARAMS)]}


# -- frames: decoded in the worker, or JPEG bytes decoded here --------------------
def jpeg_size(data: Any) -> tuple[int, int]:
    """(height, width) of a JPEG from its header (no decode)."""
    from PIL import Image

    if not isinstance(data, (bytes, bytearray)):
        data = (data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)).tobytes()
    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
    return h, w


def batch_frames(batch: dict[str, Any], device: torch.device | str) -> torch.Tensor:
    """The batch's frames as (B, 3, H, W) uint8 on ``device``.

    From ``frame`` (decoded (B, H, W, 3) pixels) or from ``frame_jpeg`` (bytes,
    decoded by torchvision on ``device``: libjpeg-turbo on the CPU, the same
    pixels as the worker's decode; nvJPEG on CUDA, see docs/store.md).
    """
    if JPEG in batch:
        from torchvision.io import ImageReadMode, decode_jpeg

        data = [
            torch.frombuffer(bytearray(f), dtype=torch.uint8)
            if isinstance(f, (bytes, bytearray))
            else torch.as_tensor(f)
            for f in batch[JPEG]
        ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torchvision >= 0.29 notice
            imgs = decode_jpeg(data, mode=ImageReadMode.RGB, device=torch.device(device))
        if len({tuple(im.shape) for im in imgs}) != 1:
            raise ValueError("frames of different sizes in one batch: use train.input=cpu")
        return torch.stack(imgs)
    frames = batch["frame"]
    if isinstance(frames, list):
        raise ValueError("frames of different sizes in one batch: use train.augment=sample")
    return to_nchw(frames.to(device, non_blocking=True))


# -- the methods ---------------------------------------------------------------
Rest = Callable[[dict[str, Any]], dict[str, Any]]


class BatchedTransform:
    """Base of a batched frame augmentation (see the module docstring).

    ``rest(sample)`` gives the method's outputs other than the frame (spectrogram,
    cached embeddings, ...); :meth:`prepare` calls it first, in the sample's
    seeded RNG block, then draws the frame parameters: a ``rest`` that draws
    (SpecAugment) must come before the frame's draws in the per-sample transform.
    """

    needs_shape = False  # prepare() needs the frame's (H, W) as sample["frame_hw"]

    def __init__(self, rest: Rest) -> None:
        self.rest = rest

    def _rest(self, sample: dict[str, Any]) -> dict[str, Any]:
        return {"clip_id": str(sample["clip_id"]), **self.rest(sample)}

    def prepare(self, sample: dict[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        raise NotImplementedError

    def finish(
        self, batch: dict[str, Any], device: torch.device | str,
        out: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """The finished batch; its image tensors written into ``out``'s (a loader's
        preallocated batch) where those fit (:func:`destination`), else new."""
        raise NotImplementedError


class CropFlipViews(BatchedTransform):
    """Resize(short side, bicubic) once, then per view a RandomCrop + RandomHorizontalFlip
    (SSPL's two training views); :meth:`of` checks the per-sample ``Compose``."""

    needs_shape = True

    def __init__(self, short: int, size: int, p_flip: float, views: tuple[str, ...],
                 rest: Rest) -> None:  # fmt: skip
        super().__init__(rest)
        self.short, self.size, self.p_flip, self.views = short, size, p_flip, tuple(views)

    @classmethod
    def of(cls, image: T.Compose, views: tuple[str, ...], rest: Rest) -> CropFlipViews | None:
        """The batched form of ``image`` (Resize, RandomCrop, RandomHorizontalFlip, then
        ToTensor/Normalize), or None when its steps are not those."""
        steps = image.transforms
        if not (
            len(steps) >= 3
            and isinstance(steps[0], T.Resize)
            and steps[0].interpolation == T.InterpolationMode.BICUBIC
            and isinstance(steps[1], T.RandomCrop)
            and isinstance(steps[2], T.RandomHorizontalFlip)
            and steps[1].padding is None
        ):
            return None
        size = steps[0].size
        short = int(size if isinstance(size, int) else size[0])
        return cls(short, int(steps[1].size[0]), float(steps[2].p), views, rest)

    def _resized_hw(self, hw: tuple[int, int]) -> tuple[int, int]:
        return _short_side_size(int(hw[0]), int(hw[1]), self.short)

    def prepare(self, sample: dict[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        out = self._rest(sample)
        h, w = self._resized_hw(sample["frame_hw"])
        crops, flips = [], []
        for _ in self.views:  # RandomCrop.get_params then RandomHorizontalFlip, per view
            if h == self.size and w == self.size:
                i = j = 0
            else:
                i = int(torch.randint(0, h - self.size + 1, size=(1,)).item())
                j = int(torch.randint(0, w - self.size + 1, size=(1,)).item())
            crops.append((i, j))
            flips.append(bool(torch.rand(1) < self.p_flip))
        params = {"crop": torch.tensor(crops, dtype=torch.int64), "flip": torch.tensor(flips)}
        return out, params

    def finish(
        self, batch: dict[str, Any], device: torch.device | str,
        out: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        params = pop_params(batch)
        x = batch_frames(batch, device)
        batch.pop("frame", None), batch.pop(JPEG, None)
        # two views cropped from one resize: converting it to NCHW once makes each crop's
        # copy row-contiguous (measured: 12.7 vs 18.8 ms per 32 frames for the two views)
        x = resize(x, self._resized_hw(tuple(x.shape[-2:])), "bicubic").contiguous()
        views = {}
        shape = (x.shape[0], x.shape[1], self.size, self.size)
        for v, name in enumerate(self.views):
            c = params["crop"][:, v]
            dest = destination(out, name, shape, torch.float32, x.device)
            views[name] = crop_flip_normalize(x, c[:, 0], c[:, 1], self.size,
                                              params["flip"][:, v], dest)  # fmt: skip
        return {"clip_id": batch.pop("clip_id"), **views, **batch}


class MocoV2Batch(BatchedTransform):
    """:class:`~avmodels.methods.augment.MocoV2` (SSL-TIE's frames), parameters per sample."""

    needs_shape = True

    def __init__(self, frame: MocoV2, rest: Rest) -> None:
        super().__init__(rest)
        steps = frame.pipeline.transforms
        self.rrc: T.RandomResizedCrop = steps[0]
        self.jitter_p = float(steps[1].p)
        self.jitter: T.ColorJitter = steps[1].transforms[0]
        self.gray_p = float(steps[2].p)
        self.blur_p = float(steps[3].p)
        self.sigma = steps[3].transforms[0].sigma
        self.flip_p = float(steps[4].p) if len(steps) > 4 else 0.0
        self.size = tuple(self.rrc.size)
        # colour steps with PIL per image (None: on the CPU) or as batched tensor ops
        self.pil_colour: bool | None = None
        mode = self.rrc.interpolation
        self.mode = {T.InterpolationMode.BILINEAR: "bilinear",
                     T.InterpolationMode.BICUBIC: "bicubic"}[mode]  # fmt: skip

    @classmethod
    def of(cls, frame: Any, rest: Rest) -> MocoV2Batch | None:
        """The batched form of ``frame`` if it is a :class:`MocoV2` with its usual steps."""
        if not isinstance(frame, MocoV2):
            return None
        steps = frame.pipeline.transforms
        ok = (
            len(steps) in (4, 5)
            and isinstance(steps[0], T.RandomResizedCrop)
            and isinstance(steps[1], T.RandomApply)
            and isinstance(steps[1].transforms[0], T.ColorJitter)
            and isinstance(steps[2], T.RandomGrayscale)
            and isinstance(steps[3], T.RandomApply)
            and isinstance(steps[3].transforms[0], _GaussianBlur)
            and (len(steps) == 4 or isinstance(steps[4], T.RandomHorizontalFlip))
            and steps[0].interpolation
            in (T.InterpolationMode.BILINEAR, T.InterpolationMode.BICUBIC)
        )
        return cls(frame, rest) if ok else None

    def prepare(self, sample: dict[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        out = self._rest(sample)  # SpecAugment draws first, as the per-sample transform
        h, w = sample["frame_hw"]
        box = T.RandomResizedCrop.get_params(_size_only(int(h), int(w)), self.rrc.scale,
                                             self.rrc.ratio)  # fmt: skip
        jit = not bool(self.jitter_p < torch.rand(1))  # RandomApply's test
        order, factors = torch.arange(4), torch.tensor([1.0, 1.0, 1.0, 0.0])
        if jit:
            j = self.jitter
            fn_idx, b, c, s, hue = T.ColorJitter.get_params(
                j.brightness, j.contrast, j.saturation, j.hue
            )
            order = fn_idx
            factors = torch.tensor([1.0 if v is None else v for v in (b, c, s)] + [hue or 0.0])
        gray = bool(torch.rand(1) < self.gray_p)
        blr = not bool(self.blur_p < torch.rand(1))
        radius = 0.0
        if blr:  # _GaussianBlur's draw
            lo, hi = self.sigma
            radius = lo + (hi - lo) * float(torch.rand(1))
        flip = bool(torch.rand(1) < self.flip_p) if self.flip_p else False
        params = {
            "box": torch.tensor(box, dtype=torch.int64),
            "jitter": torch.tensor(jit),
            "order": order.to(torch.int64),
            "factors": factors.float(),
            "gray": torch.tensor(gray),
            "blur": torch.tensor(blr),
            "radius": torch.tensor(radius, dtype=torch.float64),
            "flip": torch.tensor(flip),
        }
        return out, params

    def finish(
        self, batch: dict[str, Any], device: torch.device | str,
        out: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        p = pop_params(batch)
        x = batch_frames(batch, device)
        batch.pop("frame", None), batch.pop(JPEG, None)
        n = x.shape[0]
        crops = torch.empty((n, *self.size, 3), dtype=torch.uint8, device=x.device)
        for b, (i, j, h, w) in enumerate(p["box"].tolist()):
            crop = resize(x[b : b + 1, :, i : i + h, j : j + w], self.size, self.mode)
            crops[b] = crop[0].permute(1, 2, 0)
        y = crops.permute(0, 3, 1, 2)
        pil = self.pil_colour if self.pil_colour is not None else y.device.type == "cpu"
        if pil:
            zeros = torch.zeros(n, dtype=torch.int64)
            dest = destination(out, "frame", (n, 3, *self.size), torch.float32, y.device)
            frame = crop_flip_normalize(self._pil_colour(crops, p), zeros, zeros, self.size[0],
                                        p["flip"], dest)  # fmt: skip
            return {"clip_id": batch.pop("clip_id"), "frame": frame, **batch}
        y = y.float()
        y = color_jitter(y, p["jitter"], p["order"], p["factors"])
        g = p["gray"].to(y.device)
        if bool(g.any()):
            y[g] = luma(y[g]).float().expand(-1, 3, -1, -1)
        y = blur(y, p["blur"], p["radius"])
        f = p["flip"].to(y.device)
        if bool(f.any()):
            y[f] = y[f].flip(-1)
        frame = normalize(y)
        return {"clip_id": batch.pop("clip_id"), "frame": frame, **batch}

    def _pil_colour(self, out: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        """Jitter, grayscale and blur with PIL per image, with the drawn parameters: the
        per-sample transform's very operations (on the CPU they beat float tensor ops)."""
        from PIL import Image, ImageFilter
        from torchvision.transforms import functional as TF

        ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
        arr = out.numpy()
        for b in range(len(arr)):
            jit, gray, blr = bool(p["jitter"][b]), bool(p["gray"][b]), bool(p["blur"][b])
            if not (jit or gray or blr):
                continue
            img = Image.fromarray(arr[b])
            if jit:
                for op in p["order"][b].tolist():
                    img = ops[op](img, float(p["factors"][b, op]))
            if gray:
                img = TF.rgb_to_grayscale(img, num_output_channels=3)
            if blr:
                img = img.filter(ImageFilter.GaussianBlur(radius=float(p["radius"][b])))
            arr[b] = np.asarray(img)
        return out.permute(0, 3, 1, 2)


@functools.lru_cache(maxsize=16)
def _size_only(h: int, w: int) -> Any:
    """A 1-bit PIL image of (h, w): what ``get_params`` needs (it reads only the size)."""
    from PIL import Image

    return Image.new("1", (w, h))


def resize_flow(flow: torch.Tensor, nh: int, nw: int) -> torch.Tensor:
    """(B, 2, H, W) float -> (B, 2, nh, nw), bicubic (a = -0.75), edges clamped: on the CPU
    cv2's INTER_CUBIC per channel (the per-sample transform's call; torch's CPU bicubic is
    ~10x slower), elsewhere torch's."""
    if tuple(flow.shape[-2:]) == (nh, nw):
        return flow
    if flow.device.type != "cpu":
        return F.interpolate(flow, size=(nh, nw), mode="bicubic", align_corners=False)
    import cv2

    src = flow.numpy()
    out = np.empty((*src.shape[:2], nh, nw), dtype=np.float32)
    for b in range(src.shape[0]):
        for c in range(src.shape[1]):
            out[b, c] = cv2.resize(src[b, c], (nw, nh), interpolation=cv2.INTER_CUBIC)
    return torch.from_numpy(out)


class FrameFlowCropBatch(BatchedTransform):
    """:class:`~avmodels.methods.augment.FrameFlowCrop` (HTF's paired frame/flow resize,
    crop and flip, signed flow) on a batch; not its ``legacy`` form."""

    needs_shape = True

    def __init__(self, pair: FrameFlowCrop, rest: Rest) -> None:
        super().__init__(rest)
        self.size, self.train, self.p_flip = pair.size, pair.train, pair.p_flip

    @classmethod
    def of(cls, pair: FrameFlowCrop, rest: Rest) -> FrameFlowCropBatch | None:
        return cls(pair, rest) if pair.train and not pair.legacy else None

    def _hw(self, hw: tuple[int, int]) -> tuple[int, int]:
        if not self.train:
            return self.size, self.size
        return _short_side_size(int(hw[0]), int(hw[1]), int(self.size * 1.1))

    def prepare(self, sample: dict[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        flow = sample["flow"]
        if flow.ndim != 3 or flow.shape[0] != 2:
            raise ValueError(f"expected a (2, H, W) flow, got {flow.shape}")
        i = j = 0
        flip = False
        if self.train:  # FrameFlowCrop's draws: i, j, then the flip
            nh, nw = self._hw(sample["frame_hw"])
            i = int(torch.randint(0, nh - self.size + 1, (1,)))
            j = int(torch.randint(0, nw - self.size + 1, (1,)))
            flip = float(torch.rand(1)) < self.p_flip
        out = self._rest(sample)
        params = {"crop": torch.tensor([i, j], dtype=torch.int64), "flip": torch.tensor(flip)}
        return out, params

    def finish(
        self, batch: dict[str, Any], device: torch.device | str,
        out: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        p = pop_params(batch)
        x = batch_frames(batch, device)
        batch.pop("frame", None), batch.pop(JPEG, None)
        flow = batch.pop("flow").to(device, non_blocking=True).float()
        nh, nw = self._hw(tuple(x.shape[-2:]))
        x = resize(x, (nh, nw), "bicubic")
        fh, fw = flow.shape[-2:]
        flow = resize_flow(flow, nh, nw)
        # the vectors are in pixels: they scale with the resize (float32 factors, as the
        # per-sample transform); applied to the crops only, where x * -s == -(x * s)
        scale = torch.tensor([nw / fw, nh / fh]).repeat(len(flow), 1)
        if self.train:
            top, left, flip = p["crop"][:, 0], p["crop"][:, 1], p["flip"]
            n = len(flip)
            dest = destination(out, "frame", (n, 3, self.size, self.size), torch.float32,
                               x.device)  # fmt: skip
            frame = crop_flip_normalize(x, top, left, self.size, flip, dest)
            dest = destination(out, "flow", (n, 2, self.size, self.size), torch.float32,
                               flow.device)  # fmt: skip
            flow = crop_flip(flow, top, left, self.size, flip, dest)
            scale[flip, 0] = -scale[flip, 0]  # x motion points the other way in a mirror
            flow = flow.mul_(scale.to(flow.device).view(-1, 2, 1, 1))  # the crops: not the input
        else:
            frame = normalize(x)
            flow = flow * scale.to(flow.device).view(-1, 2, 1, 1)
        return {
            "clip_id": batch.pop("clip_id"),
            "frame": frame,
            "flow": flow if flow.is_contiguous() else flow.contiguous(),
            **batch,
        }


def batched(per_sample: Any) -> BatchedTransform | None:
    """The batched form a per-sample *training* transform declares (its
    ``batch_augment()`` hook), or None: that transform keeps the per-sample path."""
    hook = getattr(per_sample, "batch_augment", None)
    return hook() if callable(hook) else None


__all__ = [  # the pixel operations stay reachable here, where they were
    "BatchedTransform",
    "CropFlipViews",
    "FrameFlowCropBatch",
    "JPEG",
    "MocoV2Batch",
    "PARAMS",
    "Rest",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_hue_float",
    "adjust_saturation",
    "batch_frames",
    "batched",
    "blur",
    "color_jitter",
    "crop_flip",
    "crop_flip_normalize",
    "destination",
    "jpeg_size",
    "luma",
    "normalize",
    "pil_blur_kernel",
    "pil_box_kernel",
    "pil_box_radius",
    "pop_params",
    "resize",
    "resize_flow",
    "to_nchw",
    "with_params",
]
