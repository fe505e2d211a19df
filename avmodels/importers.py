"""Importers of the official checkpoints of each paper into avmodels model files.

``avmodels import METHOD --<file> PATH ... --out model.pt`` loads the files a
paper released (``weights_only=True``), maps their key layout onto ours, checks
that every tensor lands (no key missing or left over, shapes equal) and writes
a model file that ``avmodels eval``/``localize`` read like a trained run.

Another method plugs in by registering an :class:`Importer` in ``IMPORTERS``:
a name, the files it takes (each becomes a ``--<name>`` option of
``avmodels import <name>``; use ``ckpt`` for a single-file checkpoint) and a
``convert`` function from the loaded state dicts to (method name, config
patch, our state dict).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from avprep.atomic import sha256_file
from avprep.errors import InputError
from avprep.registry import Registry

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class FileArg:
    """One input file of an importer (a ``--<name> PATH`` option)."""

    name: str
    help: str
    required: bool = True


@dataclass(frozen=True)
class Importer:
    """How to turn one paper's released files into an avmodels model."""

    name: str
    description: str
    files: tuple[FileArg, ...]
    convert: Callable[[Mapping[str, StateDict]], tuple[str, dict[str, Any], StateDict]]
    extra: dict[str, Any] = field(default_factory=dict)
    # How the released model's inputs were made: the avprep profile that reproduces the
    # paper's preprocessing, the store layout its loader read, and the conventions in words.
    # Written into the model file (meta "extraction", "input_convention") so that eval and
    # localize feed the model as it was trained.
    profile: str | None = None
    layout: str = ""
    convention: dict[str, str] = field(default_factory=dict)


IMPORTERS: Registry[Importer] = Registry("importer")


def _numpy_scalar_globals() -> list[Any]:
    """The numpy names a checkpoint's metric scalars need (EZ-VSL's family saves
    ``best_cIoU`` as ``numpy.float64``): the scalar constructor under its numpy 1
    and numpy 2 paths, and the dtype classes. They build numbers, never run code."""
    import numpy as np

    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
    dtypes = [np.dtype, *(type(np.dtype(c)) for c in "?bhilqBHILQefdg")]
    return [
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        *dtypes,
    ]


_NUMPY_SCALARS = _numpy_scalar_globals()


