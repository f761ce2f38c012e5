"""Built-in models by name wherever a model file is asked for, and the calibration's
data root from the training config when it is not where the config says."""

from pathlib import Path

import pytest

from unilandmark.inference.detector import BUILTIN_MODELS, PRETRAINED_DIR, model_path
from unilandmark.workflows.calibrate import calibrate_checkpoint


def test_model_path_resolves_built_in_names_and_leaves_paths_alone(tmp_path, monkeypatch):
    for name, file in BUILTIN_MODELS.items():
        assert model_path(name) == PRETRAINED_DIR / file
    assert model_path(None) == model_path("builtin") == model_path("head")
    assert model_path(tmp_path / "m.safetensors") == tmp_path / "m.safetensors"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "head").mkdir()  # a folder named like the domain changes nothing
    assert model_path(None) == model_path("head") == PRETRAINED_DIR / BUILTIN_MODELS["head"]
    (tmp_path / "head-mean").write_bytes(b"")  # a file of that name in the folder wins
    assert model_path("head-mean") == Path("head-mean")
    assert model_path(None) == model_path("builtin") == PRETRAINED_DIR / BUILTIN_MODELS["head"]


def test_calibrate_names_a_config_root_that_is_not_there(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the built-in config's root is relative: not found here
    with pytest.raises(FileNotFoundError, match=r"relative to the current folder .*pass --root"):
        calibrate_checkpoint("head", tmp_path / "cal.safetensors")
    assert not (tmp_path / "cal.safetensors").exists()
