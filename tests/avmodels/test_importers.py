"""Official SSPL checkpoints (their key layout, DDP ``module.`` prefixes) -> model files.

The state dicts are built here in the released code's layout (names and
shapes written out from github.com/zjsong/SSPL's modules), filled with random
values, imported, and every tensor is checked to land where it belongs.
"""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from avmodels.cli import cli
from avmodels.engine.checkpoint import build_model, load_model_file
from avmodels.importers import IMPORTERS, import_checkpoint
from avprep.errors import InputError

VGG_CONVS = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128),
             12: (256, 256), 14: (256, 256), 17: (512, 256), 19: (512, 512), 21: (512, 512),
             24: (512, 512), 26: (512, 512), 28: (512, 512)}  # fmt: skip
VGGISH_CONVS = {0: (64, 1), 3: (128, 64), 6: (256, 128), 8: (256, 256), 11: (512, 256),
                13: (512, 512)}  # fmt: skip


def _bn(prefix: str, n: int, affine: bool = True) -> dict:
    out = {f"{prefix}.running_mean": (n,), f"{prefix}.running_var": (n,),
           f"{prefix}.num_batches_tracked": ()}  # fmt: skip
    if affine:
        out.update({f"{prefix}.weight": (n,), f"{prefix}.bias": (n,)})
    return out


def official_shapes(pcm: bool) -> dict[str, dict[str, tuple]]:
    frame = {}
    for i, (o, c) in VGG_CONVS.items():
        frame[f"feat_extractor.{i}.weight"] = (o, c, 3, 3)
        frame[f"feat_extractor.{i}.bias"] = (o,)
    sound = {}
    for i, (o, c) in VGGISH_CONVS.items():
        sound[f"module.features.{i}.weight"] = (o, c, 3, 3)
        sound[f"module.features.{i}.bias"] = (o,)
    for i, (o, c) in {0: (4096, 12288), 2: (4096, 4096), 4: (128, 4096)}.items():
        sound[f"module.embeddings.{i}.weight"] = (o, c)
        sound[f"module.embeddings.{i}.bias"] = (o,)
    for i, (o, c) in {0: (512, 128), 2: (512, 512)}.items():
        sound[f"module.fc.{i}.weight"] = (o, c)
        sound[f"module.fc.{i}.bias"] = (o,)
    head = {
        "module.projector.layer1.0.weight": (2048, 512),
        **_bn("module.projector.layer1.1", 2048),
        "module.projector.layer2.0.weight": (2048, 2048),
        **_bn("module.projector.layer2.1", 2048),
        "module.projector.layer3.0.weight": (2048, 2048),
        **_bn("module.projector.layer3.1", 2048, affine=False),
        "module.predictor.layer1.0.weight": (512, 2048),
        **_bn("module.predictor.layer1.1", 512),
        "module.predictor.layer2.weight": (2048, 512),
        "module.predictor.layer2.bias": (2048,),
    }
    out = {"frame": frame, "sound": sound, "head": head}
    if pcm:
        p = {
            "module.PredProcess.0.weight": (128, 512, 1, 1),
            "module.PredProcess.0.bias": (128,),
            "module.PredProcess.1.conv2d.weight": (512, 512, 3, 3),
            "module.PredProcess.2.conv2d.weight": (512, 512, 3, 3),
            "module.ErrorProcess.0.weight": (128, 512, 1, 1),
            "module.ErrorProcess.1.weight": (512, 512, 3, 3),
            "module.ErrorProcess.2.convtrans2d.weight": (512, 512, 3, 3),
            "module.ErrorProcess.3.weight": (512, 512, 1, 1),
            "module.ErrorProcess.3.bias": (512,),
        }
        for i in range(3):
            p[f"module.b0.{i}"] = (1, 512, 1, 1)
            p[f"module.a0.{i}"] = (1, 512, 1, 1)
        for name, n in (("BNPred", 2), ("BNError", 3), ("BNPred_step", 8), ("BNError_step", 12)):
            for i in range(n):
                p.update(_bn(f"module.{name}.{i}", 512))
        out["pcm"] = p
    return out


