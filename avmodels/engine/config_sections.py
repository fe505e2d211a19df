"""The resolved run config as frozen, typed sections, every choice checked.

:func:`avmodels.engine.config.resolve_config` merges the layers (engine
defaults, the method's, ``--config``, ``--set``) into one nested dict, with
strict keys and values coerced to the defaults' types. :func:`typed` turns
that dict, once, into a :class:`RunConfig`: one frozen dataclass per section
the engine reads (``train``, ``eval``, ``data``, ``optim``), each value of its
type, and every named choice checked against its registry (optimiser,
scheduler, loader, AMP mode, augmentation, input, replicas, selection metric,
metric preset, benchmark). A bad choice is a one-line :class:`ConfigError`
naming the valid ones, raised before any data is opened or any run folder is
made.

The method-specific keys (``model.*``, ``loss.*``, the method's own ``data.*``
and ``optim.*`` keys such as SSPL's ``lr_sound``) stay in the nested dict
(``RunConfig.raw``) the method is built from and ``config.yaml`` records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from avprep.errors import ConfigError


def _check(key: str, value: str, names: list[str] | tuple[str, ...]) -> str:
    if value not in names:
        raise ConfigError(f"{key}={value!r} is not a choice; valid: {', '.join(names)}")
    return value


def _opt(kind: type, value: Any, key: str) -> Any:
    """``value`` as ``kind`` (None stays None): keys whose default is None are not coerced."""
    if value is None:
        return None
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind is str:
        return str(value)
    raise ConfigError(
        f"{key} must be {'a number' if kind is float else 'an integer'}, got {value!r}"
    )


def _engine_section(cfg: Mapping[str, Any], section: str) -> dict[str, Any]:
    """An engine section of ``cfg``, completed by ``ENGINE_DEFAULTS`` (the one set of
    defaults: a resolved config already holds every key)."""
    from avmodels.engine.config import ENGINE_DEFAULTS

    return {**ENGINE_DEFAULTS[section], **cfg.get(section, {})}


def _section(cls: type, sec: Mapping[str, Any], section: str, **derived: Any) -> Any:
    """``cls`` from the ``section`` values ``sec``: each field's key as it is (already
    coerced to its default's type), or as ``derived`` gives it."""
    kw = {f.name: sec[f.name] for f in fields(cls) if f.name in sec and f.name not in derived}
    for key, value in kw.items():
        if value is None:  # keys whose default is None are in ``derived``
            raise ConfigError(f"{section}.{key} must be set (it has no 'none' value)")
    return cls(**kw, **derived)


@dataclass(frozen=True)
class TrainConfig:
    """``train.*`` (``ENGINE_DEFAULTS`` has each key's default and meaning)."""

    epochs: int
    batch_size: int
    max_steps: int | None
    seed: int
    device: str
    amp: str
    channels_last: bool
    compile: bool
    grad_clip: float | None
    num_workers: int
    loader: str
    augment: str
    input: str
    log_every: int
    checkpoint_every: int
    sync_bn: bool
    replicas: str
    replica_count: int
    find_unused_parameters: bool

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> TrainConfig:
        from avmodels.data import AUGMENT
        from avmodels.engine.amp import AMP_MODES
        from avmodels.engine.loaders import INPUTS, LOADERS
        from avmodels.engine.replicas import REPLICAS

        sec = _engine_section(cfg, "train")
        amp = str(sec["amp"] or "none").lower()
        t = _section(
            cls,
            sec,
            "train",
            max_steps=_opt(int, sec["max_steps"], "train.max_steps"),
            grad_clip=_opt(float, sec["grad_clip"], "train.grad_clip"),
            amp=_check("train.amp", amp, AMP_MODES),
            input=str(sec["input"] or "auto"),
        )
        _check("train.loader", t.loader, LOADERS.names())
        _check("train.augment", t.augment, AUGMENT)
        _check("train.input", t.input, INPUTS)
        _check("train.replicas", t.replicas, REPLICAS)
        if t.replica_count < 1:
            raise ConfigError(f"train.replica_count must be >= 1, got {t.replica_count}")
        return t


