"""Built-in models by name wherever a model file is asked for, and the calibration's
data root from the training config when it is not where the config says."""

from pathlib import Path

import pytest

from unilandmark.inference.detector import BUILTIN_MODELS, PRETRAINED_DIR, model_path
from unilandmark.workflows.calibrate import calibrate_checkpoint


def test_model_path_resolves_built_in_names_and_leaves_paths_alone(tmp_path, monkeypatch):
    for name, file in BUILTIN_MODELS.items():
        assert model_path(name) == PRETRAINED_DIR / file
    assert model_path(None) == model_path("builtin") == model_path("head-mean")
    assert model_path(tmp_path / "m.safetensors") == tmp_path / "m.safetensors"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "head").mkdir()  # a folder named like the domain changes nothing
    assert model_path("head") == PRETRAINED_DIR / BUILTIN_MODELS["head"]
    assert model_path(None) == PRETRAINED_DIR / BUILTIN_MODELS["head-mean"]
    (tmp_path / "head-mean").write_bytes(b"")  # a file of that name in the folder wins
    assert model_path("head-mean") == Path("head-mean")
    # a file named like a built-in model wins for that name, never for the default
    assert model_path(None) == model_path("builtin") == \
        PRETRAINED_DIR / BUILTIN_MODELS["head-mean"]


def test_calibrate_names_a_config_root_that_is_not_there(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the built-in config's root is relative: not found here
    with pytest.raises(FileNotFoundError, match=r"relative to the current folder .*pass --root"):
        calibrate_checkpoint("head", tmp_path / "cal.safetensors")
    assert not (tmp_path / "cal.safetensors").exists()


def test_models_lists_the_shipped_trained_models_and_predict_names_its_model(tmp_path):
    import numpy as np
    from typer.testing import CliRunner

    from unilandmark.cli import app
    from unilandmark.imageio.read import write_image

    r = CliRunner().invoke(app, ["models", "--domains", "head=19"], terminal_width=250)
    assert r.exit_code == 0, r.output
    assert "trained models shipped" in r.output
    assert "head-mean (default)" in r.output and "head " in r.output and "mm" in r.output
    image = tmp_path / "a.png"
    write_image(image, (np.random.default_rng(0).random((200, 160)) * 255).astype(np.uint8))
    r = CliRunner().invoke(app, ["predict", str(image), "--checkpoint", "head-mean",
                                 "--out", str(tmp_path / "p.csv")])
    assert r.exit_code == 2, r.output  # noise is no cephalogram: out of scope, said
    assert f"error: {image}: out of scope: " in r.output
    r = CliRunner().invoke(app, ["predict", str(image), "--checkpoint", "head-mean",
                                 "--out", str(tmp_path / "p.csv"), "--keep-going"])
    assert r.exit_code == 0, r.output
    assert "model: built-in 'head-mean'" in r.output
