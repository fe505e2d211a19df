"""Multi-Source's pseudo labels, made as the original makes them.

Both stages of Multi-Source learn 7-way classifiers (AudioSet's top-level
categories) from *pseudo labels*: a pretrained AudioSet tagger (MobileCRNN v2,
527 classes, :mod:`avmodels.backbones.mobile_crnn`) labels the audio, an
ImageNet ResNet-18 (1000 classes, softmax) labels the frame, and two 0/1
matrices from the authors' repository map the predictions onto the 7
categories: ``utils/cluster_a.npy`` (7 x 527) and ``utils/cluster_v3.npy``
(1000 x 7). Audio and visual labels are separate soft multi-label vectors.

The repository holds two rules; ``rule`` picks one:

``new`` (default; the simplified ``new/`` code that ``avmodels train mssl`` follows)
    ``mobile_crnn/generate_label.py`` and ``generate_labelv.py``. Audio: per
    category the largest tag probability among its AudioSet classes; values
    above 0.3 are pushed up, ``0.4 a + 0.6``. Visual: the ten most probable
    ImageNet classes are kept (the others zeroed), summed per category and
    divided by the largest category.
``full`` (the paper's full model, ``main.py`` / ``model/detector.py``, computed online there)
    Audio: ``min(2 a, 1)`` of the same per-category maximum. Visual: the softmax
    divided by its maximum, each class weighted by ``0.95^r`` (r = 1 for the most
    probable class), and per category the mean of its two largest weighted values.

Neither script runs as published (``generate_labelv.py`` indexes with a
``topk`` result and multiplies (1, 1000) by (1000, 7); ``generate_label.py``
feeds a 5-D tensor and lacks ``import h5py``): ``new`` implements what they
evidently mean, as read in docs/methods.md. The frame is the 256 x 256 RGB frame
with ImageNet normalisation (the original feeds its 256 px HDF5 frames, no crop);
the tagger's input is the ``mssl`` log-mel (64 bands, 40/20 ms at 22,050 Hz).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from avmodels.backbones.mobile_crnn import MobileCRNN, mobilecrnn_v2
from avmodels.methods.audio_input import SOURCES
from avprep.errors import ConfigError, InputError

log = logging.getLogger(__name__)

RULES = ("new", "full")
# where the tagger's log-mel comes from (audio_input.SOURCES), the default first
SPECTROGRAM_SOURCES = ("audio", *(s for s in SOURCES if s != "audio"))
NUM_CATEGORIES = 7
AUDIOSET_CLASSES = 527
IMAGENET_CLASSES = 1000
# the "new" rule's constants (generate_label.py / generate_labelv.py)
AUDIO_BOOST_ABOVE = 0.3
VISUAL_TOP = 10
# the "full" rule's constants (model/detector.py: process_a / process_v)
FULL_AUDIO_GAIN = 2.0
FULL_RANK_DECAY = 0.95
FULL_VISUAL_TOPK = 2


# -- the mapping matrices ---------------------------------------------------------------
def load_mapping(path: str | os.PathLike, shape: tuple[int, int], what: str) -> np.ndarray:
    """A 0/1 category mapping ``.npy`` (no pickles) of the given shape, as float32."""
    try:
        arr = np.load(Path(path), allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{what} mapping not found: {path}") from None
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a plain .npy mapping ({exc})") from None
    if arr.shape != shape:
        raise InputError(f"{path}: {what} mapping has shape {arr.shape}, expected {shape}")
    if arr.dtype.kind not in "biuf" or not np.isin(arr, (0, 1)).all():
        raise InputError(f"{path}: {what} mapping must hold only 0 and 1")
    return arr.astype(np.float32)


# -- the rules (numpy, one row per clip) -----------------------------------------------
def _category_max(tags: np.ndarray, cluster_a: np.ndarray) -> np.ndarray:
    # (B, 527) x (7, 527) -> (B, 7): the most probable AudioSet class of each category
    return (tags[:, None, :] * cluster_a[None, :, :]).max(axis=2)


def audio_labels(tags: np.ndarray, cluster_a: np.ndarray, rule: str = "new") -> np.ndarray:
    """(B, 7) audio pseudo labels from the tagger's (B, 527) clip probabilities."""
    a = _category_max(np.asarray(tags, np.float32), np.asarray(cluster_a, np.float32))
    if rule == "new":
        return np.where(a > AUDIO_BOOST_ABOVE, a * 0.4 + 0.6, a).astype(np.float32)
    if rule == "full":
        return np.minimum(FULL_AUDIO_GAIN * a, 1.0).astype(np.float32)
    raise ConfigError(f"pseudo-label rule {rule!r}; valid: {', '.join(RULES)}")


