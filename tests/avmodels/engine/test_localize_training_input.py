"""``localize`` feeds a model what its training fed it, not its method's default profile.

Real videos (ffmpeg), real extraction and packing, a real (one-step) training run:
the batch ``localize`` builds for a training clip's own video must equal the batch
the training store gives for that clip, value for value.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from avmodels.engine.checkpoint import build_model, load_model_file, save_model
from avmodels.engine.config import resolve_config
from avmodels.engine.localize import localize_video, training_extraction
from avmodels.methods import build_method
from avmodels.methods.ssl_tie import SslTie
from avmodels.methods.sspl import SSPL
from avprep.errors import ConfigError
from avprep.profiles import get_profile
from avprep.spectrogram import compute
from avprep.stages.extract import run_extract
from avprep.store import open_dataset
from avprep.store.pack import pack
from tests.media import make_video
from tests.method_config import one_thread  # noqa: F401 (autouse fixture)

SMALL = [
    "model.backbone=small",
    "model.small_width=8",
    "model.small_channels=32",
    "data.image_size=32",
    "augment.image=none",
    "augment.spec_aug=false",
]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    make_video(root / "clip_a.mp4", seconds=2, size=(160, 120), tone_hz=440)
    make_video(root / "clip_b.mp4", seconds=2, size=(160, 120), tone_hz=880, pattern="testsrc")
    return root


def _store(videos, root, profile, layout="native", split="train"):
    run_extract(videos, root / "x", profile, jobs=1, backend="serial", progress=False)
    pack(root / "x", root / "s", split, layout=layout, jobs=1, backend="serial", progress=False)
    return root / "s"


@pytest.fixture(scope="module")
def mssl_store(videos, tmp_path_factory):
    """The demo's SSL-TIE data: the ssltie profile with a 1 s, 64-band log-mel (``mssl``)."""
    profile = get_profile(
        "ssltie", frame_at="middle", image_size=48, spectrogram="mssl", audio_seconds=1
    )
    return _store(videos, tmp_path_factory.mktemp("mssl"), profile)


def _spy(monkeypatch, cls):
    """Record the batches ``localization_map`` is given (then run the real one)."""
    seen = []
    real = cls.localization_map

    def spy(self, batch):
        seen.append({k: v.detach().cpu().clone() for k, v in batch.items() if torch.is_tensor(v)})
        return real(self, batch)

    monkeypatch.setattr(cls, "localization_map", spy)
    return seen


def _store_batch(model_file, store, clip_id):
    """The eval batch of ``clip_id`` as the training store gives it."""
    model, _ = build_model(model_file, "cpu")
    ds = open_dataset(store)
    return default_collate([model.sample_transform(train=False)(ds[ds.row_of(clip_id)])])


@pytest.mark.slow  # ~2-4 s: kept out of make test-fast
def test_localize_uses_the_trained_spectrogram(videos, mssl_store, tmp_path, monkeypatch):
    from avmodels.engine.train import TrainRequest, train

    sets = [*SMALL, "train.batch_size=2", "train.num_workers=0", "train.device=cpu",
            "eval.every=0"]  # fmt: skip
    req = TrainRequest("ssl-tie", [str(mssl_store)], str(tmp_path / "run"), sets=sets)
    req.progress = False
    model_file = train(req).model_file
    (rec,) = load_model_file(model_file)["meta"]["extraction"]
    assert rec["layout"] == "native" and rec["profile"] == "ssltie"
    assert rec["params"]["spectrogram"] == "mssl" and rec["params"]["audio_seconds"] == 1

    seen = _spy(monkeypatch, SslTie)
    res = localize_video(model_file, videos / "clip_a.mp4", [None], device="cpu", progress=False)
    (batch,) = seen
    # the method's own profile would give SSL-TIE's (1, 257, 670) mel over 10 s
    assert batch["spectrogram"].shape == (1, 1, 51, 64)
    want = _store_batch(model_file, mssl_store, "clip_a")
    assert torch.equal(batch["spectrogram"], want["spectrogram"])
    assert torch.equal(batch["frame"], want["frame"])
    # and that is avprep's own `mssl` front end of the clip's audio (as float16, as stored)
    row = open_dataset(mssl_store)[open_dataset(mssl_store).row_of("clip_a")]
    pcm = np.round(row["audio"] * 32768).astype(np.int16)
    assert pcm.shape == (16000,)
    ref = compute("mssl", pcm, 16000).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(batch["spectrogram"][0, 0].numpy(), ref)
    assert res[0].time == pytest.approx(1.0, abs=0.05)  # the recorded profile's middle frame


