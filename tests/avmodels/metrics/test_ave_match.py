"""Multi-Source's AVE match rates (main.py test_avs), the function and `avmodels ave-match`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from avmodels.cli import cli
from avmodels.metrics.ave_match import MatchMeter, batch_match_rates
from avprep.errors import InputError
from tests.engine_data import write_tiny_store
from tests.method_config import one_thread  # noqa: F401 (autouse fixture)


def restated(common, differ):
    """test_avs: both head outputs flattened into one column, cut in half at segments // 2;
    match = share of the first half below 1.0, differ = share of the second half above."""
    col = torch.cat([common.reshape(-1, 1), differ.reshape(-1, 1)], 0)
    half = col.shape[0] // 2
    return (
        torch.sum(col[:half, 0] < 1.0).item() / float(col.shape[0] / 2),
        torch.sum(col[half:, 0] > 1.0).item() / float(col.shape[0] / 2),
    )


def test_batch_rates_equal_the_restatement():
    g = torch.Generator().manual_seed(0)
    for shape in [(16, 1, 2), (4, 4, 2), (8, 1)]:
        common = torch.randn(*shape, generator=g) * 2 + 0.5
        differ = torch.randn(*shape, generator=g) * 2 + 1.5
        assert batch_match_rates(common, differ) == pytest.approx(restated(common, differ))
    # exactly 1.0 counts on neither side; both outputs of a two-way head count
    common = torch.tensor([[0.0, 1.0], [2.0, 0.5]])
    differ = torch.tensor([[1.0, 3.0], [0.0, 1.5]])
    assert batch_match_rates(common, differ) == (0.5, 0.5)
    with pytest.raises(InputError, match="as many"):
        batch_match_rates(common, differ[:1])


def test_meter_averages_batches_with_weight_one():
    meter = MatchMeter()
    meter.update(torch.zeros(2, 2), torch.full((2, 2), 2.0))  # 1.0, 1.0
    meter.update(torch.full((8, 2), 2.0), torch.zeros(8, 2))  # 0.0, 0.0 (bigger batch)
    out = meter.result()
    assert out["match_rate"] == 0.5 and out["differ_rate"] == 0.5 and out["batches"] == 2
    with pytest.raises(InputError):
        MatchMeter().result()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("avematch")
    stores = [
        write_tiny_store(root, 4, size=32, seconds=1, sample_rate=22050, prefix=f"{v}.t",
                         name=f"{v}.h5", seed=k)[0]
        for k, v in enumerate(("vidA", "vidB", "vidC"))
    ]  # fmt: skip
    data = [a for s in stores for a in ("--data", str(s))]
    sets = ["model.backbone=small", "model.pretrained=false", "model.small_width=8",
            "model.small_channels=32", "model.proj_hidden=64", "data.image_size=32",
            "data.spectrogram=audio", "train.max_steps=1", "train.batch_size=4",
            "train.num_workers=0"]  # fmt: skip
    args = ["train", "mssl", *data, "--out", str(root / "run"), "--no-progress"]
    for s in sets:
        args += ["--set", s]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    return root / "run", stores, data


@pytest.mark.slow
def test_ave_match_scores_the_pair_head_on_validation_scenes(trained):
    from avmodels.data import MethodDataset, open_sources
    from avmodels.engine.checkpoint import build_model
    from avmodels.methods.mssl_batching import original_negatives, validation_scenes

    run, stores, data = trained
    args = ["ave-match", "--run", str(run), *data, "--mix", "2", "--frames", "3",
            "--seed", "5", "--device", "cpu", "--json", "--no-progress"]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["batches"] == 3 and out["clips"] == 3 and out["threshold"] == 1.0
    # independently: the head on the concatenation [audio_i, frame_j], as the original
    model, _ = build_model(run / "final.pt", "cpu")
    src = open_sources([str(s) for s in stores], model.required_inputs())
    ds = MethodDataset(src, model.sample_transform(train=False))
    g = torch.Generator().manual_seed(5)
    match, differ = [], []
    with torch.no_grad():
        for rows in validation_scenes(src.ids, 2, 3, "ave", 5):
            items = [ds[r] for r in rows]
            a = model.audio(torch.stack([i["spectrogram"] for i in items])).mean((2, 3))
            v = model.vision(torch.stack([i["frame"] for i in items])).mean((2, 3))
            common = model.avc(torch.cat([a, v], 1))
            other, second = original_negatives(2, 3, g)
            vneg = v[(other * 3 + second).reshape(-1)]
            diff = model.avc(torch.cat([a, vneg], 1))
            match.append(float((common < 1.0).float().mean()))
            differ.append(float((diff > 1.0).float().mean()))
    assert out["match_rate"] == pytest.approx(np.mean(match), abs=1e-9)
    assert out["differ_rate"] == pytest.approx(np.mean(differ), abs=1e-9)
    one = CliRunner().invoke(cli, [*args[:5], "--mix", "1"])
    assert one.exit_code == 2 and "--mix" in one.output


def test_full_head_keeps_the_original_names_and_refuses_other_files(tmp_path):
    from avmodels.methods.mssl_full_head import FullPairModel, full_head_state

    keys = set(FullPairModel(4).state_dict())
    # model/detector.py Framework: visual = resnet18(additional=True), audio = mobilecrnn_v2,
    # discrim = DiscrimHead(..., visual.layer5, 512) (layer5 registered under both names)
    for k in ("visual.conv1.weight", "visual.layer3.1.bn2.running_var",
              "visual.layer5.0.downsample.0.weight", "discrim.spa_conv.0.downsample.1.weight",
              "discrim.temp_conv.0.weight", "discrim.temp_conv.4.weight",
              "discrim.temp_conv.8.running_mean", "discrim.discrim.2.bias",
              "discrim.transform_a.3.running_mean", "audio.features.0.1.weight"):  # fmt: skip
        assert k in keys, k
    assert not any(k.startswith(("visual.layer4", "visual.fc", "audio.gru")) for k in keys)
    with pytest.raises(InputError, match="not a Multi-Source full-model"):
        full_head_state({"vision.conv1.weight": torch.zeros(1)}, 4)


@pytest.mark.slow
def test_ave_match_on_an_original_checkpoint(trained, tmp_path):
    from avmodels.data import MethodDataset, open_sources
    from avmodels.methods.mssl import MsslSample, MultiSource
    from avmodels.methods.mssl_batching import original_negatives, validation_scenes
    from avmodels.methods.mssl_full_head import FullPairModel

    _, stores, data = trained
    torch.manual_seed(0)
    model = FullPairModel(2).eval()
    state = {**model.state_dict(), "prior_v.fc.weight": torch.zeros(3, 3)}  # others ignored
    ckpt = tmp_path / "model_joint.pth.tar"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()},
                "accuracy": 1.2}, ckpt)  # fmt: skip
    args = ["ave-match", "--original-ckpt", str(ckpt), *data, "--mix", "2", "--frames", "2",
            "--rule", "audioset", "--device", "cpu", "--json", "--no-progress"]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["head"] == "original full-model head" and out["batches"] == 3
    # restated: each clip's seconds' log-mels joined in time, then the head by its parts
    src = open_sources([str(s) for s in stores], ["frame", "audio"])
    cfg = {**MultiSource.defaults, "data": {**MultiSource.defaults["data"], "spectrogram": "audio"}}
    ds = MethodDataset(src, MsslSample(cfg, train=False))
    g = torch.Generator().manual_seed(0)
    match, differ = [], []
    with torch.no_grad():
        for rows in validation_scenes(src.ids, 2, 2, "audioset", 0):
            items = [ds[r] for r in rows]
            spec = torch.stack([torch.cat([items[2 * c + t]["spectrogram"][0] for t in range(2)])
                                for c in range(2)])  # fmt: skip
            img = torch.stack([i["frame"] for i in items])
            a, v = model.discrim.embed(model.audio.embed(spec), model.visual.bottom(img))
            other, second = original_negatives(2, 2, g)
            pos = model.discrim.discrim(torch.cat([a, v], -1))
            neg = torch.stack([torch.stack([model.discrim.discrim(torch.cat(
                [a[c, t], v[other[c, t], second[c, t]]])) for t in range(2)]) for c in range(2)])  # fmt: skip
            match.append(float((pos < 1.0).float().mean()))
            differ.append(float((neg > 1.0).float().mean()))
    assert out["match_rate"] == pytest.approx(np.mean(match), abs=1e-9)
    assert out["differ_rate"] == pytest.approx(np.mean(differ), abs=1e-9)
    both = CliRunner().invoke(cli, [*args, "--run", str(trained[0])])
    assert both.exit_code != 0 and "not both" in str(both.exception)