def visual_labels(probs: np.ndarray, cluster_v: np.ndarray, rule: str = "new") -> np.ndarray:
    """(B, 7) visual pseudo labels from ImageNet softmax probabilities (B, 1000)."""
    p = np.asarray(probs, np.float32)
    v = np.asarray(cluster_v, np.float32)
    rows = np.arange(p.shape[0])[:, None]
    if rule == "new":
        top = np.argsort(-p, axis=1, kind="stable")[:, :VISUAL_TOP]
        kept = np.zeros_like(p)
        kept[rows, top] = p[rows, top]
        s = kept.astype(np.float64) @ v.astype(np.float64)
        return (s / s.max(axis=1, keepdims=True)).astype(np.float32)
    if rule == "full":
        order = np.argsort(-p, axis=1, kind="stable")
        level = np.empty_like(p)
        level[rows, order] = FULL_RANK_DECAY ** np.arange(1, p.shape[1] + 1, dtype=np.float32)
        w = p / p.max(axis=1, keepdims=True) * level
        per_class = w[:, :, None] * v[None, :, :]  # (B, 1000, 7)
        top = -np.sort(-per_class, axis=1)[:, :FULL_VISUAL_TOPK]
        return top.mean(axis=1).astype(np.float32)
    raise ConfigError(f"pseudo-label rule {rule!r}; valid: {', '.join(RULES)}")


