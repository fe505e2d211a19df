"""The PyTorch dataset over SSPL's layout (``h5py_{train,test}_*.h5``): :class:`SSPLDataset`.

It gives the sample dict of :mod:`avprep.store.reader`; files are opened
lazily, once per process (:class:`~avprep.store.lazy_files.LazyFiles`).
"""

from __future__ import annotations

import bisect
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from torch.utils.data import Dataset

from avprep.errors import ConfigError, StoreError
from avprep.store import sspl as sspl_layout
from avprep.store.batches import RowsById, Transform
from avprep.store.index import INDEX_NAME, read_index
from avprep.store.layouts import SsplLayout
from avprep.store.lazy_files import LazyFiles

log = logging.getLogger(__name__)


class SSPLDataset(RowsById, Dataset):
    """A map-style dataset over SSPL's layout (``h5py_{train,test}_*.h5`` in ``root``).

    ``split``: the split name in the file names (``10k``, ``144k``; any name
    for the test variant). ``test``: force the variant (default: a split
    named ``test*``). Ids come from ``ids_csv`` (a path), else the store's
    ``index.json``, else SSPL's ``*_videos_<split>.csv`` beside the files;
    without any, ids are the row numbers as strings.

    Frames come back as uint8 (SSPL stores integer values as float32);
    audio as stored, i.e. already normalised SSPL's way (not /32768);
    ``frame_time`` is NaN (SSPL keeps no times).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        *,
        test: bool | None = None,
        ids_csv: str | os.PathLike | None = None,
        modalities: Sequence[str] | None = None,
        transform: Transform | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.variant = sspl_layout.variant_of(split, test)
        self.transform = transform
        self.shards = self._find_shards()
        rows = []
        for names in self.shards:
            with h5py.File(self.root / names["frames"], "r") as f:
                rows.append(int(f[sspl_layout.dataset_key(self.variant, "frames")].shape[0]))
        self._starts = np.cumsum([0, *rows]).tolist()
        self.rows_per_shard = rows[0]
        why = sspl_layout.incomplete(
            self.root, split, [s["frames"] for s in self.shards], sum(rows)
        )
        if why:
            raise StoreError(why)
        self.ids = self._find_ids(ids_csv, sum(rows))
        wanted = ("frame", "audio", "spectrogram") if modalities is None else tuple(modalities)
        bad = [m for m in wanted if m not in ("frame", "audio", "spectrogram")]
        if bad:
            raise ConfigError(f"modality {bad[0]!r} is not in SSPL's layout")
        self.modalities = wanted
        self.attrs = {"layout": SsplLayout.name, "split": split, "variant": self.variant,
                      "sample_rate": sspl_layout.SAMPLE_RATE}  # fmt: skip
        self._row_of: dict[str, int] | None = None
        self._files = LazyFiles()

    def _find_shards(self) -> list[dict[str, str]]:
        one = sspl_layout.file_names(self.split, self.variant, 0, 1)
        if (self.root / one["frames"]).is_file():
            return [one]
        shards = []
        k = 0
        while True:
            names = sspl_layout.file_names(self.split, self.variant, k, k + 2)
            if not (self.root / names["frames"]).is_file():
                break
            shards.append(names)
            k += 1
        if not shards:
            raise StoreError(
                f"no SSPL files for split {self.split!r} in {self.root} (expected {one['frames']})"
            )
        for names in shards:
            for name in names.values():
                if not (self.root / name).is_file():
                    raise StoreError(f"SSPL store {self.root} lacks {name}")
        return shards

    def _find_ids(self, ids_csv: Any, n: int) -> list[str]:
        path = Path(ids_csv) if ids_csv else None
        if path is None and (self.root / INDEX_NAME).is_file():
            try:
                idx = read_index(self.root)
                if idx.id_list and idx.split == self.split:
                    path = self.root / idx.id_list
            except StoreError:
                pass
        if path is None and self.variant == "train":
            found = sorted(self.root.glob(f"*_train_videos_{self.split}.csv"))
            path = found[0] if found else None
        if path is None:
            log.warning("no id list for %s split %r: ids are row numbers", self.root, self.split)
            return [str(i) for i in range(n)]
        ids = sspl_layout.read_id_csv(path)
        if len(ids) != n:
            raise StoreError(f"{path} lists {len(ids)} ids but the SSPL files hold {n} rows")
        return ids

    def __len__(self) -> int:
        return self._starts[-1]

    def _where(self) -> Any:
        return self.root

    def _open_shard(self, k: int) -> dict[str, Any]:
        h: dict[str, Any] = {"_files": []}
        for kind, name in self.shards[k].items():
            f = h5py.File(self.root / name, "r")
            h["_files"].append(f)
            h[kind] = f[sspl_layout.dataset_key(self.variant, kind)]
        return h

    def __getitem__(self, index: int) -> Any:
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} rows")
        k = bisect.bisect_right(self._starts, index) - 1
        r = index - self._starts[k]
        h = self._files.get(k, lambda: self._open_shard(k))
        sample: dict[str, Any] = {
            "clip_id": self.ids[index],
            "index": index,
            "sample_rate": sspl_layout.SAMPLE_RATE,
            "frame_time": float("nan"),
        }
        if "frame" in self.modalities:
            sample["frame"] = h["frames"][r].astype(np.uint8)
        if "audio" in self.modalities:
            sample["audio"] = h["audios"][r]
        if "spectrogram" in self.modalities:
            sample["spectrogram"] = h["spects"][r]
        return self.transform(sample) if self.transform else sample

    def close(self) -> None:
        self._files.close()

    def __repr__(self) -> str:
        return f"SSPLDataset({str(self.root)!r}, split={self.split!r}, rows={len(self)})"
