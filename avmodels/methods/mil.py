"""Multiple-instance audio-visual contrastive learning: what EZ-VSL, FNAC and SLAVC share.

Mo and Morgado, "Localizing Visual Sounds the Easy Way" (ECCV 2022,
github.com/stoneMo/EZ-VSL) and its descendants FNAC (CVPR 2023) and SLAVC
(NeurIPS 2022) use the same two streams, read the same sample and score a
clip by the same map:

- vision: torchvision ResNet-18 (ImageNet weights, trained), 224 px ->
  512x7x7, a 1x1 conv projection to ``dim`` (512); audio: ResNet-18 from
  scratch with a 1-channel conv1, global max pool, a linear projection;
  both L2-normalised along the channels (:func:`mil_streams`);
- initialisation of everything but the vision trunk (:func:`mil_init`):
  convs Kaiming normal (fan_out, ReLU), linear weights truncated normal
  (std 0.01; biases keep torch's default), norms N(1, 0.02) / 0;
- the map of a clip is its cosine map divided by the temperature tau
  (0.03), ``S[i, i]`` of ``S = <V_i, a_j> / tau``;
- the multiple-instance logit of a pair is the maximum of its map over the
  positions; the loss is cross-entropy over audios for each image plus over
  images for each audio (:func:`mil_infonce`);
- frames: train ``Resize(246)`` + ``RandomCrop(224)`` + flip, test squash to
  224x224, both bicubic; audio: 3 s, ``scipy.signal.spectrogram(nperseg=512,
  noverlap=274)``, ``log(S + 1e-7) / 12`` (avprep's ``lvs`` front end).

Multi-process training. The originals compute the loss of each GPU's
sub-batch alone (negatives from the same GPU only). ``loss.global_negatives``
(off by default, as the originals) gathers the other processes' features
(:func:`avmodels.layers.gather.gather_batch`, gradients flow back to their owners) so that N
processes with batch b train exactly as one process with batch N b.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avmodels.backbones.resnet import build_stream, imagenet_weights_path, load_imagenet
from avmodels.layers.normalise import minmax_guarded
from avmodels.layers.similarity import cross_maps, pair_maps
from avmodels.methods.audio_input import FrameSpectrogramSample
from avmodels.methods.augment import ResizeRandomCropFlip, ResizeSquash
from avmodels.methods.construction import (
    SMALL_STREAM,
    load_pretrained_vision,
    official_model,
    projection_dim,
    small_smoke_model,
    stream_kwargs,
    strip_prefix,
)
from avprep.errors import InputError

# -- configuration ---------------------------------------------------------------


def mil_model_defaults(**extra: Any) -> dict[str, Any]:
    """EZ-VSL's ``model`` section; ``extra`` (FNAC's dropouts, SLAVC's momenta) stands
    before the small backbone's sizes."""
    return {
        "backbone": "resnet18",  # or "small" for CPU runs at 64-128 px
        "pretrained": True,  # ImageNet vision trunk (trained, not frozen)
        "pretrained_path": None,  # torchvision resnet18 .pth (None: the weights cache)
        "dim": 512,  # --out_dim
        **extra,
        **SMALL_STREAM,
    }


def mil_data_defaults() -> dict[str, Any]:
    """The family's ``data`` section: 224 px frames, 3 s of ``lvs`` spectrogram."""
    return {
        "image_size": 224,
        "spectrogram": "store",  # or "audio": computed on the fly
        "spectrogram_name": "lvs",  # scipy STFT, log(S + 1e-7) / 12
        "audio_seconds": 3.0,  # tiled to 3 s when shorter
        "spec_divisor": 1.0,  # the "lvs" front end already divides by 12
    }


def mil_smoke(**model_extra: Any) -> dict[str, Any]:
    """The family's ``smoke_overrides`` (small CNN, 64 px, batch 4), ``model_extra`` added."""
    return {
        "model": small_smoke_model(dim=16, **model_extra),
        "data": {"image_size": 64},
        "train": {"batch_size": 4},
    }


# a random (257, 200) log-spectrogram / 12, the shape of 3 s at 16 kHz
MIL_SMOKE_SPECTROGRAM = (-0.8, 0.2, (257, 200))

# -- model -----------------------------------------------------------------------


def mil_init(module: nn.Module) -> None:
    """EZ-VSL's initialisation of the audio net and both projections."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, mean=1.0, std=0.02)
            nn.init.constant_(m.bias, 0.0)


def mil_dropouts(model_cfg: Mapping[str, Any]) -> tuple[nn.Dropout, nn.Dropout]:
    """FNAC's and SLAVC's dropouts of the visual map and of the audio vector."""
    return nn.Dropout(p=float(model_cfg["dropout_img"])), nn.Dropout(
        p=float(model_cfg["dropout_aud"])
    )


def mil_streams(model_cfg: Mapping[str, Any]) -> tuple[nn.Module, nn.Module]:
    """The vision and audio trunks (``model.backbone`` ``small``: the small CNN, CPU runs)."""
    kw = stream_kwargs(model_cfg)
    backbone = model_cfg["backbone"]
    vision = build_stream(backbone, in_channels=3, layer4_stride=2, **kw)
    audio = build_stream(backbone, in_channels=1, layer4_stride=2, pool="max", **kw)
    mil_init(audio)
    load_pretrained_vision(vision, model_cfg)
    return vision, audio


def projections(channels: int, dim: int) -> tuple[nn.Conv2d, nn.Linear]:
    """The 1x1 conv of the visual map and the linear map of the audio vector, initialised."""
    img_proj, aud_proj = nn.Conv2d(channels, dim, kernel_size=1), nn.Linear(channels, dim)
    mil_init(img_proj)
    mil_init(aud_proj)
    return img_proj, aud_proj


def av_map(img: torch.Tensor, aud: torch.Tensor, tau: float) -> torch.Tensor:
    """Each clip's map ``<V_i, a_i> / tau`` (B, h, w) of L2-normalised features."""
    return pair_maps(img.float(), aud.float()) / tau


