"""Imported checkpoints carry the input convention they were trained with; eval/localize --set.

Hear-The-Flow's released models were trained on flow stored as two uint8
JPEGs and read back /255 (values about 0-0.02), not on signed pixel flow:
the imported model file must say so (``htf.legacy_flow``) and record the
paper's extraction, and ``eval``/``localize`` must build the model with it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from avmodels.cli import cli
from avmodels.engine.checkpoint import build_model, load_model_file
from avmodels.engine.input_check import extraction_differences
from avmodels.engine.localize import training_input
from avmodels.importers import IMPORTERS, import_checkpoint, input_record
from avprep.errors import ConfigError
from avprep.profiles import get_profile
from tests.avmodels.methods.test_htf import _OfficialHTF, _randomise


@pytest.fixture(scope="module")
def htf_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("htf")
    torch.manual_seed(0)
    official = _randomise(_OfficialHTF("maxpool", side=3), 1)
    path = root / "flickr.pth"
    torch.save({"model": official.state_dict()}, path)
    return import_checkpoint("htf", {"ckpt": path}, root / "model.pt")


def _flow_input(model) -> torch.Tensor:
    sample = {
        "clip_id": "c",
        "frame": np.full((40, 48, 3), 128, np.uint8),
        # signed pixel flow as avprep stores it: +-6 px
        "flow": np.stack([np.full((40, 48), 6.0), np.full((40, 48), -6.0)]).astype(np.float32),
        "spectrogram": np.zeros((257, 276), np.float32),
    }
    return model.sample_transform(train=False)(sample)["flow"]


@pytest.mark.slow  # imports a ResNet-18 x 2 checkpoint (module fixture)
def test_imported_htf_is_fed_its_legacy_flow(htf_model):
    obj = load_model_file(htf_model)
    assert obj["config"]["htf"]["legacy_flow"] is True
    assert "uint8 JPEG" in obj["meta"]["input_convention"]["flow"]
    (rec,) = obj["meta"]["extraction"]
    assert rec["profile"] == "htf" and rec["params"] == get_profile("htf").params()
    model, _ = build_model(htf_model)
    flow = _flow_input(model)
    # the original's encoding: clip(round(f), 0, 255) as a JPEG, read back / 255
    assert float(flow[0].mean()) == pytest.approx(6 / 255, abs=2 / 255)
    assert float(flow[1].abs().max()) < 2 / 255  # negative motion is lost, as it was
    # --set turns our signed flow back on
    model, _ = build_model(htf_model, sets=["htf.legacy_flow=false"])
    flow = _flow_input(model)
    assert float(flow[0].mean()) == pytest.approx(6 * 224 / 48, rel=0.01)
    assert float(flow[1].mean()) == pytest.approx(-6 * 224 / 40, rel=0.01)


@pytest.mark.slow  # imports a ResNet-18 x 2 checkpoint (module fixture)
def test_set_keys_are_checked_as_in_train(htf_model):
    with pytest.raises(ConfigError, match="did you mean 'htf.legacy_flow'"):
        build_model(htf_model, sets=["htf.legacy_flwo=false"])
    with pytest.raises(ConfigError, match="must be true or false"):
        build_model(htf_model, sets=["htf.legacy_flow=maybe"])


@pytest.mark.slow  # imports a ResNet-18 x 2 checkpoint (module fixture)
def test_eval_and_localize_accept_set_and_refuse_unknown_keys(htf_model, tmp_path):
    runner = CliRunner()
    args = ["eval", "--ckpt", str(htf_model), "--data", str(tmp_path), "--benchmark", "flickr",
            "--annotations", str(tmp_path), "--set", "htf.legacy_flwo=false"]  # fmt: skip
    res = runner.invoke(cli, args)
    # a ConfigError: avmodels' entry point prints it as one line, without traceback
    assert res.exit_code != 0 and isinstance(res.exception, ConfigError)
    assert "did you mean 'htf.legacy_flow'" in str(res.exception)
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not a video")
    args = ["localize", "--ckpt", str(htf_model), "--video", str(video), "--out",
            str(tmp_path / "o.png"), "--set", "data.image_sise=64"]  # fmt: skip
    res = runner.invoke(cli, args)
    assert res.exit_code != 0 and isinstance(res.exception, ConfigError)
    assert "did you mean 'data.image_size'" in str(res.exception)


@pytest.mark.slow  # imports a ResNet-18 x 2 checkpoint (module fixture)
def test_localize_prepares_a_video_as_the_paper_did(htf_model):
    obj = load_model_file(htf_model)
    model, _ = build_model(htf_model)
    prep = training_input(htf_model, obj, model)
    assert prep.source == str(htf_model)  # from the file's record, not a fallback guess
    assert prep.profile.params() == get_profile("htf").params()


def test_every_importer_records_its_papers_extraction():
    want = {"sspl": ("sspl", "sspl"), "ssl-tie": ("ssltie", ""), "htf": ("htf", "")}
    for name, (profile, layout) in want.items():
        (rec,) = input_record(IMPORTERS.get(name))["extraction"]
        assert (rec["profile"], rec["layout"]) == (profile, layout)
        assert rec["params"] == get_profile(profile).params()


def test_eval_names_what_a_test_store_was_extracted_with_otherwise():
    trained = {"params": get_profile("htf").params()}
    other = {"params": get_profile("htf", sample_rate=16000, spectrogram="lvs").params()}
    diff = extraction_differences(other, trained)
    assert diff == {"sample_rate": (16000, 22050), "spectrogram": ("lvs", "htf")}
    assert extraction_differences(trained, trained) == {}
