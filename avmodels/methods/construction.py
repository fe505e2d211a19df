"""How a method is assembled: its config, its streams, and released weights loaded into it.

Shared by the methods (a method module never imports another method module):

- :func:`resolved` completes a partial config (the engine's resolver, once);
  :func:`~avmodels.engine.config.deep_merge` (the one recursive merge) merges two config patches;
- :data:`SMALL_STREAM` / :func:`stream_kwargs` / :func:`load_pretrained_vision`:
  the ``small`` backbone's size keys and ImageNet weights for a ResNet-18
  vision stream; :func:`small_smoke_model` the tiny one of a smoke test;
  :func:`positive_tau` checks ``loss.tau``;
- :func:`strip_prefix` / :func:`load_mapped` / :func:`official_model`: a DDP
  prefix removed, a converted official state dict loaded strictly with a
  readable error into a model built for it;
- :func:`avenet_streams`: the LVS family's two streams, re-initialised as theirs;
- :func:`avenet_state_from_official`: the key layout of the LVS family's
  ``AVENet`` (LVS, SSL-TIE): ``imgnet.*`` and ``audnet.*`` ResNets that each
  hold three first convolutions (RGB ``conv1``, audio ``conv1_a``, a 6-channel
  ``conv1_flow``) and an unused ``fc``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from avmodels.backbones.resnet import build_stream, load_imagenet, lvs_init
from avmodels.engine.config import deep_merge
from avprep.errors import ConfigError, InputError

# the ``small`` backbone's sizes (CPU runs at 64-128 px; the small audio stream has a
# 4x patch stem first); ``resnet18`` ignores them
SMALL_STREAM: dict[str, int] = {
    "small_width": 32,
    "small_channels": 128,
    "small_stride": 8,
    "small_audio_stride": 16,
}


def resolved(cls: type, patch: Mapping[str, Any] | None) -> dict[str, Any]:
    """The config a method ``cls`` is built from: ``patch`` completed by the one resolver."""
    from avmodels.engine.config import resolve_config

    return resolve_config(cls, overrides_dict=patch)


def small_smoke_model(**extra: Any) -> dict[str, Any]:
    """The ``model`` patch of a ``smoke_overrides``: the small CNN, no pretrained weights."""
    return {
        "backbone": "small",
        "pretrained": False,
        "small_width": 8,
        "small_channels": 32,
        **extra,
    }


def stream_kwargs(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The ``small`` backbone's size keys (ignored by ``resnet18``)."""
    return {key: int(model_cfg.get(key, value)) for key, value in SMALL_STREAM.items()}


def positive_tau(cfg: Mapping[str, Any]) -> float:
    """``loss.tau`` of a config, which must be > 0."""
    tau = float(cfg["loss"]["tau"])
    if tau <= 0:
        raise ConfigError("loss.tau must be > 0")
    return tau


def load_pretrained_vision(stream: nn.Module, model_cfg: Mapping[str, Any]) -> None:
    """ImageNet weights into a ResNet-18 stream when ``model.pretrained`` is true.

    ``model.pretrained_path`` names the torchvision ``resnet18`` file; by default
    it comes from torch's hub cache or ``avmodels weights fetch resnet18``.
    """
    if not model_cfg.get("pretrained", False):
        return
    path = model_cfg.get("pretrained_path")
    if not path:
        from avmodels.backbones.resnet import imagenet_weights_path

        path = imagenet_weights_path()
    load_imagenet(stream, path)


def avenet_streams(model_cfg: Mapping[str, Any]) -> tuple[nn.Module, nn.Module]:
    """The vision and audio streams of the LVS family's ``AVENet`` (LVS, SSL-TIE).

    Layer4 stride 1 (224 px -> 14x14), a 1-channel max-pooled audio stream; every
    conv and norm re-initialised after building (:func:`lvs_init`), then ImageNet
    weights in the vision stream when ``model.pretrained`` is true.
    """
    kw = stream_kwargs(model_cfg)
    backbone = model_cfg["backbone"]
    vision = build_stream(backbone, in_channels=3, layer4_stride=1, **kw)
    audio = build_stream(backbone, in_channels=1, layer4_stride=1, pool="max", **kw)
    lvs_init(vision)
    lvs_init(audio)
    load_pretrained_vision(vision, model_cfg)
    return vision, audio


def strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Remove ``prefix`` from every key that has it (``module.`` of DataParallel/DDP)."""
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state.items()}


def load_mapped(model: nn.Module, mapped: Mapping[str, torch.Tensor], what: str) -> None:
    """Strictly load a converted official state dict; a clear error on any mismatch."""
    own = model.state_dict()
    missing = sorted(set(own) - set(mapped))
    unexpected = sorted(set(mapped) - set(own))
    shapes = sorted(k for k in set(own) & set(mapped) if own[k].shape != mapped[k].shape)
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} of other shape (e.g. {k}: {tuple(mapped[k].shape)})")
        raise InputError(f"not a {what} checkpoint: " + "; ".join(parts))
    model.load_state_dict(dict(mapped), strict=True)


def official_model(
    cls: type[nn.Module],
    mapped: Mapping[str, torch.Tensor],
    cfg: Mapping[str, Any] | None,
    over: Mapping[str, Any],
    what: str,
) -> Any:
    """``cls`` built from ``cfg`` completed by ``over``, holding the converted weights ``mapped``.

    The config is resolved once (:func:`resolve_config`): ``cfg`` may be partial.
    """
    model = cls(resolved(cls, deep_merge(cfg or {}, over)))
    load_mapped(model, mapped, what)
    return model


def projection_dim(mapped: Mapping[str, torch.Tensor], key: str, default: int = 512) -> int:
    """The output size of a converted checkpoint's projection ``key`` (``default`` without it)."""
    return int(mapped[key].shape[0]) if key in mapped else default


_AVENET_UNUSED_IMG = ("conv1_a.", "conv1_flow.", "fc.", "dim_mapping.")
_AVENET_UNUSED_AUD = ("conv1.", "conv1_flow.", "fc.", "dim_mapping.")


def avenet_state_from_official(
    state: Mapping[str, torch.Tensor], what: str, unused_top: tuple[str, ...] = ()
) -> dict[str, torch.Tensor]:
    """Map an LVS-family ``AVENet`` state dict (``imgnet.*``, ``audnet.*``) onto ours.

    ``vision.*`` takes ``imgnet.*`` (its RGB ``conv1``), ``audio.*`` takes
    ``audnet.*`` with ``conv1_a`` as its ``conv1``; the unused first convs, ``fc``
    and the top-level modules named in ``unused_top`` are dropped. A DDP or
    DataParallel ``module.`` prefix is removed. Any other key is an error.
    """
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in strip_prefix(state, "module.").items():
        net, _, rest = key.partition(".")
        if unused_top and key.startswith(unused_top):
            continue
        if net == "imgnet":
            if not rest.startswith(_AVENET_UNUSED_IMG):
                out["vision." + rest] = value
        elif net == "audnet":
            if rest.startswith("conv1_a."):
                out["audio.conv1." + rest[len("conv1_a.") :]] = value
            elif not rest.startswith(_AVENET_UNUSED_AUD):
                out["audio." + rest] = value
        else:
            unknown.append(key)
    if unknown:
        raise InputError(f"not an {what} state dict: unexpected key {unknown[0]!r}")
    return out