@dataclass(frozen=True)
class EvalConfig:
    """``eval.*``: validation during training and the kept model."""

    every: int
    batch_size: int | None
    benchmark: str | None
    preset: str | None
    select: str
    patience: int | None
    min_delta: float
    loss: bool

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> EvalConfig:
        from avmodels.engine.selection import SELECT_HIGHER
        from avmodels.metrics.presets import PRESETS
        from avprep.annotations.benchmarks import BENCHMARKS

        sec = _engine_section(cfg, "eval")
        e = _section(
            cls,
            sec,
            "eval",
            batch_size=_opt(int, sec["batch_size"], "eval.batch_size"),
            benchmark=_opt(str, sec["benchmark"], "eval.benchmark"),
            preset=_opt(str, sec["preset"], "eval.preset"),
            patience=_opt(int, sec["patience"], "eval.patience"),
            select=str(sec["select"]).lower(),
        )
        _check("eval.select", e.select, ["auto", *SELECT_HIGHER])
        if e.benchmark is not None:
            _check("eval.benchmark", e.benchmark, BENCHMARKS.names())
        if e.preset is not None:
            _check("eval.preset", e.preset, PRESETS.names())
        return e


@dataclass(frozen=True)
class DataConfig:
    """The engine's ``data.*`` keys (a method adds its own, read by the method)."""

    val_fraction: float | None
    shuffle: bool
    drop_last: bool
    feature_cache_dir: str | None
    cache_batch_size: int

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> DataConfig:
        sec = _engine_section(cfg, "data")
        return _section(
            cls,
            sec,
            "data",
            val_fraction=_opt(float, sec["val_fraction"], "data.val_fraction"),
            feature_cache_dir=_opt(str, sec["feature_cache_dir"], "data.feature_cache_dir"),
        )


@dataclass(frozen=True)
class OptimConfig:
    """``optim.*`` as the shared optimiser and schedule builders read it.

    Absent keys take these defaults (a method whose groups carry their own
    learning rates, like SSPL, has no ``optim.lr``).
    """

    name: str = "adam"
    lr: float | None = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9
    scheduler: str = "constant"
    step_epochs: int = 30
    gamma: float = 0.1

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> OptimConfig:
        from avmodels.engine.optimizers import OPTIMIZERS, SCHEDULERS

        sec = cfg.get("optim", {})
        num: dict[str, Any] = {}
        try:
            for k in ("lr", "weight_decay", "momentum", "gamma"):
                if k in sec:  # lr may be None until the method settles it (mssl's stages)
                    num[k] = None if sec[k] is None else float(sec[k])
            if "betas" in sec:
                num["betas"] = tuple(float(b) for b in sec["betas"])
            if "step_epochs" in sec:
                num["step_epochs"] = int(sec["step_epochs"])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"optim: a number is not a number ({exc})") from None
        o = _section(
            cls,
            sec,
            "optim",
            name=str(sec.get("name", "adam")).lower(),
            scheduler=str(sec.get("scheduler", "constant")).lower(),
            **num,
        )
        _check("optim.name", o.name, OPTIMIZERS.names())
        _check("optim.scheduler", o.scheduler, SCHEDULERS.names())
        return o


@dataclass(frozen=True)
class RunConfig:
    """A run's config: typed engine sections + the nested dict the method is built from."""

    train: TrainConfig
    eval: EvalConfig
    data: DataConfig
    optim: OptimConfig
    raw: Mapping[str, Any]  # the resolved nested dict (config.yaml; never mutated)

    def with_eval(self, **changes: Any) -> RunConfig:
        """A copy with ``eval`` keys changed, in the typed section and in ``raw`` alike."""
        raw = {**self.raw, "eval": {**self.raw.get("eval", {}), **changes}}
        return replace(self, eval=replace(self.eval, **changes), raw=raw)


def typed(cfg: Mapping[str, Any]) -> RunConfig:
    """The typed, validated view of a resolved config (see the module docstring)."""
    return RunConfig(
        train=TrainConfig.from_config(cfg),
        eval=EvalConfig.from_config(cfg),
        data=DataConfig.from_config(cfg),
        optim=OptimConfig.from_config(cfg),
        raw=cfg,
    )
