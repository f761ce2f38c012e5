"""Quality flags: evidence, the risk model, the threshold rule, QC, the CSV columns and
the evaluation of flags (docs/quality.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unilandmark.core.types import Record
from unilandmark.evaluation.quality import quality_report, risk_coverage
from unilandmark.inference.detector import LandmarkResult
from unilandmark.predictions.table import (
    PredictionError,
    PredictionTable,
    prediction_rows,
    read_predictions,
    write_predictions,
)
from unilandmark.quality.calibration import (
    choose_threshold,
    fit_calibration,
    fit_logistic,
    fit_risk_model,
)
from unilandmark.quality.evidence import assess, evidence, outside_image, qc_status, risk

META = {"input_size": [100, 50], "resize": "stretch", "num_landmarks": 3}


def _result(points, stage_conf, residual=None, shift=None, spread=None, size=(400, 200)):
    k = len(points)
    return LandmarkResult(
        id="a", domain="d", names=tuple(f"p{i}" for i in range(k)),
        points=np.asarray(points, dtype=np.float32),
        confidence=np.asarray(stage_conf[-1], dtype=np.float32), spacing=None,
        points_mm=None, shape_residual=None if residual is None else np.asarray(residual),
        stage_confidence=np.asarray(stage_conf, dtype=np.float32), image_size=size,
        refinement_shift=None if shift is None else np.asarray(shift, dtype=np.float32),
        crop_spread=None if spread is None else np.asarray(spread, dtype=np.float32))


def test_evidence_is_unit_free_and_marks_what_is_missing():
    r = _result([[10, 10], [20, 20], [30, 30]], [[0.5, 1.0, 0.01], [0.9, np.nan, 0.2]],
                residual=[0.0, 1.0, 9.0], shift=[0.0, 4.0, 40.0],
                spread=[[np.nan] * 3, [8.0, np.nan, 0.0]])
    f = evidence(r, META)
    # stage-1 network pixel = 4 original pixels (400 / 100, 200 / 50)
    np.testing.assert_allclose(f["stage1"], -np.log([0.5, 1.0, 0.01]), rtol=1e-6)
    np.testing.assert_allclose(f["final"][[0, 2]], -np.log([0.9, 0.2]), rtol=1e-6)
    assert np.isnan(f["final"][1])  # a gated stage left landmark 2 alone
    np.testing.assert_allclose(f["shape"], np.log1p([0.0, 1.0, 9.0]))
    np.testing.assert_allclose(f["shift"], np.log1p([0.0, 1.0, 10.0]), rtol=1e-6)
    np.testing.assert_allclose(f["spread"][[0, 2]], np.log1p([2.0, 0.0]), rtol=1e-6)
    # the same image at twice the resolution gives the same shift and spread evidence
    r2 = _result(r.points * 2, r.stage_confidence, r.shape_residual, r.refinement_shift * 2,
                 r.crop_spread * 2, size=(800, 400))
    f2 = evidence(r2, META)
    np.testing.assert_allclose(f2["shift"], f["shift"], rtol=1e-6)
    # one stage only: no final, shift or spread evidence
    one = evidence(_result([[1, 1]] * 3, [[0.5, 0.5, 0.5]]), META)
    assert all(np.isnan(one[n]).all() for n in ("final", "shape", "shift", "spread"))


def test_points_outside_the_image_are_always_flagged():
    pts = np.array([[-0.5, 0], [399.5, 199.5], [-0.6, 10], [10, 199.6], [np.nan, 1]])
    assert outside_image(pts, (400, 200)).tolist() == [False, False, True, True, True]
    r = _result(pts, [[0.9] * 5])
    cal = {"features": [], "mean": [], "scale": [], "weights": [], "bias": -20.0,
           "threshold": 0.5}
    for c in (None, cal):
        out = assess(r, META, c)
        assert out.flags.tolist() == [False, False, True, True, True]
        assert out.qc == "fail"  # 3 of 5 flagged
    assert assess(r, META, cal).risk is not None and assess(r, META, None).risk is None


def test_uncalibrated_flags_only_far_off_the_training_shapes():
    r = _result([[10, 10]] * 4, [[0.01, 0.9, 0.9, 0.9]], residual=[1.0, 2.0, 7.0, np.nan])
    out = assess(r, META, None)
    assert out.flags.tolist() == [False, False, True, False]
    assert out.qc == "review"


def test_qc_status():
    assert qc_status(np.zeros(19, bool)) == "pass"
    assert qc_status(np.eye(19, dtype=bool)[0]) == "review"
    assert qc_status(np.arange(19) < 10) == "fail"
    assert qc_status(np.arange(19) < 9) == "review"
    assert qc_status(np.arange(19) < 5, fail_fraction=0.25) == "fail"


def test_logistic_fit_recovers_a_known_model():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 2))
    p = 1 / (1 + np.exp(-(1.5 * x[:, 0] + 0.5 * x[:, 1] - 2.0)))
    y = rng.random(20000) < p
    w, b = fit_logistic(x, y, ridge=1e-3)
    np.testing.assert_allclose(w, [1.5, 0.5], atol=0.08)
    assert b == pytest.approx(-2.0, abs=0.08)


def test_risk_model_is_finite_without_bad_points_and_drops_negative_weights():
    rng = np.random.default_rng(1)
    good = {"stage1": rng.normal(size=200), "final": rng.normal(size=200)}
    model = fit_risk_model(good, np.zeros(200, bool))
    assert np.isfinite(model["bias"]) and model["bias"] < -4
    assert risk(good, model).max() < 0.05
    # "final" goes the wrong way (higher surprise, fewer errors): dropped, not used
    x = rng.normal(size=2000)
    wrong = rng.random(2000) < 1 / (1 + np.exp(-(2 * x - 2)))
    feats = {"stage1": x, "final": -1.0 * wrong + rng.normal(size=2000),
             "shape": np.full(2000, 0.3)}  # constant: unused
    model = fit_risk_model(feats, wrong)
    assert model["features"] == ["stage1"] and model["weights"][0] > 0


def test_risk_counts_a_missing_feature_as_its_mean():
    model = {"features": ["stage1", "shape"], "mean": [1.0, 2.0], "scale": [1.0, 1.0],
             "weights": [1.0, 3.0], "bias": 0.0}
    p = risk({"stage1": np.array([1.0, 1.0]), "shape": np.array([np.nan, 2.0])}, model)
    assert p[0] == pytest.approx(0.5) and p[1] == pytest.approx(0.5)


def test_threshold_rule_reaches_the_target_recall_within_the_budget():
    risks = np.linspace(0, 1, 101)
    wrong = risks > 0.8  # 20 wrong points, the riskiest
    t = choose_threshold(risks, wrong, target_recall=0.8, max_flagged=None)
    flags = risks >= t
    assert (flags & wrong).sum() / wrong.sum() >= 0.8
    assert t == pytest.approx(risks[wrong][4])  # the highest such threshold
    # a budget of 10 % raises the threshold
    t = choose_threshold(risks, wrong, target_recall=0.8, max_flagged=0.10)
    assert (risks >= t).mean() <= 0.10
    # nothing wrong on validation: flag what is more likely wrong than not
    assert choose_threshold(risks, np.zeros(101, bool), max_flagged=None) == 0.5


def test_calibration_is_calibrated_and_separates_on_simulated_points():
    """Points whose error grows with the evidence: the fitted risk matches the observed
    error rate, and the flags catch most wrong points of a new sample."""
    rng = np.random.default_rng(2)

    def sample(n_images, k=19):
        surprise = rng.gamma(2.0, 0.5, size=(n_images, k))
        shape = np.abs(rng.normal(size=(n_images, k))) * 0.5
        scale = 0.5 * np.exp(0.9 * surprise + 1.0 * shape)
        errors = scale * np.sqrt(rng.chisquare(2, size=(n_images, k)) / 2)
        feats = {"stage1": surprise.ravel(), "shape": shape.ravel(),
                 "final": np.full(n_images * k, np.nan)}
        return feats, errors.ravel(), np.repeat(np.arange(n_images), k)

    feats, errors, groups = sample(20)
    cal = fit_calibration(feats, errors, groups, radius=4.0, unit="mm",
                          source={"dataset": "simulated"})
    assert cal["features"] == ["stage1", "shape"]
    assert cal["validation"]["n_images"] == 20 and cal["validation"]["dataset"] == "simulated"
    test, errors2, _ = sample(400)
    p = risk(test, cal)
    wrong = errors2 > 4.0
    for lo, hi in ((0.0, 0.1), (0.1, 0.4), (0.4, 1.0)):
        sel = (p >= lo) & (p < hi)
        assert abs(wrong[sel].mean() - p[sel].mean()) < 0.08
    flags = p >= cal["threshold"]
    # about 12 % of the points are wrong and at most 10 % may be flagged: the flags are
    # several times purer than chance and keep to the budget on new images
    assert (flags & wrong).sum() / flags.sum() > 4 * wrong.mean()
    assert (flags & wrong).sum() / wrong.sum() > 0.4
    assert flags.mean() < 0.13


def test_csv_quality_columns_round_trip(tmp_path):
    pts = np.array([[[812.3, 1.0], [2.5, 3.25]]], dtype=np.float32)
    rows = prediction_rows(["a"], pts, ("p", "q"), confidence=[np.array([0.9, 0.2])],
                           domain="head", risk=[np.array([0.01, 0.75])],
                           flags=[np.array([False, True])], qc=["review"])
    assert rows[0]["x"] == "812.3"  # float32 written as its shortest text
    write_predictions(tmp_path / "p.csv", rows)
    header = (tmp_path / "p.csv").read_text().splitlines()[0]
    assert header == "image,landmark,x,y,name,confidence,domain,risk,flag,qc"
    table = read_predictions(tmp_path / "p.csv")
    assert np.float32(table.points[("a", 1)][0]) == pts[0, 0, 0]
    assert table.flags == {("a", 1): False, ("a", 2): True}
    assert table.risk[("a", 2)] == pytest.approx(0.75)
    assert table.qc == {"a": "review"}


def test_csv_bad_quality_cells_are_reported_together(tmp_path):
    (tmp_path / "p.csv").write_text(
        "image,landmark,x,y,risk,flag,qc\n"
        "a,1,1,1,1.5,0,pass\n"
        "a,2,1,1,0.1,yes,pass\n"
        "a,3,1,1,0.1,1,fail\n"
        "b,1,1,1,0.1,0,maybe\n")
    with pytest.raises(PredictionError) as err:
        read_predictions(tmp_path / "p.csv")
    text = str(err.value)
    assert "risk is not a number in 0..1" in text and "flag must be 0 or 1" in text
    assert "differs from the image's earlier rows" in text and "qc must be one of" in text


def test_quality_report_scores_flags_qc_and_risk_coverage():
    records = [Record(f"i{n}", "", np.zeros((4, 2)), np.ones(4, bool)) for n in range(3)]
    errors = np.array([[1.0, 5.0, 1.0, 1.0], [1.0, 1.0, 1.0, 9.0], [6.0, 7.0, 8.0, 0.5]])
    flagged = {("i0", 2), ("i1", 1), ("i2", 1), ("i2", 2)}
    keys = [(f"i{n}", k + 1) for n in range(3) for k in range(4)]
    table = PredictionTable(
        "t", {k: (0.0, 0.0) for k in keys}, {k: 0.5 for k in keys},
        risk={k: float(errors[int(k[0][1]), k[1] - 1]) / 10 for k in keys},
        flags={k: k in flagged for k in keys},
        qc={"i0": "review", "i1": "review", "i2": "fail"})
    q = quality_report(table, records, errors, 4.0, "mm")
    f = q["flags"]
    assert (f["n_points"], f["n_wrong"], f["n_flagged"]) == (12, 5, 4)
    assert f["precision"] == pytest.approx(3 / 4) and f["recall"] == pytest.approx(3 / 5)
    assert q["qc"]["fail"]["images"] == 1 and q["qc"]["pass"]["images"] == 0
    assert q["qc"]["fail"]["error_rate"] == pytest.approx(75.0)
    rc = q["risk_coverage"]
    assert rc["ordered_by"] == "risk"
    assert rc["aurc"] == pytest.approx(rc["aurc_ideal"])  # risk orders like the errors
    assert rc["error_rate"][-1] == pytest.approx(100 * 5 / 12)
    assert rc["error_rate"][rc["coverage"].index(0.55)] == 0.0


def test_risk_coverage_of_a_useless_order_is_flat():
    errors = np.array([5.0, 1.0] * 50)
    rc = risk_coverage(np.zeros(100), errors, 4.0)
    assert rc["error_rate"][-1] == 50.0 and rc["aurc"] > rc["aurc_ideal"] + 10


def test_refine_points_reports_the_spread_of_the_offset_crops():
    """A patch model that always answers 'the patch centre': the crops shifted by the
    test offsets decode to points that far apart, in original pixels."""
    from unilandmark.codecs import HeatmapCodec
    from unilandmark.core.geometry import fit_geometry
    from unilandmark.inference.refine import refine_points

    size = 16

    class Centre(torch.nn.Module):
        def forward(self, x, domain):
            c = (size - 1) / 2
            ys, xs = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(),
                                    indexing="ij")
            g = torch.exp(-((xs - c) ** 2 + (ys - c) ** 2) / (2 * 2.0 ** 2))
            logits = torch.logit(g.clamp(1e-4, 1 - 1e-4))
            return {"heatmap": logits.expand(x.shape[0], 2, size, size)}

    geometry = fit_geometry((200, 100), (100, 50))  # 2 original pixels per resized pixel
    image = torch.zeros(1, 50, 100)
    pts = np.array([[[60.0, 40.0], [120.0, 50.0]]])
    out, conf = refine_points(Centre(), HeatmapCodec(2.0), "d", [image], [geometry], pts, size,
                              test_offsets=3.0)
    assert out.shape == (1, 2, 2) and conf.shape == (1, 2)
    out, conf, spread = refine_points(Centre(), HeatmapCodec(2.0), "d", [image], [geometry],
                                      pts, size, test_offsets=3.0, return_spread=True)
    np.testing.assert_allclose(out, pts, atol=1e-3)  # the offsets average out
    np.testing.assert_allclose(spread, 2 * 3.0 * np.sqrt(4 / 5), rtol=1e-3)
    *_, spread = refine_points(Centre(), HeatmapCodec(2.0), "d", [image], [geometry], pts, size,
                               return_spread=True)
    assert np.isnan(spread).all()  # one crop: no spread


def test_a_calibration_keeps_the_hard_rules():
    """A calibration that sees no risk anywhere (bias -20) still flags what the
    uncalibrated rules flag: a point outside the image, an implausible shape."""
    r = _result([[10, 10], [10, 10], [-5, 10]], [[0.9] * 3], residual=[1.0, 7.0, 1.0])
    cal = {"features": [], "mean": [], "scale": [], "weights": [], "bias": -20.0,
           "threshold": 0.5, "fail_fraction": 0.9}
    plain, calibrated = assess(r, META, None), assess(r, META, cal)
    assert plain.flags.tolist() == calibrated.flags.tolist() == [False, True, True]
    assert plain.qc == calibrated.qc == "fail"  # 2 of 3: a stored fail_fraction never lowers it


def test_calibration_on_too_few_misses_or_images_carries_warnings():
    rng = np.random.default_rng(3)
    n_img, k = 6, 5
    feats = {"stage1": rng.normal(size=n_img * k), "index": np.tile(np.arange(k), n_img)}
    groups = np.repeat(np.arange(n_img), k)
    easy = fit_calibration(feats, np.full(n_img * k, 0.5), groups, radius=4.0, unit="mm")
    warnings = easy["validation"]["warnings"]
    assert len(warnings) == 2
    assert warnings[0].startswith("only 0 of the 30 validation points are wrong (error above "
                                  "4 mm)") and "still apply" in warnings[0]
    assert warnings[1].startswith("only 6 validation images")
    n_img = 12
    feats = {"stage1": rng.normal(size=n_img * k), "index": np.tile(np.arange(k), n_img)}
    errors = np.where(np.arange(n_img * k) % 6 == 0, 9.0, 0.5)  # 10 misses
    fine = fit_calibration(feats, errors, np.repeat(np.arange(n_img), k), 4.0, "mm")
    assert fine["validation"]["warnings"] == []


@pytest.mark.parametrize("change, fault", [
    ({"features": ["stage1", "magic"]}, "features must be a list of stage1"),
    ({"weights": [1.0]}, "weights must be 2 finite numbers"),
    ({"mean": [0.0, float("nan")]}, "mean must be 2 finite numbers"),
    ({"scale": [1.0, 0.0]}, "scale must be positive"),
    ({"bias": "x"}, "bias must be a finite number"),
    ({"threshold": 2.0}, "threshold must be a number in 0..1"),
    ({"landmark_prior": [0.1]}, "landmark_prior must be 3 finite numbers"),
    ("not a dict", "not a mapping"),
])
def test_a_crafted_calibration_is_refused_with_its_key(change, fault):
    from unilandmark.core.modelmeta import calibration_fault

    good = {"features": ["stage1", "landmark"], "mean": [0.0, 0.0], "scale": [1.0, 1.0],
            "weights": [1.0, 1.0], "bias": 0.0, "threshold": 0.5,
            "landmark_prior": [0.0, 0.1, 0.2]}
    assert calibration_fault(good, 3) is None and calibration_fault(None, 3) is None
    bad = {**good, **change} if isinstance(change, dict) else change
    assert calibration_fault(bad, 3).startswith("calibration: ")
    assert fault in calibration_fault(bad, 3)