# -- the networks -----------------------------------------------------------------------
def _state_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"weights file not found: {path}") from None
    except (RuntimeError, OSError, ValueError, EOFError) as exc:
        raise InputError(
            f"{path}: not a loadable state dict ({str(exc).splitlines()[0]})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], path: object, what: str) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    shapes = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or shapes:
        first = (missing or shapes)[0]
        raise InputError(
            f"{path}: not {what} weights ({len(missing)} missing, {len(shapes)} of another "
            f"shape; first: {first!r})"
        )
    extra = sorted(set(state) - set(own))
    if extra:  # the original loads with strict=False: say what is left out
        log.warning("%s: %d tensors not used by %s (first: %s)", path, len(extra), what, extra[0])
    model.load_state_dict({k: state[k] for k in own}, strict=True)


def load_tagger(path: str | os.PathLike) -> MobileCRNN:
    """MobileCRNN v2 with the weights in ``path`` (``mobilecrnn_v2.pth``), in eval mode."""
    model = mobilecrnn_v2()
    _load_into(model, _state_file(path), path, "MobileCRNN v2 (527 classes)")
    return model.eval()


def imagenet_classifier() -> nn.Module:
    """torchvision's ResNet-18 with its 1000-way classifier (random weights)."""
    from torchvision.models import resnet18

    return resnet18(weights=None)


def load_imagenet_classifier(path: str | os.PathLike) -> nn.Module:
    """torchvision's ResNet-18 ImageNet classifier from a state dict file, in eval mode."""
    model = imagenet_classifier()
    _load_into(model, _state_file(path), path, "torchvision ResNet-18 (1000 classes)")
    return model.eval()


class PseudoLabeler(nn.Module):
    """(spectrograms, frames) -> (audio labels, visual labels), both (B, 7) float32.

    ``spec``: (B, T, 64) ``mssl`` log-mel; ``frame``: (B, 3, 256, 256) ImageNet-normalised.
    """

    def __init__(
        self,
        tagger: nn.Module,
        classifier: nn.Module,
        cluster_a: np.ndarray,
        cluster_v: np.ndarray,
        rule: str = "new",
    ) -> None:
        super().__init__()
        if rule not in RULES:
            raise ConfigError(f"pseudo-label rule {rule!r}; valid: {', '.join(RULES)}")
        if cluster_a.shape != (NUM_CATEGORIES, AUDIOSET_CLASSES):
            raise ConfigError(f"cluster_a must be 7 x 527, got {cluster_a.shape}")
        if cluster_v.shape != (IMAGENET_CLASSES, NUM_CATEGORIES):
            raise ConfigError(f"cluster_v must be 1000 x 7, got {cluster_v.shape}")
        self.tagger, self.classifier = tagger.eval(), classifier.eval()
        self.cluster_a, self.cluster_v, self.rule = cluster_a, cluster_v, rule

    @torch.no_grad()
    def predictions(self, spec: torch.Tensor, frame: torch.Tensor) -> tuple[np.ndarray, ...]:
        """(B, 527) tag probabilities and (B, 1000) ImageNet softmax."""
        tags, _ = self.tagger(spec.float())
        probs = torch.softmax(self.classifier(frame.float()).float(), dim=1)
        return tags.float().cpu().numpy(), probs.cpu().numpy()

    def forward(self, spec: torch.Tensor, frame: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        tags, probs = self.predictions(spec, frame)
        return (
            audio_labels(tags, self.cluster_a, self.rule),
            visual_labels(probs, self.cluster_v, self.rule),
        )


def build_labeler(
    rule: str = "new",
    *,
    tagger_weights: str | os.PathLike | None = None,
    vision_weights: str | os.PathLike | None = None,
    cluster_a: str | os.PathLike | None = None,
    cluster_v: str | os.PathLike | None = None,
    download: bool = True,
) -> PseudoLabeler:
    """The generator with the original's files: explicit paths, else the weights cache.

    Missing files are downloaded from their official addresses (checked) unless
    ``download`` is false (then a one-line error says which file to fetch).
    """
    from avmodels import weights

    def local(name: str, given: str | os.PathLike | None) -> Path:
        return weights.resolve(name, given, download=download)

    ca = load_mapping(local("mssl-cluster-a", cluster_a), (7, 527), "audio (cluster_a)")
    cv = load_mapping(local("mssl-cluster-v3", cluster_v), (1000, 7), "visual (cluster_v3)")
    tagger = load_tagger(local("mobilecrnn-v2", tagger_weights))
    classifier = load_imagenet_classifier(local("resnet18", vision_weights))
    return PseudoLabeler(tagger, classifier, ca, cv, rule)


# -- the labels file: batched, resumable ---------------------------------------------------
class _LabelInputs(torch.utils.data.Dataset):
    """Store rows -> (row, (T, 64) log-mel, (3, 256, 256) frame)."""

    def __init__(self, sources, rows: Sequence[int], spectrogram: str) -> None:
        from avmodels.methods.audio_input import SpectrogramInput
        from avmodels.methods.augment import ResizeSquash

        self.sources, self.rows = sources, list(rows)
        self.spec = SpectrogramInput(spectrogram, "mssl")
        self.frame = ResizeSquash(256)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, torch.Tensor]:
        row = self.rows[i]
        sample = self.sources[row]
        if sample.get("frame") is None:
            raise InputError(f"clip {sample.get('clip_id')!r} has no frame")
        return row, self.spec(sample)[0], self.frame(sample["frame"])


def _collate(items: list) -> list:
    return items


def _label_ids(sources: Any, spectrogram: str) -> list[str]:
    """The stores' clip ids (each once: labels are keyed by clip id); warns about audio
    at another rate than the tagger's."""
    ids = list(sources.ids)
    if len(set(ids)) != len(ids):
        raise InputError("the stores hold a clip id twice: labels are keyed by clip id")
    if spectrogram == "audio":
        rates = {int(getattr(ds, "sample_rate", 0) or 0) for ds in sources.datasets}
        if rates - {22050, 0}:
            log.warning(
                "audio at %s Hz: the tagger was trained on 22,050 Hz log-mels (extract with "
                "--profile mssl)",
                ", ".join(map(str, sorted(rates))),
            )
    return ids


def _open_partial(
    partial: Path, out: Path, ids: list[str], rule: str, spectrogram: str
) -> tuple[Any, int]:
    """``(h5 file, rows already done)``: an interrupted run's file continued (same clips,
    same rule), or a new one."""
    import h5py

    from avmodels.methods.pseudo_labels import H5_FORMAT

    if partial.is_file():
        fh = h5py.File(partial, "r+")
        stored = [c.decode("utf-8") for c in fh["clip_id"][:]]
        if stored != ids or fh.attrs.get("rule") != rule:
            fh.close()
            raise InputError(
                f"{partial} is an interrupted run on other clips or with another rule; "
                "delete it to start again"
            )
        return fh, int(fh["done"][:].sum())
    out.parent.mkdir(parents=True, exist_ok=True)
    fh = h5py.File(partial, "w")
    fh.attrs["format"] = H5_FORMAT
    fh.attrs["rule"] = rule
    fh.attrs["categories"] = NUM_CATEGORIES
    fh.attrs["spectrogram"] = spectrogram
    fh.create_dataset("clip_id", data=np.array([c.encode("utf-8") for c in ids], dtype="S"))
    for name in ("audio", "visual"):
        fh.create_dataset(name, shape=(len(ids), NUM_CATEGORIES), dtype="f4", fillvalue=0)
    fh.create_dataset("done", shape=(len(ids),), dtype=bool, fillvalue=False)
    return fh, 0


def _label_batch(fh: Any, labeler: PseudoLabeler, items: list, device: str) -> None:
    """Label one loader batch into ``fh`` (clips of different lengths in separate groups)."""
    by_len: dict[tuple[int, ...], list] = {}
    for item in items:
        by_len.setdefault(tuple(item[1].shape), []).append(item)
    for group in by_len.values():
        rows = [g[0] for g in group]
        spec = torch.stack([g[1] for g in group]).to(device)
        frame = torch.stack([g[2] for g in group]).to(device)
        a, v = labeler(spec, frame)
        order = np.argsort(rows)
        idx = np.asarray(rows)[order]
        fh["audio"][idx] = a[order]
        fh["visual"][idx] = v[order]
        fh["done"][idx] = True
    fh.flush()


def write_label_file(
    data: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    labeler: PseudoLabeler,
    *,
    batch_size: int = 32,
    workers: int = 0,
    spectrogram: str = "audio",
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, int]:
    """Label every clip of the stores ``data`` into ``out`` (``.h5``); resumable.

    Rows are written as each batch finishes into ``<out>.partial``; a rerun
    continues where an interrupted one stopped (same clips, same rule), and the
    finished file replaces ``out`` in one rename. Returns counts.
    """
    from tqdm import tqdm

    from avmodels.data import open_sources
    from avprep.lock import folder_lock

    out = Path(out)
    if out.suffix not in (".h5", ".hdf5"):
        raise ConfigError(f"--out must end in .h5, got {out.name}")
    sources = open_sources(list(data), None)
    ids = _label_ids(sources, spectrogram)
    partial = out.with_name(out.name + ".partial")
    # one run per output file: a second one would write into the same .partial
    with folder_lock(out.parent, f"pseudo-labels-{out.name}", hint="use another --out"):
        fh, resumed = _open_partial(partial, out, ids, labeler.rule, spectrogram)
        try:
            todo = np.flatnonzero(~fh["done"][:]).tolist()
            labeler = labeler.to(device)
            loader = torch.utils.data.DataLoader(
                _LabelInputs(sources, todo, spectrogram),
                batch_size=batch_size,
                num_workers=workers,
                collate_fn=_collate,
            )
            bar = tqdm(total=len(ids), initial=resumed, unit="clip", disable=not progress)
            for items in loader:
                _label_batch(fh, labeler, items, device)
                bar.update(len(items))
            bar.close()
        finally:
            fh.close()
        os.replace(partial, out)
    return {"clips": len(ids), "labelled": len(ids) - resumed, "resumed": resumed}


def write_tag_labels(
    data: Sequence[str | os.PathLike], out: str | os.PathLike, tags_path: str | os.PathLike
) -> dict[str, int]:
    """AudioSet-instrument's labels: each row gets its video's 15 tags, for both streams.

    The original trains its AudioSet model on the tags of ``train_audio.pkl``
    (the same vector for audio and frame, every second of a video). Rows are
    ``avprep pairs`` ids ``<ytid>.tNN`` or bare video ids; a row whose video has
    no tags is an error (a wrong pickle), not an unlabelled clip.
    """

    from avmodels.data import open_sources
    from avprep.recipes.audioset_instrument import read_tags

    tags = read_tags(tags_path)
    ids = list(open_sources(list(data), None).ids)
    rows = []
    for cid in ids:
        vid, sep, index = cid.rpartition(".t")
        vid = vid if sep and index.isdigit() else cid
        if vid not in tags:
            raise InputError(f"clip {cid!r}: video {vid!r} has no tags in {tags_path}")
        rows.append(tags[vid])
    lab = np.stack(rows).astype(np.float32) if rows else np.zeros((0, 15), np.float32)
    write_tags_file(out, ids, lab)
    return {"clips": len(ids), "labelled": len(ids), "resumed": 0}


def write_tags_file(out: str | os.PathLike, ids: Sequence[str], lab: np.ndarray) -> None:
    """A complete labels file (rule ``tags``): row ``i`` of ``lab`` is clip ``ids[i]``'s
    label vector, the same for the audio and the visual stream; written atomically."""
    import h5py

    from avmodels.methods.pseudo_labels import H5_FORMAT
    from avprep.atomic import atomic_path

    with atomic_path(Path(out)) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = H5_FORMAT
        f.attrs["rule"] = "tags"
        f.attrs["categories"] = lab.shape[1]
        f.create_dataset("clip_id", data=np.array([c.encode("utf-8") for c in ids], dtype="S"))
        f.create_dataset("audio", data=lab)
        f.create_dataset("visual", data=lab)
        f.create_dataset("done", data=np.ones(len(ids), dtype=bool))
