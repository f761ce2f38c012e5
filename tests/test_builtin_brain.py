"""The built-in volume model ``brain`` (the 32 AFIDs fiducials, docs/volumes.md): chosen by
name, predicting a real template as stored and re-saved in other axis orders,
orientations and an oblique direction, with the same world landmarks. Real data from
../shared/data (skipped when absent)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from typer.testing import CliRunner

from unilandmark.checkpoints.builtin import BUILTIN_MODELS, model_path, provenance
from unilandmark.cli import app
from unilandmark.core.world import VolumeGeometry
from unilandmark.data.markups import read_markups
from unilandmark.imageio.reorient import reoriented
from unilandmark.imageio.volume import read_volume, write_volume

from .conftest import _require

TEMPLATE = "MNI305"


@pytest.fixture(scope="module")
def template() -> tuple:
    root = _require("afids_templates")
    path = next((root / "images").glob(f"{TEMPLATE}.nii*"))
    truth = read_markups(root / "afids" / f"{TEMPLATE}.fcsv")
    return path, truth


@pytest.fixture(scope="module")
def brain():
    from unilandmark.inference.volume_detector import VolumeDetector

    return VolumeDetector.from_checkpoint(model_path("brain"))


def test_the_brain_model_is_listed_with_its_provenance():
    assert "brain" in BUILTIN_MODELS and model_path("brain").is_file()
    prov = provenance("brain")
    assert prov["headline"] and "afids" in prov["benchmark"]
    r = CliRunner().invoke(app, ["models"])
    assert r.exit_code == 0 and "brain" in r.output


def test_predict_with_the_brain_model_by_name(template, tmp_path):
    path, truth = template
    out, marks = tmp_path / "brain.csv", tmp_path / "marks"
    r = CliRunner().invoke(app, ["predict", str(path), "--checkpoint", "brain", "--out",
                                 str(out), "--markups", str(marks)])
    assert r.exit_code == 0, r.output
    assert "(volumes)" in r.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 32 and all(row["present"] == "1" for row in rows)
    world = np.array([[float(row[f"{a}_mm"]) for a in "xyz"] for row in rows])
    # a training template (in-sample): a plumbing check, not a figure (the held-out
    # figures are the AFIDs benchmark's)
    errors = np.linalg.norm(world - truth.points_lps, axis=1)
    assert np.mean(errors) < 4.0
    names = [row["name"] for row in rows]
    assert names == list(truth.descriptions)  # the AFIDs names (the desc column)


@pytest.mark.parametrize("code", ["RAS", "PIR", "SLA"])
def test_another_axis_order_gives_the_same_world_landmarks(brain, template, tmp_path, code):
    path, _ = template
    array, geometry = read_volume(path)
    turned_array, turned = reoriented(array, geometry, code)
    other = tmp_path / f"{code}.nii.gz"
    write_volume(other, turned_array, turned)
    a, b = brain.predict(path), brain.predict(other)
    assert np.abs(b.world - a.world).max() < 0.01
    np.testing.assert_allclose(turned.index_to_world(b.voxels), b.world, atol=1e-6)


def test_an_oblique_direction_turns_the_world_landmarks_with_the_volume(brain, template,
                                                                         tmp_path):
    """The same voxels saved with their direction and origin turned 12 degrees about an
    oblique axis (around the volume's centre): the anatomy turns in the world, and so do
    the predicted landmarks (within one 2 mm voxel)."""
    path, _ = template
    array, g = read_volume(path)
    axis = np.array([1.0, 2.0, 2.0]) / 3.0
    angle = np.radians(12)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    turn = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
    centre = g.index_to_world((np.array(g.size) - 1) / 2)
    oblique = VolumeGeometry(g.size, g.spacing, turn @ (np.array(g.origin) - centre) + centre,
                             turn @ g.direction_matrix)
    other = tmp_path / "oblique.nii.gz"
    write_volume(other, array, oblique)
    a, b = brain.predict(path), brain.predict(other)
    expected = (a.world - centre) @ turn.T + centre
    assert np.linalg.norm(b.world - expected, axis=1).max() < 2.0


@pytest.mark.parametrize("code", ["RAS", "LPS", "AIL"])
def test_the_sct_volume_with_permuted_axes_gives_the_same_predictions_resaved(brain, tmp_path,
                                                                           code):
    """The spinal-cord MRI stored with permuted axes, re-saved in other axis orders: the
    same world points (a brain model on a spine: the points mean nothing, their
    invariance is the test)."""
    root = _require("sct_t2")
    path = next(p for p in sorted(root.rglob("*.nii*")) if "label" not in p.name.lower())
    array, geometry = read_volume(path)
    turned_array, turned = reoriented(array, geometry, code)
    other = tmp_path / f"sct_{code}.nii.gz"
    write_volume(other, turned_array, turned)
    a, b = brain.predict(path), brain.predict(other)
    assert np.abs(b.world - a.world).max() < 0.01
