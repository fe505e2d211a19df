"""SSPL: self-supervised predictive learning, with (``sspl-pcm``) and without (``sspl``) PCM.

Song, Wang, Ma, Hu, Li, Zhang, Qiao, "Self-Supervised Predictive Learning: A
Negative-Free Method for Sound Source Localization in Visual Scenes", CVPR 2022
(code: github.com/zjsong/SSPL).

- Frame net: VGG16 ``features[0:29]``, frozen ImageNet weights (224 px -> 512x14x14).
- Sound net: VGGish (frozen conv features + 128-d embeddings) then a trainable
  Linear(128, 512)-ReLU-Linear(512, 512), applied to each 0.96 s example and
  averaged over the (3) examples of the clip.
- ``sspl-pcm`` refines the visual map with the predictive coding module
  (:mod:`avmodels.methods.pcm`), driven by the L2-normalised mean VGGish embedding.
- Attention: cosine map between the L2-normalised visual features and the
  audio vector; its min-max normalisation weights the visual features into
  one 512-d vector per view; a SimSiam head (projector 512-2048-2048-2048,
  predictor 2048-512-2048) on two augmented views of the frame; loss =
  symmetric negative cosine with stop-gradient. The localisation map is the
  raw cosine map of the (test-transformed) frame.

Differences from the released code (all behaviour-preserving for valid input):
batches of any size >= 2 train and any size evaluates (the original crashes
below 20 per GPU and at 1); the PCM runs on any map of side 4k+2 instead of
only 14x14; the frozen VGGish embedding can be cached per clip
(``model.cache_vggish``, on by default: VGGish has no dropout or BatchNorm
and SSPL does not augment audio, so the cached value is the one the network
would compute); both views go through the frozen VGG16 in one call (no
BatchNorm there, so identical results).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision import transforms

from avmodels.backbones import vgg16, vggish
from avmodels.engine.config import deep_merge
from avmodels.layers.attention import attention_pool
from avmodels.layers.heads import SimSiamHead
from avmodels.methods.base import METHODS, Batch, CachedFeature, Method
from avmodels.methods.pcm import PredictiveCoding
from avprep.errors import ConfigError, InputError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EMBEDDING_KEY = "vggish_embedding"


def _spectrogram_of(sample: dict[str, Any]) -> np.ndarray:
    """The clip's VGGish log-mel examples ``(N, 96, 64)``, stored or computed from audio."""
    spec = sample.get("spectrogram")
    if spec is None:
        if sample.get("audio") is None:
            raise InputError(
                f"clip {sample.get('clip_id')}: SSPL needs a VGGish log-mel spectrogram or "
                "the audio to compute one; pack the shards with the sspl profile"
            )
        from avprep import spectrogram as fe  # the shared front ends (VGGish log-mel)

        spec = fe.compute("vggish-sspl", np.asarray(sample["audio"]), int(sample["sample_rate"]))
    spec = np.asarray(spec, dtype=np.float32)
    if spec.ndim == 4 and spec.shape[1] == 1:  # (N, 1, 96, 64)
        spec = spec[:, 0]
    if spec.ndim != 3 or spec.shape[1:] != vggish.EXAMPLE_SHAPE:
        raise InputError(
            f"clip {sample.get('clip_id')}: expected VGGish log-mel examples (N, 96, 64), "
            f"got {spec.shape}; the shards were packed with another spectrogram profile"
        )
    return spec


class VggishCacheInput:
    """Picklable: store sample -> ``{"spectrogram": (N, 96, 64)}`` (for the VGGish cache)."""

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        return {"spectrogram": torch.from_numpy(_spectrogram_of(sample))}


