"""The interface every localisation method implements, and the registry.

The engine (``avmodels.engine``) knows nothing about any method: it builds
one by name, feeds it batches produced by the method's own sample transform,
optimises the ``"loss"`` entry of :meth:`Method.training_losses`, and scores
:meth:`Method.localization_map` with ``avmodels.metrics``.

A method implements its forward pass in three parts: :meth:`Method.encode`
(batch -> features: the networks run once), :meth:`Method.losses` (features
-> loss terms) and :meth:`Method.maps` (features -> localisation maps). The
batch-level calls the engine makes are written once here on top of them:
``training_losses = losses(encode(batch))``, ``localization_map =
maps(encode(batch))`` and :meth:`Method.evaluation_step` (one ``encode``
shared by the maps and the validation losses).

A method module registers itself with ``@METHODS.register("name")``;
``avmodels.methods`` imports every method module so the registry is full.

Optional hooks (all have working defaults) let a method customise the engine
without the engine knowing about it: :meth:`Method.build_scheduler`,
:meth:`Method.on_epoch_start`, :meth:`Method.after_optimizer_step`,
:meth:`Method.validation_losses`, :meth:`Method.convert_sync_batchnorm`,
:meth:`Method.batch_to_device` and :meth:`Method.feature_caches` (frozen
features computed once per clip and stored beside the shards).
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from avprep.registry import Registry

Batch = dict[str, Any]
Features = Any
"""What a method's :meth:`Method.encode` returns (a tuple or dict of tensors); only
the same method's :meth:`Method.losses` and :meth:`Method.maps` read it."""


@dataclass(frozen=True)
class CachedFeature:
    """A frozen per-clip feature the engine computes once and stores beside the shards.

    The engine runs ``prepare`` on each store sample (in DataLoader workers),
    collates, runs ``compute`` on the training device without gradients, and
    writes one row per clip to ``<shards>/features/<name>-<version[:16]>.h5``.
    When training it adds ``sample[name]`` (numpy) to every store sample before
    the method's ``sample_transform`` sees it. ``version`` must change whenever
    the result would (weights hash, front-end parameters): a cache with another
    version is never read.
    """

    name: str
    version: str
    inputs: tuple[str, ...]
    prepare: Callable[[dict[str, Any]], dict[str, Any]]
    compute: Callable[[Batch], torch.Tensor]


