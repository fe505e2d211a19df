"""Run configuration: engine defaults + the method's (paper) defaults + user overrides.

Resolution order, later wins: :data:`ENGINE_DEFAULTS`, the method's
``defaults`` (which may add sections and keys), a YAML file (``--config``),
then ``--set section.key=value`` items. User overrides are strict: a key that
does not exist in the defaults is an error naming the closest valid key, so a
typo never silently trains with a default. Values given as text are parsed
as YAML and coerced to the type of the default (``--set optim.lr_head=1e-3``
gives a float). The resolved config is saved as ``config.yaml`` in the run
directory and read back by ``--resume`` and ``avmodels eval``.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from avprep.atomic import write_text
from avprep.errors import ConfigError, InputError

ENGINE_DEFAULTS: dict[str, Any] = {
    "train": {
        "epochs": 1,  # passes over the training split
        "batch_size": 32,  # per process (per GPU); the global batch is this x world size
        "max_steps": None,  # stop after this many optimiser steps (None: run all epochs)
        "seed": 1234,
        "device": "auto",  # auto | cpu | cuda | cuda:N (torchrun: cuda:LOCAL_RANK)
        "amp": "none",  # none | bf16 | fp16 (CUDA; bf16 also on CPU)
        "channels_last": False,  # NHWC images (CUDA convs are faster)
        "compile": False,  # torch.compile the training forward
        "grad_clip": None,  # clip the gradient norm to this value
        "num_workers": 2,  # DataLoader worker processes per training process
        # torch: torch's DataLoader | ring: avprep's RingLoader (batches in reused shared
        # memory: faster when loading is the bottleneck; every sample field fixed-shape) |
        # auto: ring when the workers hand out finished batches (augment=batch, input=cpu)
        "loader": "auto",
        # batch: frame augmentation applied to whole batches (the same random parameters
        # as the per-sample transform; resize kernels within 2 levels of PIL) | sample: PIL
        "augment": "batch",
        # where frames are decoded and augmented: cpu (loader workers) | gpu (the training
        # device, overlapped with the step) | auto (gpu on CUDA when possible)
        "input": "auto",
        "log_every": 10,  # steps between CSV/TensorBoard rows
        "checkpoint_every": 0,  # also checkpoint every N steps (0: at epoch ends only)
        "sync_bn": True,  # synchronise BatchNorm statistics across processes
        # averaged: data-parallel, gradients all-reduced (ours); independent: SSPL's regime,
        # each process steps its own replica on its share of the data (avmodels.engine.replicas)
        "replicas": "averaged",
        "replica_count": 2,  # independent on one process: emulate rank 0 of this many replicas
        "find_unused_parameters": False,  # DDP option for methods with unused branches
    },
    "eval": {
        "every": 1,  # validate every N epochs (0: never)
        "batch_size": None,  # default: train.batch_size
        "benchmark": None,  # vggss | flickr | chaotic | ... (for val cIoU/AUC)
        "preset": None,  # metric preset (None: the metrics module's default)
        "select": "auto",  # auto (ciou with annotations, else loss) | ciou | auc | loss
        "patience": None,  # early stopping: validations without improvement (None: off)
        "min_delta": 0.0,  # an improvement must exceed this
        "loss": True,  # also compute the validation loss
    },
    "data": {
        "val_fraction": None,  # hold out this fraction of --data as validation
        "shuffle": True,
        "drop_last": True,  # training batches: drop the last partial batch
        "feature_cache_dir": None,  # where cached frozen features go (None: beside shards)
        "cache_batch_size": 32,  # batch size when computing cached features
    },
}


def deep_merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``patch`` merged in recursively (no key checks)."""
    out = copy.deepcopy(dict(base))
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _flat_keys(cfg: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k, v in cfg.items():
        keys.append(prefix + k)
        if isinstance(v, Mapping):
            keys += _flat_keys(v, prefix + k + ".")
    return keys


def _coerce(value: Any, default: Any, key: str) -> Any:
    if isinstance(value, str) and not isinstance(default, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{key}: cannot parse {value!r}: {exc}") from None
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if isinstance(default, float) and not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if isinstance(default, int) and not isinstance(value, bool):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if isinstance(default, (list, tuple)) and not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key} must be a list, got {value!r}")
    if isinstance(default, str) and not isinstance(value, str):
        return str(value)
    return value


def apply_overrides(
    cfg: Mapping[str, Any], patch: Mapping[str, Any], source: str, _prefix: str = ""
) -> dict[str, Any]:
    """Merge a user ``patch`` into ``cfg``, rejecting keys ``cfg`` does not have."""
    out = copy.deepcopy(dict(cfg))
    for key, value in patch.items():
        full = _prefix + str(key)
        if key not in out:
            valid = _flat_keys(cfg, _prefix)
            close = difflib.get_close_matches(full, valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{source}: unknown config key {full!r}{hint}")
        if isinstance(out[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: {full!r} is a section; set its keys instead")
            out[key] = apply_overrides(out[key], value, source, full + ".")
        else:
            out[key] = _coerce(value, out[key], full)
    return out


def parse_set(items: Iterable[str]) -> dict[str, Any]:
    """``["train.epochs=3", "model.pcm=true"]`` -> nested dict of (unparsed) strings."""
    patch: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not p for p in key.split(".")):
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        node = patch
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r} conflicts with an earlier --set")
        node[parts[-1]] = value.strip()
    return patch


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    data.pop("method", None)  # a saved run config names its method; not an override
    return data


def method_defaults(method: str | type) -> dict[str, Any]:
    """Engine defaults merged with a method's defaults."""
    if isinstance(method, str):
        from avmodels.methods import METHODS

        method = METHODS.get(method)
    return deep_merge(ENGINE_DEFAULTS, method.defaults)


def resolve_config(
    method: str | type,
    config_file: str | os.PathLike | None = None,
    sets: Iterable[str] = (),
    overrides_dict: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The full config of a run: defaults, then the YAML file, then ``--set`` items."""
    cfg = method_defaults(method)
    if overrides_dict:
        cfg = apply_overrides(cfg, overrides_dict, "overrides")
    if config_file:
        from avmodels.engine.config_presets import preset_path

        name = method if isinstance(method, str) else getattr(method, "name", "")
        config_file = preset_path(name, config_file)
        cfg = apply_overrides(cfg, load_yaml(config_file), str(config_file))
    sets = list(sets)
    if sets:
        cfg = apply_overrides(cfg, parse_set(sets), "--set")
    return cfg


def dump_config(cfg: Mapping[str, Any]) -> str:
    return yaml.safe_dump(_plain(cfg), sort_keys=False)


def save_config(cfg: Mapping[str, Any], path: str | os.PathLike) -> Path:
    return write_text(path, dump_config(cfg))


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