def load_state_file(path: str | os.PathLike) -> StateDict:
    """A released state dict (``weights_only=True``); unwraps ``{"state_dict": ...}``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}")
    try:
        # PyTorch Lightning .ckpt files (Hear-The-Flow) keep argparse hyper-parameters:
        # allow that one plain attribute container, nothing else.
        with torch.serialization.safe_globals([argparse.Namespace, *_NUMPY_SCALARS]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, unsafe globals
        raise InputError(f"{path}: cannot be read as a safe torch state dict ({exc})") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{path}: not a state dict of tensors")
    return dict(obj)


def strip_prefix(state: StateDict, prefix: str = "module.") -> StateDict:
    """Remove a DDP/DataParallel prefix from every key that has it."""
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}


def rename(state: StateDict, rules: list[tuple[str, str]], what: str) -> StateDict:
    """Apply the first matching regex rule to each key; a key no rule matches is an error."""
    out: StateDict = {}
    unknown = []
    for key, value in state.items():
        for pattern, repl in rules:
            if re.fullmatch(pattern, key):
                out[re.sub(pattern, repl, key)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise InputError(
            f"{what}: {len(unknown)} key(s) not in the official layout, e.g. {unknown[:3]}; "
            "is this the right file?"
        )
    return out


def import_checkpoint(
    importer: str,
    files: Mapping[str, str | os.PathLike | None],
    out: str | os.PathLike,
) -> Path:
    """Convert released files with importer ``importer`` and write a model file."""
    from avmodels.engine.checkpoint import save_model
    from avmodels.engine.config import resolve_config
    from avmodels.methods import METHODS

    imp = IMPORTERS.get(importer)
    states: dict[str, StateDict] = {}
    sources: dict[str, dict[str, str]] = {}
    for arg in imp.files:
        path = files.get(arg.name)
        if path is None:
            if arg.required:
                raise InputError(f"importer {importer}: --{arg.name} is required")
            continue
        states[arg.name] = load_state_file(path)
        sources[arg.name] = {"path": str(path), "sha256": sha256_file(path)}
    method_name, patch, state = imp.convert(states)
    cls = METHODS.get(method_name)
    patch = _merge(
        {"model": {"pretrained": False}} if "pretrained" in cls.defaults.get("model", {}) else {},
        patch,
    )
    cfg = resolve_config(method_name, overrides_dict=patch)
    model = cls(cfg)
    mine = model.state_dict()
    missing = sorted(set(mine) - set(state))
    extra = sorted(set(state) - set(mine))
    if missing or extra:
        raise InputError(
            f"importer {importer}: the converted checkpoint does not fit {method_name}: "
            f"missing {missing[:4]}{'...' if len(missing) > 4 else ''}, "
            f"unexpected {extra[:4]}{'...' if len(extra) > 4 else ''}"
        )
    bad = [k for k in mine if tuple(mine[k].shape) != tuple(state[k].shape)]
    if bad:
        raise InputError(
            f"importer {importer}: shape mismatch for {bad[:4]} "
            f"(ours {tuple(mine[bad[0]].shape)}, file {tuple(state[bad[0]].shape)})"
        )
    model.load_state_dict(state, strict=True)
    meta: dict[str, Any] = {"imported_from": importer, "sources": sources}
    meta.update(input_record(imp))
    return save_model(out, model, cfg, meta=meta)


def input_record(imp: Importer) -> dict[str, Any]:
    """``{"extraction": [...], "input_convention": {...}}`` for an imported model's file.

    ``extraction`` has the form ``avmodels train`` records (layout, profile,
    every profile parameter), so :func:`avmodels.engine.localize.training_input`
    prepares a video exactly as the paper's data was prepared, and
    ``avmodels eval`` can warn when a test store was extracted otherwise.
    """
    if imp.profile is None:
        return {}
    from avprep.profiles import get_profile

    prof = get_profile(imp.profile)
    return {
        "extraction": [{"layout": imp.layout, "profile": prof.name, "params": prof.params()}],
        "input_convention": dict(imp.convention),
    }


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# -- SSPL ---------------------------------------------------------------------
_SSPL_PCM_RULES = [
    (r"PredProcess\.0\.(weight|bias)", r"pcm.predict.0.\1"),
    (r"PredProcess\.([12])\.conv2d\.weight", r"pcm.predict.\1.0.weight"),
    (r"ErrorProcess\.([013])\.(weight|bias)", r"pcm.correct.\1.\2"),
    (r"ErrorProcess\.2\.convtrans2d\.weight", r"pcm.correct.2.1.weight"),
    (r"BNPred\.(\d+)\.(\w+)", r"pcm.bn_predict.\1.\2"),
    (r"BNError\.(\d+)\.(\w+)", r"pcm.bn_correct.\1.\2"),
    (r"BNPred_step\.(\d+)\.(\w+)", r"pcm.bn_predict_step.\1.\2"),
    (r"BNError_step\.(\d+)\.(\w+)", r"pcm.bn_correct_step.\1.\2"),
    (r"([ab]0)\.(\d+)", r"pcm.\1.\2"),
]


def convert_sspl(states: Mapping[str, StateDict]) -> tuple[str, dict[str, Any], StateDict]:
    """SSPL's ``frame_best.pth``/``sound_best.pth``/``ssl_head_best.pth``[/``pcm_best.pth``].

    Keys: frame ``feat_extractor.N.*`` (saved unwrapped); the others carry DDP's
    ``module.`` prefix. Without ``frame`` the ImageNet VGG16 weights from the
    weights cache are used (the released frame net is that network, frozen).
    """
    out: StateDict = {}
    if "frame" in states:
        out.update(
            rename(
                strip_prefix(states["frame"]), [(r"feat_extractor\.(.+)", r"frame_net.\1")], "frame"
            )
        )
    else:
        from avmodels import weights
        from avmodels.backbones import vgg16

        imagenet = torch.load(weights.resolve("vgg16"), map_location="cpu", weights_only=True)
        feats = vgg16.imagenet_state_for(vgg16.vgg16_features(), imagenet)
        out.update({f"frame_net.{k}": v for k, v in feats.items()})
    out.update(
        rename(
            strip_prefix(states["sound"]),
            [
                (r"(features|embeddings)\.(.+)", r"vggish.\1.\2"),
                (r"fc\.(.+)", r"sound_fc.\1"),
            ],
            "sound",
        )
    )
    out.update(
        rename(strip_prefix(states["head"]), [(r"((projector|predictor)\..+)", r"head.\1")], "head")
    )
    patch: dict[str, Any] = {"model": {}}
    method = "sspl"
    if "pcm" in states:
        method = "sspl-pcm"
        pcm = rename(strip_prefix(states["pcm"]), _SSPL_PCM_RULES, "pcm")
        steps = {k.split(".")[2] for k in pcm if k.startswith("pcm.bn_predict_step.")}
        patch["model"]["pcm_cycles"] = len(steps) // 2
        out.update(pcm)
    if "sound_fc.2.weight" in out:  # else the completeness check reports it
        patch["model"]["out_dim"] = int(out["sound_fc.2.weight"].shape[0])
    return method, patch, out


IMPORTERS.add(
    "sspl",
    Importer(
        name="sspl",
        description="SSPL's released checkpoints (github.com/zjsong/SSPL); --pcm gives sspl-pcm",
        files=(
            FileArg("frame", "frame_best.pth (VGG16 features; default: ImageNet VGG16)", False),
            FileArg("sound", "sound_best.pth (VGGish + the trainable fc)"),
            FileArg("head", "ssl_head_best.pth (SimSiam projector/predictor)"),
            FileArg("pcm", "pcm_best.pth (only for SSPL with PCM)", False),
        ),
        convert=convert_sspl,
        profile="sspl",
        layout="sspl",
        convention={
            "frame": "the middle frame, 256x256 cv2 INTER_CUBIC, float 0-255 (SSPL's HDF5 rows)",
            "audio": "centre 3 s at 16 kHz, min-max normalised (normalize_audio)",
            "spectrogram": "VGGish log-mel of the normalised clip, (3, 96, 64)",
        },
    ),
)


# -- SSL-TIE and Hear-The-Flow -------------------------------------------------
def convert_ssl_tie(states: Mapping[str, StateDict]) -> tuple[str, dict[str, Any], StateDict]:
    """SSL-TIE's released ``.pth.tar`` (``state_dict`` of its ``AVENet``)."""
    from avmodels.methods.ssl_tie import ssl_tie_state_from_official

    state = ssl_tie_state_from_official(states["ckpt"])
    return "ssl-tie", {"model": {"backbone": "resnet18"}}, state


