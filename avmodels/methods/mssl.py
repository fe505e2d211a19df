"""Multi-Source: multiple sound source localisation from coarse to fine.

Qian, Hu, Dinkel, Wu, Xu, Lin, "Multiple Sound Sources Localization from
Coarse to Fine", ECCV 2020 (github.com/shvdiwnkozbw/Multi-Source-Sound-Localization,
the simplified version in its ``new/`` folder). Defaults are ``new/main.py``'s:

- two ResNet-18 streams with layer4 stride 1: vision (ImageNet weights) on
  256 px frames -> 512x16x16, audio (from scratch, 1-channel conv1) on the
  (T, 64) log-mel of 5 s at 22,050 Hz (251 x 64) -> 512x16x4;
- stage 1: audio-visual correspondence - a pair head 1024->128->2 on every
  (audio i, frame j) pair of the batch, cross-entropy averaged separately over
  matched and mismatched pairs and halved - plus two 7-way classifiers (1x1
  convs, no bias) trained with BCE on category pseudo labels;
- stage 2: the classifiers' class activation maps (ReLU, detached) pool a
  class-specific 512-d feature per category from each stream, projected
  512->1024->128 (1-D convs, no bias) and L2-normalised; with d = 2 - 2 cos
  over all (sample, class) pairs whose predicted class probabilities exceed 0.3,
  matched pairs (same sample, same class) are pulled (mean d) and the others
  pushed (mean ReLU(1.4 - sqrt d)^2); the stage-1 losses stay on;
- SGD momentum 0.9, weight decay 5e-4, lr 1e-3 (stage 1) / 1e-4 (stage 2),
  batch 16, 20 epochs; training frames flipped horizontally with p 0.5.

The map (the original's ``Location`` model): cosine between each class's
audio embedding and the projected visual feature at every position, ReLU,
combined over the classes by the audio class probabilities. Where we differ
(each an option or documented in docs/methods.md): pseudo labels come from a
labels file or a k-means fallback (:mod:`avmodels.methods.pseudo_labels`), the
evaluation's double sigmoid is fixed (``mssl.map: original`` keeps it),
distances are clamped before the square root, and the pair head is evaluated
as two half-products instead of on a (B, B, 1024) concatenation (same function).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avmodels.backbones.resnet import build_stream
from avmodels.engine.config import deep_merge
from avmodels.layers.heads import pointwise_mlp
from avmodels.methods.audio_input import SpectrogramInput
from avmodels.methods.augment import ResizeSquash
from avmodels.methods.base import METHODS, Batch, Method
from avmodels.methods.construction import (
    load_pretrained_vision,
    resolved,
    small_smoke_model,
    stream_kwargs,
)
from avmodels.methods.mssl_batching import SceneSampler, check_batching
from avmodels.methods.pseudo_labels import FALLBACKS, LabelLookup, OnlineKMeans
from avprep.errors import ConfigError, InputError

log = logging.getLogger(__name__)

STAGE_LR = {1: 1e-3, 2: 1e-4}
MAP_MODES = ("class_aware", "original", "sum")
PEAK_MODES = ("none", "test", "both")


# -- losses and maps (module level so tests can check them in isolation) -----------
def pair_logits(avc: nn.Sequential, aud: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
    """(B, B, 2) logits of the pair head on (audio i, frame j) for every i, j.

    The original concatenates ``[a_i, v_j]`` into a (B, B, 1024) tensor; its first
    Linear is ``W_a a_i + W_v v_j + b``, computed here as two (B, 128) products.
    """
    first, rest = avc[0], avc[1:]
    c = aud.shape[1]
    ha = aud @ first.weight[:, :c].t()
    hv = img @ first.weight[:, c:].t()
    return rest(ha[:, None, :] + hv[None, :, :] + first.bias)


def balanced_pair_loss(logits: torch.Tensor, pairs_per_clip: int = 1) -> torch.Tensor:
    """Cross-entropy of the (B, B, 2) pair logits, target 1 on the diagonal.

    Mean over matched pairs / 2 + mean over mismatched pairs / 2 (the B matched
    pairs weigh as much as the B^2 - B mismatched ones). A batch of one has no
    mismatched pair: its term is 0. ``pairs_per_clip`` > 1 (scene batches,
    :mod:`avmodels.methods.mssl_batching`): rows come in blocks of that many
    seconds of one clip, and two seconds of the same clip are not a negative
    (the original contrasts each pair with other clips only).
    """
    b = logits.shape[0]
    target = torch.eye(b, dtype=torch.long, device=logits.device).reshape(-1)
    ce = F.cross_entropy(logits.reshape(-1, 2).float(), target, reduction="none")
    pos = ce[target == 1].mean()
    negative = target == 0
    if pairs_per_clip > 1:
        clip = torch.arange(b, device=logits.device) // pairs_per_clip
        negative = negative & (clip[:, None] != clip[None, :]).reshape(-1)
    neg = ce[negative].mean() if bool(negative.any()) else ce.sum() * 0.0
    return pos / 2 + neg / 2


def cam_pool(feat: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """(B, C, K) class-specific features: ``mean_hw(feat * cam_k) / (sum_hw cam_k + 1e-10)``.

    As the original; the 1/(h w) factor does not matter after the projection
    (positively homogeneous) and the L2 normalisation.
    """
    hw = feat.shape[-2] * feat.shape[-1]
    with torch.autocast(feat.device.type, enabled=False):  # sums over h*w overflow float16
        feat, cam = feat.float(), cam.float()
        pooled = torch.einsum("bchw,bkhw->bck", feat, cam) / hw
        return pooled / (cam.flatten(2).sum(-1)[:, None, :] + 1e-10)


def effective_pairs(prob_a: torch.Tensor, prob_v: torch.Tensor, threshold: float) -> torch.Tensor:
    """(BK, BK) 0/1: audio (i, c) is above ``threshold`` and visual (j, c') too."""
    ea = (prob_a.reshape(-1) > threshold).float()
    ev = (prob_v.reshape(-1) > threshold).float()
    return ea[:, None] * ev[None, :]


def distance_loss(
    fine_a: torch.Tensor,
    fine_v: torch.Tensor,
    eff: torch.Tensor,
    margin: float = 1.4,
    clamp: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stage 2's loss on (B, D, K) unit embeddings: (pos + neg, pos, neg).

    Rows/columns are (sample, class) pairs in sample-major order. ``d = 2 - 2
    cos``; pos = mean d over effective matched pairs (same sample and class),
    neg = mean ``ReLU(margin - sqrt d)^2`` over the other effective pairs. ``d``
    is clamped at ``clamp`` before the square root: the original takes sqrt of a
    rounding-negative or zero distance, whose gradient (even masked by 0) is NaN.
    """
    d_dim = fine_a.shape[1]
    a = fine_a.float().permute(0, 2, 1).reshape(-1, d_dim)
    v = fine_v.float().permute(0, 2, 1).reshape(-1, d_dim)
    with torch.autocast(a.device.type, enabled=False):  # d near 0 needs float32
        dist = 2 - 2 * (a @ v.t())
    pos_mask = torch.eye(dist.shape[0], device=dist.device)
    neg_mask = 1 - pos_mask
    pos = (dist * eff * pos_mask).sum() / (pos_mask * eff + 1e-10).sum()
    push = F.relu(margin - dist.clamp(min=clamp).sqrt()).pow(2)
    neg = (push * eff * neg_mask).sum() / (neg_mask * eff + 1e-10).sum()
    return pos + neg, pos, neg


def combine_classes(
    maps: torch.Tensor, logits_a: torch.Tensor, mode: str, threshold: float = 0.3
) -> torch.Tensor:
    """(B, K, h, w) per-class maps -> (B, h, w) by the audio class probabilities.

    ``class_aware``: classes with ``sigmoid > threshold`` (and the most probable
    one) weighted by their probability, divided by the weights' sum.
    ``original``: the same with the original's second sigmoid (every probability
    is then above 0.5, so all classes count), divided by the map's maximum.
    ``sum``: the class-agnostic sum.
    """
    if mode == "sum":
        return maps.sum(1)
    prob = torch.sigmoid(logits_a.float())
    if mode == "original":
        prob = torch.sigmoid(prob)
    elif mode != "class_aware":
        raise ConfigError(f"mssl.map {mode!r}; valid: {', '.join(MAP_MODES)}")
    eff = (prob > threshold).float()
    eff = torch.maximum(eff, F.one_hot(prob.argmax(1), prob.shape[1]).float())
    w = prob * eff
    out = torch.einsum("bkhw,bk->bhw", maps.float(), w) / w.sum(1)[:, None, None]
    if mode == "original":
        peak = out.flatten(1).amax(1)[:, None, None]
        out = torch.where(peak > 0, out / peak.clamp(min=1e-12), out)
    return out


# -- data ------------------------------------------------------------------------------
class MsslSample:
    """Store sample -> {clip_id, frame (3, S, S), spectrogram (1, T, 64), labels (2, K), label_mask}."""

    def __init__(self, cfg: Mapping[str, Any], train: bool) -> None:
        data, lab = cfg["data"], cfg["labels"]
        self.train = train
        self.frame = ResizeSquash(int(data["image_size"]))
        self.p_flip = float(cfg["augment"]["hflip"]) if train else 0.0
        self.spec = SpectrogramInput.from_config(data)
        peak = data["peak_normalize"]
        self.peak = peak == "both" or (peak == "test" and not train)
        self.labels = LabelLookup(
            lab["file"], int(cfg["model"]["num_classes"]), strict=train and bool(lab["require"])
        )

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        frame = self.frame(sample["frame"])
        if self.p_flip and float(torch.rand(1)) < self.p_flip:
            frame = torch.flip(frame, dims=[-1])
        if self.peak:
            # the original's test loader: audio / max|audio| before the log-mel
            wave = np.asarray(sample["audio"], dtype=np.float64)
            wave = wave / (np.abs(wave).max() + np.spacing(1))
            sample = {**sample, "audio": wave.astype(np.float32)}
        labels, mask = self.labels(sample)
        return {
            "clip_id": str(sample["clip_id"]),
            "frame": frame,
            "spectrogram": self.spec(sample),
            "labels": torch.from_numpy(np.ascontiguousarray(labels, dtype=np.float32)),
            "label_mask": torch.tensor(mask, dtype=torch.float32),
        }


# -- checkpoints of the original code -------------------------------------------------
_ORIGINAL_DROP = ("vision.conv1_a.", "vision.fc.", "audio.conv1.", "audio.fc.")


def mssl_state_from_original(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a ``new/main.py`` state dict (``MTask``/``Align``/``Location``) onto ours.

    Its ResNets hold an RGB ``conv1`` and a 1-channel ``conv1_a`` each and an
    unused ``fc``: the audio stream's ``conv1_a`` becomes our ``audio.conv1``; the
    unused ones are dropped. Heads keep their names. No official checkpoint
    was released; this reads models trained with the original code.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key[len("module.") :] if key.startswith("module.") else key
        if key.startswith(_ORIGINAL_DROP):
            continue
        if key.startswith("audio.conv1_a."):
            key = "audio.conv1." + key[len("audio.conv1_a.") :]
        out[key] = value
    return out


# -- the method ---------------------------------------------------------------------
@METHODS.register("mssl")
class MultiSource(Method):
    """Two-stage Multi-Source: pair correspondence + classes, then class-wise alignment."""

    name = "mssl"
    paper = "Qian et al., Multiple Sound Sources Localization from Coarse to Fine, ECCV 2020"
    inputs = ("frame", "spectrogram")
    profile = "mssl"
    defaults = {
        "model": {
            "backbone": "resnet18",  # or "small" for CPU runs at 64-128 px
            "pretrained": True,  # ImageNet vision (stage 1); the model.init_from weights (stage 2)
            "pretrained_path": None,  # torchvision resnet18 .pth (None: the weights cache)
            "init_from": None,  # stage 2: a stage-1 model file / checkpoint / original .pth
            "num_classes": 7,  # AudioSet top-level categories
            "avc_hidden": 128,
            "proj_hidden": 1024,
            "embed_dim": 128,
            "small_width": 32,
            "small_channels": 128,
            "small_stride": 8,
        },
        "data": {
            "image_size": 256,
            "spectrogram": "store",  # or "audio": computed on the fly
            "spectrogram_name": "mssl",
            "audio_seconds": None,
            "spec_divisor": 1.0,
            "peak_normalize": "none",  # none | test (the original's test loader) | both
            # pairs: every stored pair a sample (new/) | scenes: train.batch_size scenes of
            # data.mix clips x data.frames_per_clip consecutive pairs (main.py; mssl_batching)
            "batching": "pairs",
            "mix": 4,  # main.py's --mix default (scenes only)
            "frames_per_clip": 4,  # main.py's --frame default (scenes only)
            "window_rule": "ave",  # ave: utils/dataset.py's starts | audioset: audioset_data.py's
        },
        "augment": {"hflip": 0.5},
        "labels": {
            "file": None,  # .npz/.json: clip id -> audio/visual 7-dim soft labels
            "fallback": "kmeans",  # for clips without a label: kmeans | none
            "require": False,  # true: a training clip without a label is an error
            "kmeans_momentum": 0.9,
        },
        "mssl": {
            "prob_threshold": 0.3,  # effective classes (loss pairs and the map)
            "margin": 1.4,
            "map": "class_aware",  # class_aware | original | sum
        },
        "optim": {
            "name": "sgd",
            "lr": None,  # None: 1e-3 in stage 1, 1e-4 in stage 2
            "momentum": 0.9,
            "weight_decay": 5e-4,
            "scheduler": "constant",
        },
        "train": {"batch_size": 16, "epochs": 20, "stage": 1},
    }
    smoke_overrides = {
        "model": small_smoke_model(proj_hidden=64),
        "data": {"image_size": 64},
        "train": {"batch_size": 4},
    }
    smoke_spectrogram = (-6, 3, (251, 64))

    def __init__(self, cfg: Mapping[str, Any] | None = None) -> None:
        super().__init__(cfg)
        m, lab, ms = self.cfg["model"], self.cfg["labels"], self.cfg["mssl"]
        self.stage = int(self.cfg["train"]["stage"])
        if self.stage not in STAGE_LR:
            raise ConfigError(f"train.stage must be 1 or 2, got {self.stage}")
        if lab["fallback"] not in FALLBACKS:
            raise ConfigError(f"labels.fallback {lab['fallback']!r}; valid: {', '.join(FALLBACKS)}")
        if ms["map"] not in MAP_MODES:
            raise ConfigError(f"mssl.map {ms['map']!r}; valid: {', '.join(MAP_MODES)}")
        peak = self.cfg["data"]["peak_normalize"]
        if peak not in PEAK_MODES:
            raise ConfigError(f"data.peak_normalize {peak!r}; valid: {', '.join(PEAK_MODES)}")
        if peak != "none" and self.cfg["data"]["spectrogram"] != "audio":
            raise ConfigError("data.peak_normalize needs data.spectrogram=audio")
        d = self.cfg["data"]
        check_batching(d["batching"], d["mix"], d["frames_per_clip"], d["window_rule"])
        self.scene_frames = int(d["frames_per_clip"]) if d["batching"] == "scenes" else 1
        if self.cfg["optim"]["lr"] is None:
            self.cfg["optim"]["lr"] = STAGE_LR[self.stage]
        self.run_notes = label_source_notes(lab)  # logged and recorded by the training engine

        kw = stream_kwargs(m)
        self.vision = build_stream(m["backbone"], in_channels=3, layer4_stride=1, **kw)
        self.audio = build_stream(m["backbone"], in_channels=1, layer4_stride=1, **kw)
        if hasattr(self.audio, "conv1"):  # the original's init of every conv, conv1_a included
            nn.init.kaiming_normal_(self.audio.conv1.weight, mode="fan_out", nonlinearity="relu")
        c, k = self.vision.out_channels, int(m["num_classes"])
        self.avc = nn.Sequential(
            nn.Linear(2 * c, int(m["avc_hidden"])),
            nn.ReLU(True),
            nn.Linear(int(m["avc_hidden"]), 2),
        )
        self.class_a = nn.Conv2d(c, k, 1, bias=False)
        self.class_v = nn.Conv2d(c, k, 1, bias=False)
        self.project_a = pointwise_mlp(c, int(m["proj_hidden"]), int(m["embed_dim"]))
        self.project_v = pointwise_mlp(c, int(m["proj_hidden"]), int(m["embed_dim"]))
        self.kmeans = OnlineKMeans(k, 2 * c, float(lab["kmeans_momentum"]))
        self.num_classes = k

        # Only what a loss reaches is trained (DDP rejects parameters without gradients):
        # the projections serve stage 2 only.
        if self.stage == 1:
            self.project_a.requires_grad_(False)
            self.project_v.requires_grad_(False)
        self._load_pretrained()

    def _load_pretrained(self) -> None:
        m = self.cfg["model"]
        if not m["pretrained"]:
            if m["init_from"]:
                # model files are rebuilt this way (their weights follow); a training run
                # that meant to start from stage 1 would not: say so in its record
                log.info("model.pretrained is false: model.init_from is not loaded")
                self.run_notes.append(
                    f"model.init_from ({m['init_from']}) NOT LOADED because "
                    "model.pretrained=false: this run starts from random weights; set "
                    "model.pretrained=true to start from it"
                )
            return
        if self.stage == 1 or not m["init_from"]:
            if self.stage == 2:
                log.warning("stage 2 without model.init_from starts from ImageNet, not stage 1")
            load_pretrained_vision(self.vision, m)
        if m["init_from"]:
            self.load_stage_one(m["init_from"])

    def load_stage_one(self, path: str) -> list[str]:
        """Load a stage-1 model into this one; returns the names left as initialised.

        ``path``: an avmodels model file (``final.pt``/``best.pt``), a training
        checkpoint (``checkpoints/last.pt``) or a state dict saved by the
        original ``new/main.py``. Both streams and the pair head must be there;
        the projection heads (trained in stage 2 only) may be missing.
        """
        from avmodels.importers import load_state_file

        state = load_state_file(path)
        if any(k.startswith(("vision.conv1_a.", "module.vision.")) for k in state):
            state = mssl_state_from_original(state)
        own = self.state_dict()
        unexpected = sorted(set(state) - set(own))
        shapes = sorted(k for k in set(state) & set(own) if state[k].shape != own[k].shape)
        missing = sorted(set(own) - set(state))
        needed = [k for k in missing if not k.startswith(("project_", "kmeans."))]
        if unexpected or shapes or needed:
            first = (unexpected or shapes or needed)[0]
            raise InputError(
                f"{path}: not a stage-1 model of this configuration ({len(unexpected)} "
                f"unexpected, {len(shapes)} of another shape, {len(needed)} missing keys; "
                f"first: {first!r})"
            )
        self.load_state_dict(state, strict=False)
        log.info("loaded stage-1 weights from %s (%d tensors)", path, len(state))
        return missing

    @classmethod
    def from_original(
        cls, state: Mapping[str, torch.Tensor], cfg: Mapping[str, Any] | None = None
    ) -> MultiSource:
        """A stage-2 model holding a ``new/main.py`` (``Align``/``Location``) state dict."""
        over = {"model": {"backbone": "resnet18", "pretrained": False}, "train": {"stage": 2}}
        model = cls(resolved(cls, deep_merge(cfg or {}, over)))
        mapped = mssl_state_from_original(state)
        own = model.state_dict()
        mapped.update({k: v for k, v in own.items() if k.startswith("kmeans.")})
        bad = sorted(set(own) ^ set(mapped)) or sorted(
            k for k in own if own[k].shape != mapped[k].shape
        )
        if bad:
            raise InputError(f"not a Multi-Source stage-2 state dict (first mismatch: {bad[0]!r})")
        model.load_state_dict(mapped, strict=True)
        return model

    # -- data --------------------------------------------------------------
    def sample_transform(self, train: bool) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return MsslSample(self.cfg, train)

    def train_sampler(self, ids: Sequence[str], **kw: Any) -> SceneSampler | None:
        """``data.batching=scenes``: the original's scene batches (train.batch_size scenes)."""
        d = self.cfg["data"]
        if d["batching"] != "scenes":
            return None
        scenes = kw.pop("batch_size")
        return SceneSampler(
            ids,
            scenes=scenes,
            mix=d["mix"],
            frames=d["frames_per_clip"],
            rule=d["window_rule"],
            **kw,
        )

    # -- model -------------------------------------------------------------
    def encode(self, batch: Batch) -> dict[str, torch.Tensor]:
        feat_a = self.audio(batch["spectrogram"])
        feat_v = self.vision(batch["frame"])
        pooled_a, pooled_v = feat_a.mean(dim=(2, 3)), feat_v.mean(dim=(2, 3))
        return {
            "feat_a": feat_a,
            "feat_v": feat_v,
            "pooled_a": pooled_a,
            "pooled_v": pooled_v,
            # avgpool then a 1x1 conv without bias = the class head on the pooled vector
            "cls_a": self.class_a(pooled_a[:, :, None, None]).flatten(1),
            "cls_v": self.class_v(pooled_v[:, :, None, None]).flatten(1),
        }

    def _targets(self, batch: Batch, enc: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """(audio labels, visual labels, per-sample weight) with the fallback filled in."""
        b = enc["pooled_a"].shape[0]
        dev = enc["pooled_a"].device
        labels = batch.get("labels")
        mask = batch.get("label_mask")
        if labels is None:
            labels = torch.zeros(b, 2, self.num_classes, device=dev)
            mask = torch.zeros(b, device=dev)
        labels, mask = labels.to(dev).float(), mask.to(dev).float()
        if self.cfg["labels"]["fallback"] == "kmeans":
            feats = torch.cat(
                [
                    F.normalize(enc["pooled_a"].detach(), dim=1),
                    F.normalize(enc["pooled_v"].detach(), dim=1),
                ],
                dim=1,
            )
            # updated on every training step (labelled or not) so all DDP ranks meet
            assign = self.kmeans.update(feats) if self.training else self.kmeans.assign(feats)
            known = assign >= 0
            one = F.one_hot(assign.clamp(min=0), self.num_classes).float()
            fill = (mask == 0) & known
            labels = torch.where(fill[:, None, None], one[:, None, :].expand_as(labels), labels)
            mask = torch.where(fill, torch.ones_like(mask), mask)
        return labels[:, 0], labels[:, 1], mask

    def _class_loss(
        self, logits: torch.Tensor, target: torch.Tensor, w: torch.Tensor
    ) -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none").mean(1)
        return (bce * w).sum() / w.sum().clamp(min=1.0)

    def _fine(self, enc: dict[str, torch.Tensor], detach_cam: bool) -> tuple[torch.Tensor, ...]:
        cam_a = F.relu(self.class_a(enc["feat_a"]))
        cam_v = F.relu(self.class_v(enc["feat_v"]))
        if detach_cam:
            cam_a, cam_v = cam_a.detach(), cam_v.detach()
        fine_a = F.normalize(self.project_a(cam_pool(enc["feat_a"], cam_a)), dim=1)
        fine_v = F.normalize(self.project_v(cam_pool(enc["feat_v"], cam_v)), dim=1)
        return fine_a, fine_v, cam_a, cam_v

    def losses(self, enc: dict[str, torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        per_clip = self.scene_frames if self.training else 1  # scene batches in training only
        avc = balanced_pair_loss(pair_logits(self.avc, enc["pooled_a"], enc["pooled_v"]), per_clip)
        lab_a, lab_v, w = self._targets(batch, enc)
        loss_a = self._class_loss(enc["cls_a"], lab_a, w)
        loss_v = self._class_loss(enc["cls_v"], lab_v, w)
        loss = avc + loss_a + loss_v
        out = {
            "loss_avc": avc.detach(),
            "loss_cls_a": loss_a.detach(),
            "loss_cls_v": loss_v.detach(),
        }
        if self.stage == 2:
            fine_a, fine_v, _, _ = self._fine(enc, detach_cam=True)
            thr = float(self.cfg["mssl"]["prob_threshold"])
            eff = effective_pairs(torch.sigmoid(enc["cls_a"]), torch.sigmoid(enc["cls_v"]), thr)
            dist, pos, neg = distance_loss(fine_a, fine_v, eff, float(self.cfg["mssl"]["margin"]))
            loss = loss + dist
            out.update(loss_dist=dist.detach(), pos_dist=pos.detach(), neg_dist=neg.detach())
        out["loss"] = loss
        return out

    def class_maps(self, batch: Batch, enc: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """(B, K, h, w) per-class maps: embedding cosines (stage 2) or visual CAMs (stage 1)."""
        enc = enc if enc is not None else self.encode(batch)
        if self.stage == 1:
            # after stage 1 the projections are untrained: the coarse, class-level map
            return F.relu(self.class_v(enc["feat_v"]))
        cam_a = F.relu(self.class_a(enc["feat_a"]))
        fine_a = F.normalize(self.project_a(cam_pool(enc["feat_a"], cam_a)), dim=1)
        feat_v = enc["feat_v"]
        fine_v = F.normalize(self.project_v(feat_v.flatten(2)), dim=1)  # every position
        sim = F.relu(torch.einsum("bdk,bdn->bkn", fine_a.float(), fine_v.float()))
        return sim.reshape(*sim.shape[:2], *feat_v.shape[-2:])

    def maps(self, enc: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        ms = self.cfg["mssl"]
        maps = self.class_maps(batch, enc)
        return combine_classes(maps, enc["cls_a"], ms["map"], float(ms["prob_threshold"]))


def label_source_notes(lab: Mapping[str, Any]) -> list[str]:
    """What the run record says about the pseudo labels (empty when the paper's are given)."""
    if lab["file"]:
        if lab["fallback"] == "kmeans" and not lab["require"]:
            return [
                f"pseudo labels from {lab['file']}; clips missing from it fall back to k-means "
                "clusters (not the paper's labels; labels.require=true makes that an error)"
            ]
        return []
    if lab["fallback"] == "kmeans":
        return [
            "NO PSEUDO LABELS GIVEN (labels.file): falling back to online k-means, one one-hot "
            "cluster per pair shared by both streams - NOT the paper's labels; stage 2's "
            "multi-source split needs several classes active. Make the paper's labels with "
            "`avmodels pseudo-labels --data STORE --out labels.h5` and train with "
            "--set labels.file=labels.h5"
        ]
    return [
        "no pseudo labels given (labels.file) and labels.fallback=none: the classification "
        "losses are off for every clip unless the store holds labels_a/labels_v"
    ]