def official_states(pcm: bool, seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    states = {}
    for part, shapes in official_shapes(pcm).items():
        states[part] = {
            k: torch.randint(0, 100, (), generator=g)
            if k.endswith("num_batches_tracked")
            else torch.randn(s, generator=g) * 0.01
            for k, s in shapes.items()
        }
    return states


# where each official tensor must land (written independently of the importer's rules)
def expected_key(part: str, key: str) -> str:
    key = key.removeprefix("module.")
    if part == "frame":
        return "frame_net." + key.removeprefix("feat_extractor.")
    if part == "sound":
        return ("sound_fc." + key[3:]) if key.startswith("fc.") else "vggish." + key
    if part == "head":
        return "head." + key
    table = {"PredProcess.1.conv2d.weight": "predict.1.0.weight",
             "PredProcess.2.conv2d.weight": "predict.2.0.weight",
             "ErrorProcess.2.convtrans2d.weight": "correct.2.1.weight"}  # fmt: skip
    if key in table:
        return "pcm." + table[key]
    for old, new in (("PredProcess.", "predict."), ("ErrorProcess.", "correct."),
                     ("BNPred_step.", "bn_predict_step."), ("BNError_step.", "bn_correct_step."),
                     ("BNPred.", "bn_predict."), ("BNError.", "bn_correct.")):  # fmt: skip
        if key.startswith(old):
            return "pcm." + new + key[len(old) :]
    return "pcm." + key  # a0.N / b0.N


def _save(tmp_path, states):
    paths = {}
    for part, sd in states.items():
        paths[part] = tmp_path / f"{part}_best.pth"
        torch.save(sd, paths[part])
    return paths


@pytest.mark.slow
@pytest.mark.parametrize("pcm", [False, True])
def test_official_layout_imports_every_tensor(tmp_path, pcm):
    states = official_states(pcm)
    out = import_checkpoint("sspl", _save(tmp_path, states), tmp_path / "model.pt")
    obj = load_model_file(out)
    assert obj["method"] == ("sspl-pcm" if pcm else "sspl")
    sd = obj["state_dict"]
    n_official = sum(len(s) for s in states.values())
    assert len(sd) == n_official
    for part, state in states.items():
        for key, value in state.items():
            assert torch.equal(sd[expected_key(part, key)], value), (part, key)
    assert obj["meta"]["sources"]["sound"]["sha256"]
    model, _ = build_model(out)  # rebuilds with the stored config, weights_only load
    assert not model.training
    if pcm:
        assert torch.equal(model.pcm.a0[2], states["pcm"]["module.a0.2"])


@pytest.mark.slow  # ~2-4 s: kept out of make test-fast
def test_import_errors_are_clear(tmp_path):
    states = official_states(False)
    paths = _save(tmp_path, states)
    bad = dict(states["head"])
    bad["module.classifier.weight"] = torch.zeros(1)
    torch.save(bad, tmp_path / "bad_head.pth")
    with pytest.raises(InputError, match="not in the official layout"):
        import_checkpoint("sspl", {**paths, "head": tmp_path / "bad_head.pth"}, tmp_path / "m.pt")
    short = {k: v for k, v in states["sound"].items() if not k.startswith("module.fc.2")}
    torch.save(short, tmp_path / "short.pth")
    with pytest.raises(InputError, match="missing"):
        import_checkpoint("sspl", {**paths, "sound": tmp_path / "short.pth"}, tmp_path / "m.pt")
    with pytest.raises(InputError, match="--sound is required"):
        import_checkpoint("sspl", {"frame": paths["frame"], "head": paths["head"]}, tmp_path / "m")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="safe torch state dict"):
        import_checkpoint("sspl", {**paths, "sound": tmp_path / "junk.pth"}, tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.slow
def test_import_cli_is_generated_from_the_registry(tmp_path):
    assert "sspl" in IMPORTERS
    paths = _save(tmp_path, official_states(False))
    runner = CliRunner()
    res = runner.invoke(cli, ["import", "--help"])
    assert res.exit_code == 0 and "sspl" in res.output
    res = runner.invoke(cli, ["import", "sspl", "--help"])
    assert "--frame" in res.output and "--pcm" in res.output
    res = runner.invoke(
        cli,
        ["import", "sspl", "--frame", str(paths["frame"]), "--sound", str(paths["sound"]),
         "--head", str(paths["head"]), "--out", str(tmp_path / "cli.pt")],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert load_model_file(tmp_path / "cli.pt")["method"] == "sspl"
