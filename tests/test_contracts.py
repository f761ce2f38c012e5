"""The model registry and the prediction contract of model files.

- one registry entry per model (builder, codec, family, stage kinds); a patch stage takes
  its codec from its model's entry, and a model that cannot serve as a patch stage is
  refused when the config is read, with a sentence;
- a model file is read through ``checkpoints.contract``: a training option this version
  does not know (or one it dropped) does not stop prediction.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from unilandmark import Detector
from unilandmark.checkpoints.checkpoint import load_checkpoint, save_model_file, stage_chain
from unilandmark.checkpoints.contract import ContractError, stage_contract
from unilandmark.codecs import HeatmapCodec
from unilandmark.inference.detector import model_path
from unilandmark.models import MODELS, codec_for, stage_models
from unilandmark.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def _patch_config(model: str):
    return load_config(data={
        "stage": {"kind": "patch", "previous": "runs/x/best.pt", "sigma": 2.0},
        "model": {"name": model, "width": 8, "depth": 2}})


def test_every_model_has_one_entry_with_builder_codec_family_and_stages():
    for name, entry in MODELS.items():
        assert callable(entry.build) and entry.family, name
        # every model serves a whole-input stage, but the 2.5-D one, which only refines
        assert "image" in entry.stages or entry.stages == {"volume-patch"}, name
        assert codec_for(name, 2.0) is not None
    assert "patch" in MODELS["gu2net"].stages and "patch" in MODELS["heatmap"].stages


@pytest.mark.parametrize("model", ["pixel-class", "dsnt", "heatmap-sigma", "displacement"])
def test_a_model_that_cannot_refine_patches_is_refused_when_the_config_is_read(model):
    with pytest.raises(ValueError) as info:
        _patch_config(model)
    text = str(info.value)
    assert f"model.name {model!r} cannot serve as a patch stage" in text
    assert "models that can: " in text and "heatmap" in text


@pytest.mark.parametrize("model", ["heatmap", "heatmap-awing", "gu2net"])
def test_patch_capable_models_are_accepted_and_their_codec_is_the_registrys(model):
    config = _patch_config(model)
    assert model in stage_models("patch")
    codec = codec_for(config.model.name, config.stage.sigma, config.optim.loss)
    assert isinstance(codec, HeatmapCodec)
    if model == "heatmap-awing":  # the patch stage no longer trains every model with BCE
        assert codec.loss_name == "awing"


def test_an_unknown_model_name_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown model 'unett'; known: gu2net"):
        load_config(data={"domains": [{"name": "h", "dataset": "synthetic", "root": "x"}],
                          "model": {"name": "unett"}})


def _image():
    """A small deterministic radiograph-like test image."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:300, 0:240]
    return (np.exp(-((x - 120) ** 2 + (y - 150) ** 2) / 4000.0) * 200
            + rng.normal(0, 5, (300, 240))).astype(np.float32)


def test_a_model_file_with_unknown_training_options_loads_and_predicts(tmp_path):
    """A later version's training option (``train.ema``, a new ``optim`` key, a new
    top-level section) in every stage: prediction reads only the model and patch geometry,
    so the file predicts exactly as before."""
    state = load_checkpoint(model_path(None))
    changed = copy.deepcopy(state)
    for stage in stage_chain(changed):
        stage["config"]["train"]["ema"] = 0.999
        stage["config"]["optim"]["lookahead"] = {"k": 5}
        stage["config"]["curriculum"] = ["easy", "hard"]
        stage["config"].get("stage", {})["future_option"] = 1
    path = tmp_path / "future.safetensors"
    save_model_file(path, changed)

    image = _image()
    before = Detector.from_checkpoint_state(state).predict(image, spacing=(0.1, 0.1))
    after = Detector.from_checkpoint(path).predict(image, spacing=(0.1, 0.1))
    np.testing.assert_array_equal(after.points, before.points)


def test_a_broken_contract_names_the_file_the_stage_and_the_key():
    stage = {"kind": "patch", "config": {"model": {"name": "heatmap", "width": -1},
                                         "stage": {"patch_size": 4}}}
    with pytest.raises(ContractError) as info:
        stage_contract(stage, "m.safetensors")
    text = str(info.value)
    assert text.startswith("m.safetensors: stage 'patch'")
    assert "model.width" in text and "patch.patch_size" in text
    with pytest.raises(ContractError, match="no config mapping"):
        stage_contract({"kind": "image"}, "m.safetensors")


def test_both_backends_offer_the_predictor_interface(tmp_path):
    from unilandmark.export.runner import OnnxDetector
    from unilandmark.inference.predictor import Predictor

    assert isinstance(Detector.from_checkpoint(None), Predictor)
    for method in ("predict", "predict_many", "iter_predict"):
        assert callable(getattr(OnnxDetector, method))
        assert getattr(Predictor, method).__code__.co_varnames[:4] == \
            getattr(OnnxDetector, method).__code__.co_varnames[:4]