def convert_htf(states: Mapping[str, StateDict]) -> tuple[str, dict[str, Any], StateDict]:
    """Hear-The-Flow's released ``.pth`` (``model`` key) or a Lightning ``.ckpt``."""
    from avmodels.methods.htf import htf_flowtype, htf_state_from_official

    state = htf_state_from_official(states["ckpt"])
    patch = {
        "model": {"backbone": "resnet18", "flowtype": htf_flowtype(state)},
        # the released models were trained on flow stored as two uint8 JPEGs read back /255
        "htf": {"legacy_flow": True},
    }
    return "htf", patch, state


IMPORTERS.add(
    "ssl-tie",
    Importer(
        name="ssl-tie",
        description="SSL-TIE's released checkpoints (github.com/jinxiang-liu/SSL-TIE)",
        files=(FileArg("ckpt", "the released .pth.tar (a dict with 'state_dict')"),),
        convert=convert_ssl_tie,
        profile="ssltie",
        convention={
            "frame": "frame 125 of a 25 fps export (4.96 s), 299x299, test: resize + centre crop 224",
            "spectrogram": "torchaudio mel (n_fft 512, hop 239, 257 mels, normalized) in dB, "
            "16 kHz tiled to 10 s: (1, 257, 670)",
        },
    ),
)
IMPORTERS.add(
    "htf",
    Importer(
        name="htf",
        description="Hear-The-Flow's released .pth or a Lightning .ckpt (github.com/denfed/heartheflow)",
        files=(FileArg("ckpt", "flickr.pth / vggsound.pth ('model' key) or a Lightning .ckpt"),),
        convert=convert_htf,
        profile="htf",
        convention={
            "frame": "frame N // 2 and the next one (flow) at native size, squashed to 224",
            "flow": "Farneback, stored by the original as two uint8 JPEGs read back /255 "
            "(htf.legacy_flow=true: negative motion lost, values ~0-0.02)",
            "spectrogram": "scipy STFT (nperseg 512, noverlap 274) of the middle 3 s at "
            "22,050 Hz, log(S + 1e-7) / 12: (257, 276)",
        },
    ),
)


