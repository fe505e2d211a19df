"""Generated data shaped as the newer protocols' real files, and a tiny random model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from tests.engine_data import write_tiny_store

TINY_SSLTIE = {
    "model": {"backbone": "small", "small_width": 8, "small_channels": 16, "pretrained": False},
    "data": {
        "image_size": 32,
        "spectrogram": "audio",
        "spectrogram_name": "mssl",
        "audio_seconds": 1.0,
    },
    "augment": {"image": "none", "spec_aug": False},
}


def write_tiny_model(path: Path, seed: int = 0) -> Path:
    """A random-weight SSL-TIE model file (small CNN streams) that reads the raw audio."""
    import torch

    from avmodels.engine.checkpoint import save_model
    from avmodels.methods import build_method

    torch.manual_seed(seed)
    m = build_method("ssl-tie", TINY_SSLTIE)
    return save_model(path, m, m.cfg)


def vggss_json(path: Path, boxes: dict) -> Path:
    path.write_text(
        json.dumps([{"file": c, "class": "x", "bbox": [list(b)]} for c, b in boxes.items()])
    )
    return path


def silent_csv(path: Path, pairs: list[tuple[str, str]]) -> Path:
    """``*_test_plus_silent.csv``: header, CRLF, ``video,audio,non-sounding`` rows."""
    rows = ["video,audio,label", *(f"{v},{a},non-sounding" for v, a in pairs)]
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode())
    return path


def write_protocol_data(root: Path) -> dict[str, dict[str, str]]:
    """Stores, annotations, silent list, IS3 JSON and AVSBench masks; ``--data`` items by protocol."""
    store, boxes = write_tiny_store(root, 6, size=32, seconds=1)
    ids = sorted(boxes)
    ann = vggss_json(root / "vggss.json", boxes)
    silent = silent_csv(root / "vggss_test_plus_silent.csv",
                        [(ids[i], ids[(i + 2) % len(ids)]) for i in range(4)])  # fmt: skip
    # IS3: two samples per image, named <image>_<object>
    is3_rows, is3_stores = [], []
    for j in range(3):
        p, bx = write_tiny_store(root, 2, size=32, seconds=1, seed=10 + j, prefix=f"img{j}_",
                                 name=f"is3_{j}.h5")  # fmt: skip
        is3_stores.append(str(p))
        for cid, b in bx.items():
            is3_rows.append({"image": f"/x/visual_frames/{cid}.jpg", "audio": f"/x/{cid}.wav",
                             "gt_box": [float(int(v * 224)) for v in b]})  # fmt: skip
    (root / "synthetic3240_bbox.json").write_text(json.dumps(is3_rows))
    # AVSBench: one PNG mask per frame id (S4: 0/255 grey)
    masks = root / "gt_masks"
    masks.mkdir()
    for cid, (x0, y0, x1, y1) in boxes.items():
        m = np.zeros((32, 32), np.uint8)
        m[int(y0 * 32) : int(y1 * 32), int(x0 * 32) : int(x1 * 32)] = 255
        Image.fromarray(m).save(masks / f"{cid}.png")
    return {
        "vggss": {"store": str(store), "annotations": str(ann)},
        "extended-vggss": {"store": str(store), "annotations": str(ann), "silent": str(silent)},
        "is3": {"store": ",".join(is3_stores), "meta": str(root / "synthetic3240_bbox.json")},
        "s4": {"store": str(store), "masks": str(masks)},
    }
