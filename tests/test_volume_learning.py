"""Volumes through the one training loop, on briefly trained models: ``predict`` writes
voxel and world points and Slicer markups, and ``evaluate`` scores them. What a 3-D
GU2Net learns (and the cascade on top of it) is the slow test of
tests/test_volume_cascade.py."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from typer.testing import CliRunner

from unilandmark.cli import app
from unilandmark.data.markups import read_markups
from unilandmark.data.synthetic3d import synthetic_volumes_dataset

from .volume_learning import (
    volume_config,
    write_volume_phantoms,
)


@pytest.fixture(scope="module")
def briefly_trained(tmp_path_factory):
    """A volume model after 2 epochs: enough to check the plumbing, not the accuracy."""
    from unilandmark.training.fit import fit

    root = tmp_path_factory.mktemp("volumes")
    data = write_volume_phantoms(root / "data")
    run = fit(volume_config(data, root / "run", epochs=2), progress=False, log=lambda *_: None)
    return data, run.best_path


def test_predict_writes_voxels_world_points_and_markups(briefly_trained, tmp_path):
    data, checkpoint = briefly_trained
    spec = synthetic_volumes_dataset(data)
    records = spec.split_records("test")[:2]
    out, marks = tmp_path / "pred.csv", tmp_path / "marks"
    r = CliRunner().invoke(app, ["predict", *[r.image_path for r in records], "--checkpoint",
                                 str(checkpoint), "--out", str(out), "--markups", str(marks)])
    assert r.exit_code == 0, r.output
    assert "(volumes)" in r.output and "wrote 2 volumes" in r.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 * spec.num_landmarks and rows[0]["frame"] == "voxel"
    from unilandmark.imageio.volume import read_volume_info

    for record in records:
        mine = [row for row in rows if row["image"] == record.id]
        voxels = np.array([[float(row[a]) for a in "xyz"] for row in mine])
        world = np.array([[float(row[f"{a}_mm"]) for a in "xyz"] for row in mine])
        geometry = read_volume_info(record.image_path)
        np.testing.assert_allclose(geometry.index_to_world(voxels), world, atol=1e-3)
        saved = read_markups(marks / f"{record.id}.mrk.json")
        np.testing.assert_allclose(saved.points_lps, world, atol=1e-3)


def test_predict_names_an_unreadable_volume_and_goes_on(briefly_trained, tmp_path):
    data, checkpoint = briefly_trained
    good = synthetic_volumes_dataset(data).split_records("test")[0].image_path
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b not a volume")
    out = tmp_path / "pred.csv"
    r = CliRunner().invoke(app, ["predict", good, str(bad), "--checkpoint", str(checkpoint),
                                 "--out", str(out)])
    assert r.exit_code == 2 and "broken.nii.gz" in r.output and "Traceback" not in r.output
    assert out.is_file()


@pytest.mark.parametrize("code", ["RAS", "PIR", "SLA"])
def test_a_volume_saved_in_another_orientation_gives_the_same_world_points(briefly_trained,
                                                                          tmp_path, code):
    """Every volume is turned to one orientation before the network (as in training), so
    the same anatomy stored with permuted or flipped axes gives the same world points;
    the voxel points are those of each file's own grid."""
    from unilandmark.imageio.reorient import reoriented
    from unilandmark.imageio.volume import read_volume, write_volume
    from unilandmark.inference.volume_detector import VolumeDetector

    data, checkpoint = briefly_trained
    path = synthetic_volumes_dataset(data).split_records("test")[0].image_path
    array, geometry = read_volume(path)
    turned_array, turned = reoriented(array, geometry, code)
    assert turned.orientation_code() == code
    other = tmp_path / f"turned_{code}.nii.gz"
    write_volume(other, turned_array, turned)
    detector = VolumeDetector.from_checkpoint(checkpoint)
    a, b = detector.predict(path), detector.predict(other)
    np.testing.assert_allclose(b.world, a.world, atol=1e-3)
    np.testing.assert_allclose(turned.index_to_world(b.voxels), b.world, atol=1e-3)


def test_evaluate_scores_volume_predictions_in_mm(briefly_trained, tmp_path):
    """predict -> evaluate on the phantoms' test split: errors in mm in 3-D, equal to the
    ones computed from the written voxel points by hand; the ground truth scores 0."""
    data, checkpoint = briefly_trained
    spec = synthetic_volumes_dataset(data)
    records = spec.split_records("test")
    out = tmp_path / "pred.csv"
    r = CliRunner().invoke(app, ["predict", *[r.image_path for r in records], "--checkpoint",
                                 str(checkpoint), "--out", str(out)])
    assert r.exit_code == 0, r.output
    report_path = tmp_path / "report.json"
    r = CliRunner().invoke(app, ["evaluate", "synthetic-volumes", "--root", str(data),
                                 "--split", "test", "--predictions", str(out), "--json",
                                 str(report_path)])
    assert r.exit_code == 0, r.output
    import json

    report = json.loads(report_path.read_text())
    rows = list(csv.DictReader(out.open()))
    by_image = {rec.id: rec for rec in records}
    errors = []
    for row in rows:
        rec = by_image[row["image"]]
        k = int(row["landmark"]) - 1
        if rec.visible[k]:
            diff = (np.array([float(row[a]) for a in "xyz"]) - rec.points[k]) * rec.spacing
            errors.append(np.linalg.norm(diff))
    assert report["unit"] == "mm" and report["n_images"] == len(records)
    assert report["mre"] == pytest.approx(np.mean(errors), rel=1e-3)
    # the ground truth itself, written as a prediction table, scores 0
    truth = tmp_path / "truth.csv"
    with truth.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "landmark", "x", "y", "z", "frame"])
        for rec in records:
            for k, p in enumerate(rec.points):
                w.writerow([rec.id, k + 1, *(["", "", ""] if not rec.visible[k] else p),
                            "voxel"])
    r = CliRunner().invoke(app, ["evaluate", "synthetic-volumes", "--root", str(data),
                                 "--split", "test", "--predictions", str(truth), "--json",
                                 str(report_path)])
    assert r.exit_code == 0, r.output
    assert json.loads(report_path.read_text())["mre"] == pytest.approx(0.0, abs=1e-9)