def mil_logits(img: torch.Tensor, aud: torch.Tensor, tau: float) -> torch.Tensor:
    """``max_{h,w} <V_n, a_m> / tau`` (n, m) for images ``img`` and audios ``aud``."""
    return (cross_maps(img, aud) / tau).flatten(-2).max(dim=-1).values


def mil_infonce(
    img: torch.Tensor,
    aud: torch.Tensor,
    img_all: torch.Tensor,
    aud_all: torch.Tensor,
    offset: int,
    tau: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """EZ-VSL's loss of this process's rows and its image-to-audio logits (b, N).

    ``CE(L, y) + CE(L^T, y)`` with ``L[n, m] = max_{h,w} <V_n, a_m> / tau``
    and ``y`` the true pairs; ``img_all``/``aud_all`` are the batch the
    negatives come from (the local one in a single process).
    """
    rows = mil_logits(img, aud_all, tau)  # local images x all audios
    local = img_all is img and aud_all is aud
    cols = (rows if local else mil_logits(img_all, aud, tau)).t()  # audios x all images
    labels = torch.arange(img.shape[0], device=img.device) + offset
    return F.cross_entropy(rows, labels) + F.cross_entropy(cols, labels), rows


# -- data ------------------------------------------------------------------------


class MilSample(FrameSpectrogramSample):
    """Store sample -> {clip_id, frame (3, S, S), spectrogram (1, 257, T)}.

    ``spec_aug`` (a callable on the (1, F, T) tensor) runs on training samples.
    """

    def __init__(
        self, cfg: Mapping[str, Any], train: bool, spec_aug: Callable | None = None
    ) -> None:
        size = int(cfg["data"]["image_size"])
        frame = ResizeRandomCropFlip(size) if train else ResizeSquash(size)
        super().__init__(cfg["data"], frame, spec_aug if train else None)


# -- evaluation: EZ-VSL's object saliency ------------------------------------------


class ObjectSaliency(nn.Module):
    """EZ-VSL's "objectness" map: mean |feature| over the channels of an ImageNet ResNet-18.

    A separate frozen torchvision ResNet-18 with ImageNet weights (not the
    trained vision stream), stride 32: (B, 7, 7) at 224 px.
    """

    def __init__(self, weights: str | None = None) -> None:
        super().__init__()
        self.net = build_stream("resnet18", in_channels=3, layer4_stride=2)
        load_imagenet(self.net, weights or imagenet_weights_path())
        self.net.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> ObjectSaliency:
        return super().train(False)  # always inference

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        return self.net(frame).abs().mean(dim=1)


def blend_with_saliency(
    av: torch.Tensor, obj: torch.Tensor, alpha: float, size: int = 224
) -> torch.Tensor:
    """EZ-VSL's ``N(alpha N(up(av)) + (1 - alpha) N(up(obj)))`` at ``size`` x ``size``.

    ``up`` is bilinear with ``align_corners=True``, as its test script; the
    result is already on the evaluation grid (the ``ezvsl`` preset leaves a
    224x224 map in [0, 1] unchanged).
    """

    def up(m: torch.Tensor) -> torch.Tensor:
        return F.interpolate(m.unsqueeze(1).float(), size=(size, size), mode="bilinear",
                             align_corners=True)[:, 0]  # fmt: skip

    p_av, p_obj = minmax_guarded(up(av)), minmax_guarded(up(obj))
    return minmax_guarded(p_av * alpha + p_obj * (1 - alpha))


# -- checkpoints -----------------------------------------------------------------

_TOP = {"imgnet": "vision", "audnet": "audio"}


def mil_state_from_official(
    state: Mapping[str, torch.Tensor], what: str, renames: Mapping[str, str]
) -> dict[str, torch.Tensor]:
    """Map an EZ-VSL-family ``model`` state dict onto ours.

    ``imgnet.*``/``audnet.*`` (torchvision ResNet-18 names, no ``fc``) become
    ``vision.*``/``audio.*`` (also ``momentum_imgnet`` -> ``momentum.vision``
    etc. through ``renames``); ``renames`` maps the remaining top-level
    modules (``img_proj`` ...). DDP's ``module.`` prefix is removed; any other
    key is an error.
    """
    out: dict[str, torch.Tensor] = {}
    table = {**_TOP, **renames}
    for key, value in strip_prefix(state, "module.").items():
        top, _, rest = key.partition(".")
        if top not in table:
            raise InputError(f"not an {what} state dict: unexpected key {key!r}")
        out[f"{table[top]}.{rest}"] = value
    return out


def mil_official_model(
    cls: type,
    mapped: Mapping[str, torch.Tensor],
    cfg: Mapping[str, Any] | None,
    what: str,
    projection: str = "img_proj",
) -> Any:
    """A ResNet-18 ``cls`` holding a converted checkpoint (``model.dim`` read from ``projection``)."""
    dim = projection_dim(mapped, f"{projection}.weight")
    over = {"model": {"backbone": "resnet18", "pretrained": False, "dim": dim}}
    return official_model(cls, mapped, cfg, over, what)
