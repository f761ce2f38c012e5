"""Safe model files: safetensors model files, weights-only training checkpoints, and files
crafted to run code when unpickled refused without running it."""

import builtins
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from unilandmark import synthetic_dataset
from unilandmark.checkpoints.checkpoint import (
    FORMAT,
    UnsafeCheckpointError,
    file_kind,
    load_checkpoint,
    prediction_state,
    save_model_file,
    slim_checkpoint,
    stage_chain,
)
from unilandmark.checkpoints.convert import convert_checkpoint
from unilandmark.cli import app
from unilandmark.inference.detector import Detector

SRC = Path(__file__).resolve().parents[1] / "src"


class _WritesMarker:
    """Unpickling this creates the marker file (``open(path, "w")``)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


def _crafted(path: Path, marker: Path) -> Path:
    torch.save({"format": FORMAT, "kind": "image", "model": {"w": torch.zeros(2)},
                "config": {"payload": _WritesMarker(marker)}}, path)
    assert not marker.exists()  # saving only records the call
    return path


def _old_style(state: dict, path: Path) -> Path:
    """A checkpoint as older versions wrote it: numpy values and torch's version object."""
    torch.save({**state, "versions": {"torch": torch.__version__},
                "best": {"score": np.float64(0.5), "epoch": np.int64(3)}}, path)
    return path


def _points(detector, paths, domain="head"):
    return np.stack([r.points for r in detector.predict_many(paths, domain)])


@pytest.fixture(scope="module")
def test_images(phantoms):
    return [r.image_path for r in synthetic_dataset(phantoms, "head").split_records("test")][:3]


def test_slim_writes_a_safetensors_model_file_that_predicts_the_same(trained_run, tmp_path,
                                                                   test_images):
    model = tmp_path / "model.safetensors"
    slim_checkpoint(trained_run.best_path, model, fp16=False, provenance={"data": "phantoms"})
    assert file_kind(model) == "safetensors" and file_kind(trained_run.best_path) == "torch"
    state = load_checkpoint(model)
    assert state["provenance"] == {"data": "phantoms"}
    assert state["domains"]["head"]["landmark_names"]
    expected = _points(Detector.from_checkpoint(trained_run.best_path), test_images)
    np.testing.assert_array_equal(_points(Detector.from_checkpoint(model), test_images),
                                  expected)
    renamed = tmp_path / "model.pt"  # the format is read from the content, not the name
    renamed.write_bytes(model.read_bytes())
    np.testing.assert_array_equal(_points(Detector.from_checkpoint(renamed), test_images),
                                  expected)


def test_training_checkpoints_hold_only_tensors_and_plain_types(trained_run):
    last = torch.load(trained_run.last_path, weights_only=True)
    assert {"optimizer", "scheduler", "history", "config", "domains"} <= set(last)
    assert torch.load(trained_run.best_path, weights_only=True)["kind"] == "image"


@pytest.mark.parametrize("name", ["evil.pt", "evil.safetensors", "evil.bin"])
def test_a_checkpoint_crafted_to_run_code_is_refused_without_running_it(tmp_path, name,
                                                                       test_images):
    marker = tmp_path / "marker"
    path = _crafted(tmp_path / name, marker)
    with pytest.raises(UnsafeCheckpointError, match="convert .* --trust"):
        load_checkpoint(path)
    with pytest.raises(UnsafeCheckpointError):
        Detector.from_checkpoint(path)
    r = CliRunner().invoke(app, ["predict", test_images[0], "--checkpoint", str(path),
                                 "--out", str(tmp_path / "p.csv")])
    assert r.exit_code == 2 and "refused" in r.output
    # conversion without --trust, or with --trust naming another file, refuses too
    with pytest.raises(UnsafeCheckpointError, match="--trust"):
        convert_checkpoint(path, tmp_path / "new.safetensors")
    with pytest.raises(ValueError, match="trust is given per file"):
        convert_checkpoint(path, tmp_path / "new.safetensors", trust=tmp_path / "other.pt")
    r = CliRunner().invoke(app, ["convert", str(path), str(tmp_path / "new.safetensors")])
    assert r.exit_code == 2 and "--trust" in r.output
    assert not marker.exists()
    assert not (tmp_path / "new.safetensors").exists()