def test_older_model_files_are_read_through_run_json(videos, tmp_path, monkeypatch):
    """``data.spectrogram=audio`` from 22,050 Hz, 1 s training audio; no record in the file."""
    profile = get_profile(
        "ssltie", frame_at="middle", image_size=48, spectrogram="none", sample_rate=22050,
        audio_seconds=1,
    )  # fmt: skip
    store = _store(videos, tmp_path / "a", profile)
    cfg = resolve_config("ssl-tie", sets=[*SMALL, "data.spectrogram=audio",
                                          "data.spectrogram_name=lvs"])  # fmt: skip
    run = tmp_path / "run"
    model_file = save_model(run / "final.pt", build_method("ssl-tie", cfg), cfg, meta={"epoch": 1})
    (run / "run.json").write_text(json.dumps({"method": "ssl-tie", "data": [str(store)]}))

    seen = _spy(monkeypatch, SslTie)
    localize_video(model_file, videos / "clip_b.mp4", [None], device="cpu", progress=False)
    (batch,) = seen
    # 1 s at 22,050 Hz: 91 STFT frames (the ssltie profile's 3 s at 16 kHz would give 200)
    assert batch["spectrogram"].shape == (1, 1, 257, 91)
    want = _store_batch(model_file, store, "clip_b")
    assert torch.equal(batch["spectrogram"], want["spectrogram"])
    assert torch.equal(batch["frame"], want["frame"])

    (run / "run.json").write_text(json.dumps({"method": "sspl", "data": [str(store)]}))
    seen.clear()  # another method's run.json is not this model's: the method's profile
    # (ssltie's frame rule is 4.96 s, past the end of this 2 s video: ask for 1 s)
    localize_video(model_file, videos / "clip_b.mp4", [1.0], device="cpu", progress=False)
    assert seen[0]["spectrogram"].shape == (1, 1, 257, 200)


@pytest.mark.slow  # ~2-4 s: kept out of make test-fast
def test_sspl_layout_rows_are_rebuilt_as_stored(videos, tmp_path, monkeypatch):
    store = _store(videos, tmp_path, get_profile("sspl", image_size=200), layout="sspl")
    cfg = resolve_config("sspl", sets=["model.pretrained=false", "model.image_size=32"])
    meta = {"extraction": training_extraction(open_dataset(store))}
    assert meta["extraction"][0]["layout"] == "sspl"
    model_file = save_model(tmp_path / "m.pt", build_method("sspl", cfg), cfg, meta=meta)

    seen = _spy(monkeypatch, SSPL)
    localize_video(model_file, videos / "clip_a.mp4", [None], device="cpu", progress=False)
    (batch,) = seen
    want = _store_batch(model_file, store, "clip_a")
    assert torch.equal(batch["view1"], want["view1"])  # 200 px JPEG -> SSPL's 256 px rows
    assert torch.equal(batch["spectrogram"], want["spectrogram"])


def _model_with(tmp_path, extraction, method="ssl-tie"):
    cfg = resolve_config(method, sets=SMALL if method == "ssl-tie" else [])
    model = build_method(method, cfg)
    return save_model(tmp_path / "m.pt", model, cfg, meta={"extraction": extraction})


@pytest.mark.parametrize(
    "change, message",
    [
        ({"image_size": 64}, "extracted differently .*image_size"),
        ({"future_knob": 1}, "future_knob that this avprep does not know"),
        ({"spectrogram": "no-such-front-end"}, "cannot reproduce.*no-such-front-end"),
        ({"spectrogram": None}, "reads a stored spectrogram"),
    ],
)
def test_what_cannot_be_reproduced_is_refused(videos, tmp_path, change, message):
    params = get_profile("ssltie").params()
    recs = [{"layout": "native", "profile": "ssltie", "params": {**params, **change}}]
    if "image_size" in change:  # two training stores, extracted two ways
        recs.insert(0, {"layout": "native", "profile": "ssltie", "params": params})
    model_file = _model_with(tmp_path, recs)
    with pytest.raises(ConfigError, match=message):
        localize_video(model_file, videos / "clip_a.mp4", device="cpu", progress=False)