class SsplTransform:
    """Picklable sample transform: two augmented views (train) or one test view.

    Train: Resize(int(1.1 * size), bicubic) -> RandomCrop(size) -> HFlip, twice
    (the released code's trailing CenterCrop(size) is a no-op and skipped).
    Test: Resize(size, bicubic) -> CenterCrop(size). ImageNet normalisation.
    """

    def __init__(self, image_size: int, resize_ratio: float, train: bool) -> None:
        self.train = train
        norm = [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
        bicubic = transforms.InterpolationMode.BICUBIC
        if train:
            self.image = transforms.Compose(
                [
                    transforms.Resize(int(image_size * resize_ratio), bicubic),
                    transforms.RandomCrop(image_size),
                    transforms.RandomHorizontalFlip(),
                    *norm,
                ]
            )
        else:
            self.image = transforms.Compose(
                [transforms.Resize(image_size, bicubic), transforms.CenterCrop(image_size), *norm]
            )

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        frame = np.asarray(sample["frame"])
        if frame.dtype != np.uint8:  # SSPL-layout float32 0-255 frames
            frame = np.clip(frame, 0, 255).astype(np.uint8)
        img = Image.fromarray(frame).convert("RGB")
        out: dict[str, Any] = {"clip_id": str(sample["clip_id"]), "view1": self.image(img)}
        if self.train:
            out["view2"] = self.image(img)
        return {**out, **self.audio(sample)}

    def audio(self, sample: dict[str, Any]) -> dict[str, Any]:
        """The audio input: the cached VGGish embedding, or the log-mel spectrogram."""
        if EMBEDDING_KEY in sample:
            return {EMBEDDING_KEY: torch.as_tensor(np.asarray(sample[EMBEDDING_KEY], np.float32))}
        return {"spectrogram": torch.from_numpy(_spectrogram_of(sample))}

    def batch_augment(self) -> Any:
        """The batched form of the train views (avmodels.methods.batch_augment reads it)."""
        from avmodels.methods.batch_augment import CropFlipViews

        return CropFlipViews.of(self.image, ("view1", "view2"), self.audio) if self.train else None


def _state_hash(module: nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in module.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@METHODS.register("sspl")
class SSPL(Method):
    """SSPL without PCM (the paper's "SSPL (w/o PCM)")."""

    name = "sspl"
    paper = "Song et al., Self-Supervised Predictive Learning, CVPR 2022"
    inputs = ("frame", "spectrogram")
    profile = "sspl"
    defaults: dict[str, Any] = {
        "model": {
            "pretrained": True,  # ImageNet VGG16 + AudioSet VGGish (frozen)
            "frame_weights": None,  # path to vgg16-397923af.pth (default: the weights cache)
            "vggish_weights": None,  # path to vggish-10086976.pth (default: the weights cache)
            "image_size": 224,
            "resize_ratio": 1.1,  # train: Resize(int(1.1 * 224) = 246) -> RandomCrop(224)
            "audio_dim": 128,
            "out_dim": 512,
            "proj_dim": 2048,
            "pred_hidden": 512,
            "pcm": False,
            "pcm_cycles": 4,
            "cache_vggish": True,
        },
        "optim": {
            "name": "adamw",
            "betas": [0.9, 0.999],
            "weight_decay": 1e-4,
            "lr_sound": 5e-4,
            "lr_head": 2e-3,
            "lr_pcm": 2e-5,
            "scheduler": "constant",
        },
        "train": {"epochs": 100, "batch_size": 128},
    }
    smoke_overrides: dict[str, Any] = {
        "model": {"pretrained": False, "image_size": 32},
        "train": {"batch_size": 4},
    }

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        m = dict(self.cfg["model"])
        self.model_cfg = m
        self.frame_net = vgg16.vgg16_features()
        self.vggish = vggish.VGGish()
        self.sound_fc = nn.Sequential(
            nn.Linear(int(m["audio_dim"]), 512),
            nn.ReLU(inplace=True),
            nn.Linear(512, int(m["out_dim"])),
        )
        self.pcm = (
            PredictiveCoding(int(m["pcm_cycles"]), int(m["audio_dim"]), 512, int(m["out_dim"]))
            if m["pcm"]
            else None
        )
        self.head = SimSiamHead(int(m["out_dim"]), int(m["proj_dim"]), int(m["pred_hidden"]))
        if m["pretrained"]:
            from avmodels import weights

            vgg16.load_imagenet(self.frame_net, weights.resolve("vgg16", m["frame_weights"]))
            vggish.load_pretrained(self.vggish, weights.resolve("vggish", m["vggish_weights"]))
        for p in (*self.frame_net.parameters(), *self.vggish.parameters()):
            p.requires_grad_(False)
        self._vggish_version: str | None = None

    # -- data --------------------------------------------------------------
    def sample_transform(self, train: bool) -> Callable[[dict[str, Any]], dict[str, Any]]:
        m = self.model_cfg
        return SsplTransform(int(m["image_size"]), float(m["resize_ratio"]), train)

    def required_inputs(self, cached: bool = False) -> tuple[str, ...]:
        return ("frame",) if cached else ("frame", "spectrogram")

    def feature_caches(self) -> list[CachedFeature]:
        if not self.model_cfg["cache_vggish"]:
            return []
        if self._vggish_version is None:
            self._vggish_version = "vggish-" + _state_hash(self.vggish)
        return [
            CachedFeature(
                name=EMBEDDING_KEY,
                version=self._vggish_version,
                inputs=("spectrogram",),
                prepare=VggishCacheInput(),
                compute=self._embed_batch,
            )
        ]

    def _embed_batch(self, batch: Batch) -> torch.Tensor:
        return self.embed_spectrogram(batch["spectrogram"])

    def smoke_sample(self, seed: int) -> dict[str, Any]:
        """A store sample with a spectrogram and, to keep smoke tests fast, its cached
        VGGish embedding (random: the frozen network's output is not what is tested)."""
        sample = super().smoke_sample(seed)
        rng = np.random.default_rng(seed + 1)
        sample["spectrogram"] = rng.uniform(-4.6, 2.0, size=(3, 96, 64)).astype(np.float32)
        sample[EMBEDDING_KEY] = rng.uniform(0, 1, size=(3, 128)).astype(np.float32)
        return sample

    # -- network -----------------------------------------------------------
    def embed_spectrogram(self, spec: torch.Tensor) -> torch.Tensor:
        """Frozen VGGish: ``(B, N, 96, 64)`` log-mel examples -> ``(B, N, 128)``."""
        b, n = spec.shape[:2]
        with torch.no_grad():
            emb = self.vggish(spec.reshape(b * n, 1, *spec.shape[2:]))
        return emb.reshape(b, n, -1)

    def audio_features(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalised mean VGGish embedding (B, 128) for the PCM, audio vector (B, 512))."""
        emb = batch.get(EMBEDDING_KEY)
        if emb is None:
            emb = self.embed_spectrogram(batch["spectrogram"])
        emb = emb.to(self.sound_fc[0].weight.dtype)
        audio_vec = self.sound_fc(emb).mean(dim=1)  # the head per example, then the average
        audio_pcm = F.normalize(emb.mean(dim=1), p=2, dim=1)
        return audio_pcm, audio_vec

    def visual_maps(self, images: list[torch.Tensor], audio_pcm: torch.Tensor) -> list:
        """Frozen VGG16 (all views in one call) then, per view, the PCM."""
        with torch.no_grad():
            feats = self.frame_net(torch.cat(images, dim=0))
        feats = list(feats.chunk(len(images), dim=0))
        if self.pcm is not None:
            # per view, as in the original: the PCM's BatchNorms see one view at a time
            feats = [self.pcm(f, audio_pcm) for f in feats]
        return feats

    def _check_batch(self, n: int) -> None:
        if self.training and n < 2:
            local_bn = any(type(mod) is nn.BatchNorm1d for mod in self.head.modules())
            if local_bn:
                raise ConfigError(
                    "SSPL cannot train on a batch of 1: its SimSiam head has BatchNorm "
                    "layers, which need at least 2 samples per step (use train.batch_size >= 2)"
                )

    # -- engine interface --------------------------------------------------
    def encode(self, batch: Batch) -> dict[str, Any]:
        """Audio vectors and the visual feature map of each view.

        Training encodes two views (the second view is the first when the batch
        has one); evaluation encodes the views the batch has (the test
        transform gives one).
        """
        view1 = batch["view1"]
        self._check_batch(view1.size(0))
        if self.training:
            return self._encode_views(batch, [view1, batch.get("view2", view1)])
        return self._encode_views(batch, [view1] + ([batch["view2"]] if "view2" in batch else []))

    def _encode_views(self, batch: Batch, views: list[torch.Tensor]) -> dict[str, Any]:
        audio_pcm, audio_vec = self.audio_features(batch)
        return {"audio": audio_vec, "views": self.visual_maps(views, audio_pcm)}

    def losses(self, features: dict[str, Any], batch: Batch) -> dict[str, torch.Tensor]:
        feats, audio_vec = features["views"], features["audio"]
        x1 = attention_pool(feats[0], audio_vec)[0]
        x2 = attention_pool(feats[1], audio_vec)[0] if len(feats) > 1 else x1
        return {"loss": self.head.loss(x1, x2)}

    def maps(self, features: dict[str, Any], batch: Batch) -> torch.Tensor:
        return attention_pool(features["views"][0], features["audio"])[1]

    def localization_map(self, batch: Batch) -> torch.Tensor:
        # the map reads the first view alone: encode only it (no second VGG16 pass,
        # and in training mode the PCM's BatchNorms see it once)
        return self.maps(self._encode_views(batch, [batch["view1"]]), batch)

    def param_groups(self) -> list[dict[str, Any]]:
        o = self.cfg.get("optim", {})
        groups: list[dict[str, Any]] = [
            {"name": "sound_fc", "params": list(self.sound_fc.parameters()), "lr": o["lr_sound"]}
        ]
        if self.pcm is not None:
            gates = {id(p) for p in self.pcm.gate_parameters()}
            convs = [p for p in self.pcm.parameters() if id(p) not in gates]
            groups += [
                {"name": "pcm", "params": convs, "lr": o["lr_pcm"]},
                # the released code excludes the gates from weight decay
                {
                    "name": "pcm_gates",
                    "params": self.pcm.gate_parameters(),
                    "lr": o["lr_pcm"],
                    "weight_decay": 0.0,
                },
            ]
        groups.append({"name": "head", "params": list(self.head.parameters()), "lr": o["lr_head"]})
        for g in groups:
            g["lr"] = float(g["lr"])
        return groups


@METHODS.register("sspl-pcm")
class SSPLWithPCM(SSPL):
    """SSPL with the predictive coding module (the paper's full model)."""

    name = "sspl-pcm"
    # SSPL's, but with PCM, its own learning rates and 20 epochs
    defaults: dict[str, Any] = deep_merge(
        SSPL.defaults,
        {
            "model": {"pcm": True},
            "optim": {"lr_sound": 2e-5, "lr_head": 5e-5},
            "train": {"epochs": 20},
        },
    )
    smoke_overrides: dict[str, Any] = {
        "model": {"pretrained": False, "image_size": 96},
        "train": {"batch_size": 4},
    }
