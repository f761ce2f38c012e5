"""Coarse to fine in volumes (a volume stage, then a volume-patch stage) and absent
landmarks: the plumbing on briefly trained models, the accuracy in the slow learning
test (tests/volume_cascade_learning.py)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from unilandmark.cli import app
from unilandmark.core.errors import InputError
from unilandmark.data.markups import read_markups
from unilandmark.data.synthetic3d import synthetic_volumes_dataset
from unilandmark.quality.presence import (
    choose_presence_threshold,
    landmark_presence_thresholds,
    presence_counts,
)
from unilandmark.training.config import load_config

from .volume_cascade_learning import (
    patch_config,
    score_on_test_split,
    train_cascade,
    write_absent_phantoms,
)

#: bounds of the slow learning test from the spread of 5 seeds (docs/volumes.md, "Coarse to
#: fine"; `OMP_NUM_THREADS=1 PYTHONPATH=. python -m tests.volume_cascade_learning`):
#: coarse 1.69-2.17 mm, cascade 0.98-1.27 mm, cascade / mean shape 0.27-0.36; absent
#: precision 0.60-1.0 and recall 0.50-1.0 (seed 0, the test's: 1.0 and 1.0)
BOUND_COARSE_MM = 3.25  # 1.5 x the worst seed
BOUND_CASCADE_MM = 1.9  # 1.5 x the worst seed
BOUND_RATIO = 0.54  # 1.5 x the worst seed
BOUND_PRECISION = 0.4  # the worst seed / 1.5
BOUND_RECALL = 0.33  # the worst seed / 1.5
#: the 2.5-D refiner (triplanar) on the same coarse stage, 3 seeds (`python -m
#: tests.volume_cascade_learning --seeds 0,1,2 --refiners triplanar`): 1.73-1.85 mm, over
#: the mean shape 0.47-0.62 (it does not beat the coarse pass here: docs/volumes.md)
BOUND_TRIPLANAR_MM = 2.77  # 1.5 x the worst seed
BOUND_TRIPLANAR_RATIO = 0.93  # 1.5 x the worst seed


@pytest.fixture(scope="module")
def cascade(tmp_path_factory):
    """A coarse volume model and a patch stage on top, 2 epochs each: the plumbing."""
    root = tmp_path_factory.mktemp("cascade")
    data = write_absent_phantoms(root / "data")
    coarse, patch = train_cascade(data, root, coarse_epochs=2, patch_epochs=2)
    return data, coarse.best_path, patch.best_path


def test_choose_presence_threshold():
    present = np.array([[True, True, False], [True, True, False]])
    conf = np.array([[0.8, 0.6, 0.1], [0.7, 0.5, 0.2]])
    t = choose_presence_threshold(conf, present)
    assert 0.2 < t <= 0.5  # separates the two groups exactly
    assert choose_presence_threshold(conf[:, :2], present[:, :2]) == pytest.approx(0.25)
    # overlapping groups: the best F1 of "absent", not a perfect split
    conf2 = np.array([[0.8, 0.3, 0.35], [0.7, 0.6, 0.1]])
    t2 = choose_presence_threshold(conf2, present)
    assert 0.35 < t2 < 0.6  # both absent found at the cost of one present (F1 0.8)
    # rare absent landmarks among many present ones with lower peaks: few false absents
    conf3 = np.concatenate([np.linspace(0.3, 0.9, 40), [0.2, 0.45]])
    present3 = np.concatenate([np.ones(40, bool), [False, False]])
    t3 = choose_presence_threshold(conf3, present3)
    assert (conf3[present3] < t3).sum() <= 1
    assert choose_presence_threshold(conf, np.zeros_like(present)) == 0.0


def test_presence_thresholds_follow_each_landmarks_typical_peak():
    """Landmark 0 peaks near 0.9 when present, landmark 1 near 0.45; an absent landmark 0
    at 0.6 is absent, a present landmark 1 at 0.45 is present: one global threshold could
    not say both."""
    rng = np.random.default_rng(0)
    conf = np.stack([0.9 + 0.02 * rng.standard_normal(20),
                     0.45 + 0.02 * rng.standard_normal(20)], 1)
    present = np.ones((20, 2), bool)
    conf[:3, 0], present[:3, 0] = [0.6, 0.55, 0.62], False
    conf[3:6, 1], present[3:6, 1] = [0.25, 0.3, 0.28], False
    t = landmark_presence_thresholds(conf, present)
    called = conf >= np.array(t)
    assert (called == present).all()
    assert landmark_presence_thresholds(conf, present, fixed=0.3) == [0.3, 0.3]
    from unilandmark.quality.presence import thresholds_of

    assert thresholds_of(None, 3).tolist() == [0, 0, 0]
    assert thresholds_of(0.2, 2).tolist() == [0.2, 0.2]


def test_presence_counts():
    truth = np.array([[True, False, False, True]])
    pred = np.array([[False, False, True, True]])
    c = presence_counts(truth, pred)
    assert (c["truth_absent"], c["predicted_absent"], c["correctly_absent"],
            c["present_called_absent"]) == (2, 2, 1, 1)
    assert c["precision"] == 0.5 and c["recall"] == 0.5
    none = presence_counts(np.ones((1, 2), bool), np.ones((1, 2), bool))
    assert none["precision"] is None and none["recall"] is None


def test_volume_patch_stage_refuses_models_that_cannot_serve_it(tmp_path):
    with pytest.raises(InputError, match="2-D model"):
        load_config(data={"stage": {"kind": "volume-patch", "previous": "x.pt"},
                          "model": {"name": "unet"}})
    with pytest.raises(InputError, match="cannot serve as a volume stage"):
        load_config(data={"stage": {"kind": "volume"}, "model": {"name": "triplanar"}})


def test_a_patch_stage_refuses_a_2d_previous_stage(tmp_path):
    from unilandmark.checkpoints.builtin import model_path
    from unilandmark.training.fit import fit

    with pytest.raises(InputError, match="not a volume model"):
        fit(patch_config(model_path("head"), tmp_path / "run"), progress=False,
            log=lambda *_: None)


def test_the_cascade_predicts_through_both_stages(cascade, tmp_path):
    """predict with the cascade: every landmark the gate applies is refined (moved from
    the coarse answer), the others are the coarse answer exactly; absent landmarks have
    empty coordinates and are undefined in the markups."""
    from unilandmark.inference.volume_detector import VolumeDetector

    data, coarse_path, cascade_path = cascade
    record = synthetic_volumes_dataset(data).split_records("test")[0]
    coarse = VolumeDetector.from_checkpoint(coarse_path).predict(record.image_path)
    detector = VolumeDetector.from_checkpoint(cascade_path)
    assert len(detector.refiners) == 1
    fine = detector.predict(record.image_path)
    apply = detector.refiners[0].apply["head3d"]
    moved = np.linalg.norm(fine.world - coarse.world, axis=1)
    assert np.all(moved[~apply] == 0)
    assert np.all(moved[apply] > 0)
    # the confidence (and presence) is the last stage's that placed each landmark
    np.testing.assert_allclose(fine.confidence[~apply], coarse.confidence[~apply])
    detector.presence_threshold = 1.0  # everything absent
    assert not detector.predict(record.image_path).present.any()

    out, marks = tmp_path / "pred.csv", tmp_path / "marks"
    r = CliRunner().invoke(app, ["predict", record.image_path, "--checkpoint",
                                 str(cascade_path), "--out", str(out), "--markups",
                                 str(marks), "--presence-threshold", "1"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out.open()))
    assert {row["present"] for row in rows} == {"0"}
    assert all(row["x"] == "" and row["x_mm"] == "" and row["confidence"] for row in rows)
    assert np.isnan(read_markups(marks / f"{record.id}.mrk.json").points_lps).all()


def test_the_cascade_model_file_predicts_as_the_checkpoint(cascade, tmp_path):
    from unilandmark.checkpoints.checkpoint import slim_checkpoint
    from unilandmark.inference.volume_detector import VolumeDetector

    data, _, cascade_path = cascade
    model_file = tmp_path / "cascade.safetensors"
    slim_checkpoint(cascade_path, model_file, fp16=False)
    record = synthetic_volumes_dataset(data).split_records("test")[1]
    a = VolumeDetector.from_checkpoint(cascade_path).predict(record.image_path)
    b = VolumeDetector.from_checkpoint(model_file).predict(record.image_path)
    np.testing.assert_allclose(b.world, a.world, atol=1e-4)


@pytest.mark.parametrize("code", ["RAS", "PIR"])
def test_the_cascade_gives_the_same_world_points_in_another_orientation(cascade, tmp_path,
                                                                        code):
    from unilandmark.imageio.reorient import reoriented
    from unilandmark.imageio.volume import read_volume, write_volume
    from unilandmark.inference.volume_detector import VolumeDetector

    data, _, cascade_path = cascade
    path = synthetic_volumes_dataset(data).split_records("test")[2].image_path
    array, geometry = read_volume(path)
    turned_array, turned = reoriented(array, geometry, code)
    other = tmp_path / f"turned_{code}.nii.gz"
    write_volume(other, turned_array, turned)
    detector = VolumeDetector.from_checkpoint(cascade_path)
    np.testing.assert_allclose(detector.predict(other).world, detector.predict(path).world,
                               atol=1e-3)


def test_evaluate_reports_absent_precision_and_recall(cascade, tmp_path):
    data, _, cascade_path = cascade
    spec = synthetic_volumes_dataset(data)
    records = spec.split_records("test")
    truth_absent = sum(int((~r.visible).sum()) for r in records)
    assert truth_absent > 0  # the phantoms do have absent landmarks in the test split
    out = tmp_path / "pred.csv"
    r = CliRunner().invoke(app, ["predict", *[r.image_path for r in records], "--checkpoint",
                                 str(cascade_path), "--out", str(out),
                                 "--presence-threshold", "0"])
    assert r.exit_code == 0, r.output
    # make the written table call exactly the annotated-absent landmarks absent, plus one
    rows = list(csv.DictReader(out.open()))
    by_id = {rec.id: rec for rec in records}
    extra = next(i for i, row in enumerate(rows)
                 if by_id[row["image"]].visible[int(row["landmark"]) - 1])
    for i, row in enumerate(rows):
        absent = not by_id[row["image"]].visible[int(row["landmark"]) - 1] or i == extra
        if absent:
            row.update({a: "" for a in ("x", "y", "z", "x_mm", "y_mm", "z_mm")}, present="0")
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    report_path = tmp_path / "report.json"
    r = CliRunner().invoke(app, ["evaluate", "synthetic-volumes", "--root", str(data),
                                 "--split", "test", "--predictions", str(out), "--json",
                                 str(report_path)])
    assert r.exit_code == 0, r.output
    presence = json.loads(report_path.read_text())["presence"]
    assert presence["truth_absent"] == truth_absent
    assert presence["correctly_absent"] == truth_absent
    assert presence["present_called_absent"] == 1
    assert presence["recall"] == 1.0
    assert presence["precision"] == pytest.approx(truth_absent / (truth_absent + 1))
    assert "absent landmarks:" in r.output


@pytest.mark.slow
def test_the_cascade_learns_the_phantoms_and_calls_removed_landmarks_absent(tmp_path):
    data = write_absent_phantoms(tmp_path / "data")
    coarse, patch, triplanar = train_cascade(data, tmp_path,
                                             refiners=("unet3d", "triplanar"))
    c = score_on_test_split(coarse.best_path, data)
    f = score_on_test_split(patch.best_path, data)
    t = score_on_test_split(triplanar.best_path, data)
    print(f"2.5-D cascade {t['mre']:.3f} mm")
    assert t["mre"] < BOUND_TRIPLANAR_MM and t["mre"] / t["mean_shape"] < BOUND_TRIPLANAR_RATIO
    print(f"coarse {c['mre']:.3f} mm, cascade {f['mre']:.3f} mm, mean shape "
          f"{f['mean_shape']:.3f} mm, absent precision {f['precision']} recall {f['recall']}")
    assert c["mre"] < BOUND_COARSE_MM
    assert f["mre"] < BOUND_CASCADE_MM and f["mre"] / f["mean_shape"] < BOUND_RATIO
    assert f["mre"] < c["mre"]  # the full-resolution patches improve on the coarse pass
    assert f["recall"] is not None and f["recall"] >= BOUND_RECALL
    assert f["precision"] is not None and f["precision"] >= BOUND_PRECISION