class Method(nn.Module, abc.ABC):
    """A sound source localisation model trained by the shared engine.

    Subclasses set ``defaults`` (the paper's configuration, a nested dict;
    the engine merges YAML and ``--set key=value`` overrides on top, once: the
    constructor takes that resolved config as it is, and
    :func:`avmodels.methods.build_method` resolves a partial one) and
    ``inputs`` (which modalities the store must provide: ``frame``,
    ``audio``, ``spectrogram``, ``flow``) and ``profile`` (the avprep
    extraction profile its paper uses; ``avmodels localize`` falls back to it
    only for a model file that does not record the extraction its training
    data had, e.g. an imported checkpoint). ``smoke_overrides`` is a config
    patch that makes the method tiny enough for a CPU smoke test (small
    images, no pretrained weights); the test suite runs every registered
    method with it.

    Conventions shared by all methods so the CLI can drive them: the key
    ``model.pretrained`` (bool) switches pretrained backbones on/off
    (``--pretrained/--no-pretrained``); ``train.batch_size`` is per process.
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    inputs: ClassVar[tuple[str, ...]] = ("frame", "audio")
    profile: ClassVar[str] = ""  # the paper's avprep extraction profile (localize's fallback)
    smoke_overrides: ClassVar[dict[str, Any]] = {}
    # (mean, std, shape) of the random spectrogram :meth:`smoke_sample` adds (None: none)
    smoke_spectrogram: ClassVar[tuple[float, float, tuple[int, ...]] | None] = None

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        super().__init__()
        self.cfg = copy.deepcopy(dict(cfg))

    # -- data --------------------------------------------------------------
    @abc.abstractmethod
    def sample_transform(self, train: bool) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """A picklable callable turning one store sample (numpy) into tensors.

        Runs in DataLoader workers. The result is collated with
        ``torch.utils.data.default_collate``; keep ``clip_id`` as a string.
        Random augmentation should use ``random``/``numpy``/``torch`` global
        RNGs: the engine seeds them per (seed, epoch, row) around each call so
        batches are reproducible across resumes and world sizes.
        """

    def required_inputs(self, cached: bool = False) -> tuple[str, ...]:
        """Store modalities this instance reads.

        ``cached``: the engine supplies the :meth:`feature_caches` values, so
        the modalities they are computed from may be left out. A method whose
        config says ``data.spectrogram: audio`` computes its spectrogram from
        the stored audio, so it reads ``audio`` in place of ``spectrogram``.
        """
        if self.cfg.get("data", {}).get("spectrogram") == "audio":
            return tuple("audio" if m == "spectrogram" else m for m in self.inputs)
        return tuple(self.inputs)

    def feature_caches(self) -> list[CachedFeature]:
        """Frozen per-clip features to compute once and cache (default: none)."""
        return []

    def smoke_sample(self, seed: int) -> dict[str, Any]:
        """A random store-shaped sample this method's transforms accept (for tests).

        The default gives a 256x256 RGB frame, 3 s of 16 kHz audio and a
        (2, 256, 256) flow; methods override it to add what they read (e.g.
        a spectrogram of their front end); a method that sets
        ``smoke_spectrogram`` gets a normal one of that mean, std and shape
        (drawn from seed + 1).
        """
        rng = np.random.default_rng(seed)
        sample = {
            "clip_id": f"smoke{seed:04d}",
            "index": seed,
            "frame": rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8),
            "audio": rng.uniform(-1, 1, size=48000).astype(np.float32),
            "sample_rate": 16000,
            "flow": rng.normal(size=(2, 256, 256)).astype(np.float32),
            "frame_time": 1.5,
        }
        if self.smoke_spectrogram is not None:
            mean, std, shape = self.smoke_spectrogram
            spec = np.random.default_rng(seed + 1).normal(mean, std, size=shape)
            sample["spectrogram"] = spec.astype(np.float32)
        return sample

    def batch_to_device(self, batch: Batch, device: torch.device, channels_last: bool) -> Batch:
        """Move tensors to ``device`` (4-D float tensors in channels_last if asked)."""
        out: Batch = {}
        for key, value in batch.items():
            if isinstance(value, torch.Tensor):
                value = value.to(device, non_blocking=True)
                if channels_last and value.dim() == 4 and value.is_floating_point():
                    value = value.contiguous(memory_format=torch.channels_last)
            out[key] = value
        return out

    # -- the forward pass: encode, then losses and maps ----------------------
    @abc.abstractmethod
    def encode(self, batch: Batch) -> Features:
        """Run the networks on a batch; :meth:`losses` and :meth:`maps` read the result.

        Whatever depends on the mode happens here (dropout, BatchNorm
        statistics, a momentum encoder's update in training mode), once per batch.
        """

    @abc.abstractmethod
    def losses(self, features: Features, batch: Batch) -> dict[str, torch.Tensor]:
        """Loss terms of an encoded batch; ``"loss"`` is the one optimised.

        ``batch`` is the one given to :meth:`encode` (for targets, labels or
        the inputs of a second pass, e.g. a transformed frame).
        """

    @abc.abstractmethod
    def maps(self, features: Features, batch: Batch) -> torch.Tensor:
        """(B, h, w) float maps of an encoded batch, larger where the source is more likely."""

    def validation_losses(self, features: Features, batch: Batch) -> dict[str, torch.Tensor]:
        """Loss terms reported on validation batches (default: :meth:`losses`)."""
        return self.losses(features, batch)

    # -- training ----------------------------------------------------------
    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Loss terms of a training batch: :meth:`losses` of :meth:`encode`."""
        return self.losses(self.encode(batch), batch)

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The training forward pass; DistributedDataParallel calls this."""
        return self.training_losses(batch)

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimiser parameter groups (per-part learning rates); default: one group."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def build_optimizer(self) -> torch.optim.Optimizer:
        """``optim.name`` from :data:`avmodels.engine.optimizers.OPTIMIZERS`."""
        from avmodels.engine.config_sections import OptimConfig
        from avmodels.engine.optimizers import OPTIMIZERS

        opt = OptimConfig.from_config(self.cfg)
        return OPTIMIZERS.get(opt.name)(self.param_groups(), opt)

    def build_scheduler(
        self, optimizer: torch.optim.Optimizer, steps_per_epoch: int
    ) -> torch.optim.lr_scheduler.LRScheduler | None:
        """A learning-rate scheduler stepped after every optimiser step, or None.

        The default reads ``optim.scheduler`` from
        :data:`avmodels.engine.optimizers.SCHEDULERS`: ``constant`` (None, the
        default), ``cosine`` (over ``train.epochs``) or ``step``
        (``optim.step_epochs``, ``optim.gamma``).
        """
        from avmodels.engine.config_sections import OptimConfig, TrainConfig
        from avmodels.engine.optimizers import SCHEDULERS

        opt = OptimConfig.from_config(self.cfg)
        epochs = TrainConfig.from_config(self.cfg).epochs
        return SCHEDULERS.get(opt.scheduler)(optimizer, opt, steps_per_epoch, epochs)

    def on_epoch_start(self, epoch: int) -> None:
        """Called before each training epoch (0-based)."""

    def after_optimizer_step(self, step: int) -> None:
        """Called after each optimiser step (e.g. a momentum-encoder update)."""

    def convert_sync_batchnorm(self, convert: Callable[[nn.Module], nn.Module]) -> None:
        """Replace BatchNorm layers by synchronised ones for multi-process training.

        ``convert`` converts every BatchNorm inside the module it is given, in
        place. The default converts the whole model; a method whose frozen
        BatchNorms must keep local statistics converts only its trainable parts.
        """
        convert(self)

    # -- inference ---------------------------------------------------------
    def localization_map(self, batch: Batch) -> torch.Tensor:
        """(B, h, w) float maps of a batch: :meth:`maps` of :meth:`encode`."""
        return self.maps(self.encode(batch), batch)

    def evaluation_step(self, batch: Batch, with_loss: bool) -> tuple[torch.Tensor, dict | None]:
        """Maps (and, with ``with_loss``, :meth:`validation_losses`) of one encoded batch."""
        features = self.encode(batch)
        maps = self.maps(features, batch)
        return maps, (self.validation_losses(features, batch) if with_loss else None)


METHODS: Registry[type[Method]] = Registry("method")