# -- EZ-VSL, FNAC, SLAVC, LVS ---------------------------------------------------------
def _dim_patch(state: StateDict, key: str) -> dict[str, Any]:
    return (
        {"model": {"backbone": "resnet18", "dim": int(state[key].shape[0])}} if key in state else {}
    )


def convert_ezvsl(states: Mapping[str, StateDict]) -> tuple[str, dict[str, Any], StateDict]:
    """EZ-VSL's ``best.pth`` (its ``model`` entry: ``imgnet``, ``img_proj``, ``audnet``, ``aud_proj``)."""
    from avmodels.methods.ezvsl import ezvsl_state_from_official

    state = ezvsl_state_from_official(states["ckpt"])
    return "ezvsl", _dim_patch(state, "img_proj.weight"), state


def convert_fnac(states: Mapping[str, StateDict]) -> tuple[str, dict[str, Any], StateDict]:
    """FNAC's ``best.pth`` (EZ-VSL's layout; dropouts hold no tensors)."""
    from avmodels.methods.fnac import fnac_state_from_official

    state = fnac_state_from_official(states["ckpt"])
    return "fnac", _dim_patch(state, "img_proj.weight"), state


def convert_slavc(states: Mapping[str, StateDict]) -> tuple[str, dict[str, Any], StateDict]:
    """SLAVC's ``latest.pth``/``best.pth``: two projections per stream and momentum copies."""
    from avmodels.methods.slavc import slavc_state_from_official

    state = slavc_state_from_official(states["ckpt"])
    return "slavc", _dim_patch(state, "img_proj1.weight"), state


def convert_lvs(states: Mapping[str, StateDict]) -> tuple[str, dict[str, Any], StateDict]:
    """LVS's released ``.pth.tar`` (``model_state_dict`` of its DataParallel ``AVENet``)."""
    from avmodels.methods.lvs import lvs_state_from_official

    return "lvs", {"model": {"backbone": "resnet18"}}, lvs_state_from_official(states["ckpt"])


for _name, _conv, _what in (
    ("ezvsl", convert_ezvsl, "EZ-VSL's best.pth (github.com/stoneMo/EZ-VSL)"),
    ("fnac", convert_fnac, "FNAC's best.pth (github.com/OpenNLPLab/FNAC_AVL)"),
    ("slavc", convert_slavc, "SLAVC's checkpoint (github.com/stoneMo/SLAVC)"),
    (
        "lvs",
        convert_lvs,
        "LVS's released model (github.com/hche11/Localizing-Visual-Sounds-the-Hard-Way)",
    ),
):
    IMPORTERS.add(
        _name,
        Importer(
            name=_name,
            description=_what,
            files=(
                FileArg("ckpt", "the released checkpoint ('model' or 'model_state_dict' entry)"),
            ),
            convert=_conv,
        ),
    )