def test_a_safetensors_model_file_with_a_pt_name_and_a_foreign_file_are_told_apart(tmp_path):
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign))
    with pytest.raises(ValueError, match="not a unilandmark model file"):
        load_checkpoint(foreign)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="neither a unilandmark model file"):
        load_checkpoint(text)
    truncated = tmp_path / "cut.safetensors"
    save_file({"w": torch.zeros(1000)}, str(truncated), metadata={"format": "x"})
    truncated.write_bytes(truncated.read_bytes()[:-100])
    with pytest.raises(ValueError):
        load_checkpoint(truncated)


def test_convert_an_old_pickled_checkpoint_only_when_trusted(trained_run, tmp_path,
                                                            test_images):
    old = _old_style(torch.load(trained_run.best_path, weights_only=True), tmp_path / "old.pt")
    with pytest.raises(UnsafeCheckpointError, match="unilandmark convert"):
        load_checkpoint(old)
    r = CliRunner().invoke(app, ["convert", str(old), str(tmp_path / "new.safetensors"),
                                 "--trust", str(old)])
    assert r.exit_code == 0, r.output
    assert "unpickled in full because --trust named it" in r.output
    done = convert_checkpoint(old, tmp_path / "new.pt", trust=old)
    assert done.trusted and done.kind == "training checkpoint" and done.stages == ("image",)
    assert torch.load(tmp_path / "new.pt", weights_only=True)["best"]["score"] == 0.5
    expected = _points(Detector.from_checkpoint(trained_run.best_path), test_images)
    for new in ("new.safetensors", "new.pt"):
        np.testing.assert_array_equal(
            _points(Detector.from_checkpoint(tmp_path / new), test_images), expected)
    # a file that already loads safely is rewritten without needing trust
    assert not convert_checkpoint(tmp_path / "new.pt", tmp_path / "again.safetensors").trusted


def test_full_unpickling_exists_only_behind_the_trust_path():
    hits = [(p.relative_to(SRC).as_posix(), n) for p in SRC.rglob("*.py")
            for n, line in enumerate(p.read_text().splitlines(), 1)
            if re.search(r"weights_only\s*=\s*False|pickle\.loads?\(", line)]
    assert [h[0] for h in hits] == ["unilandmark/checkpoints/convert.py"], hits
    text = (SRC / "unilandmark" / "checkpoints" / "convert.py").read_text()
    assert "def _unpickle_trusted" in text and text.count("weights_only=False") == 1


def test_builtin_model_is_a_model_file():
    from unilandmark.inference.detector import PRETRAINED_DIR, PRETRAINED_NAME

    path = PRETRAINED_DIR / PRETRAINED_NAME
    if not path.is_file():
        pytest.skip("no built-in model in this build")
    assert file_kind(path) == "safetensors"
    assert [s["kind"] for s in stage_chain(load_checkpoint(path))] == ["image", "patch"]


def test_model_file_keeps_a_cascade_in_order(trained_run, tmp_path):
    """A (hand-made) two-stage chain survives the round trip stage by stage."""
    first = prediction_state(torch.load(trained_run.best_path, weights_only=True))
    config = {**first["config"], "stage": {"kind": "patch", "previous": "(embedded)",
                                           "patch_size": 64, "scale": 2.0, "sigma": 2.0}}
    second = {**first, "kind": "patch", "previous": first, "config": config,
              "model": {k: v + 1 for k, v in first["model"].items()
                        if v.is_floating_point()}}
    path = tmp_path / "cascade.safetensors"
    save_model_file(path, second, {"note": "x"})
    chain = stage_chain(load_checkpoint(path))
    assert [s["kind"] for s in chain] == ["image", "patch"]
    name = next(k for k, v in first["model"].items() if v.is_floating_point())
    torch.testing.assert_close(chain[1]["model"][name], first["model"][name] + 1)
    torch.testing.assert_close(chain[0]["model"][name], first["model"][name])
