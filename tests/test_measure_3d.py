"""Measurements in 3-D: the kinds on constructed points, the AFIDs spec on the AFIDs
templates (consensus and every rater file), and ``unilandmark measure`` on a volume
prediction CSV."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from unilandmark.cli import app
from unilandmark.core.errors import InputError
from unilandmark.measure import builtin_specs, measure, measure_batch, measure_file, parse_spec
from unilandmark.measure.compute import angle
from unilandmark.measure.spec import SpecError
from unilandmark.predictions.volume_table import volume_rows, write_volume_predictions

from .conftest import _require

NAMES = ("O", "X", "Y", "Z", "P", "Q", "R", "S", "T")
# constructed points (world mm)
POINTS = np.array([
    [0.0, 0.0, 0.0],   # O
    [3.0, 0.0, 0.0],   # X
    [0.0, 4.0, 0.0],   # Y
    [0.0, 0.0, 5.0],   # Z
    [1.0, 2.0, 2.0],   # P
    [2.0, 3.0, 7.0],   # Q: P->Q = (1, 1, 5)
    [0.0, 0.0, 1.0],   # R
    [1.0, 0.0, 1.0],   # S
    [0.0, 1.0, 2.0],   # T: plane R, S, T has normal (1,0,0) x (0,1,1) = (0,-1,1)
])

SPEC = {
    "name": "constructed",
    "measurements": [
        {"name": "dist", "distance": ["P", "Q"]},
        {"name": "vertex", "angle": [["P", "O"], ["P", "X"]]},
        {"name": "lines", "angle": [["O", "P"], ["X", "Q"]]},
        {"name": "line_plane", "line_plane_angle": [["P", "Q"], ["O", "X", "Y"]]},
        {"name": "line_plane_signed", "line_plane_angle": [["Q", "P"], ["O", "X", "Y"]],
         "sign": "normal"},
        {"name": "planes", "plane_angle": [["O", "X", "Y"], ["R", "S", "T"]]},
        {"name": "point_plane", "plane_distance": ["P", ["R", "S", "T"]]},
        {"name": "point_plane_signed", "plane_distance": ["P", ["R", "S", "T"]],
         "sign": "normal"},
        {"name": "projected", "projected_distance": [["P", "Q"], ["O", "X", "Y"]]},
    ],
}


def _deg(rad: float) -> float:
    return math.degrees(rad)


def test_kinds_on_constructed_points():
    values = measure(parse_spec(SPEC), POINTS, NAMES)
    p, q, o, x = POINTS[4], POINTS[5], POINTS[0], POINTS[1]
    assert values["dist"] == pytest.approx(math.sqrt(27), abs=1e-6)
    # vertex angle at P between P->O = (-1,-2,-2) and P->X = (2,-2,-2): dot 6, norms 3, sqrt12
    assert values["vertex"] == pytest.approx(_deg(math.acos(6 / (3 * math.sqrt(12)))), abs=1e-6)
    # lines O->P = (1,2,2) and X->Q = (-1,3,7): dot 19, norms 3, sqrt(59)
    assert values["lines"] == pytest.approx(_deg(math.acos(19 / (3 * math.sqrt(59)))),
                                            abs=1e-6)
    # P->Q = (1,1,5) against the plane z = 0: asin(5 / sqrt(27))
    assert values["line_plane"] == pytest.approx(_deg(math.asin(5 / math.sqrt(27))), abs=1e-6)
    # Q->P points against the normal (0,0,9) of O, X, Y: negative
    assert values["line_plane_signed"] == pytest.approx(-_deg(math.asin(5 / math.sqrt(27))),
                                                        abs=1e-6)
    # normals (0,0,1) and (0,-1,1)/sqrt2: 45 degrees
    assert values["planes"] == pytest.approx(45.0, abs=1e-6)
    # P - R = (1,2,1); n = (0,-1,1)/sqrt2: (-2 + 1)/sqrt2
    assert values["point_plane"] == pytest.approx(1 / math.sqrt(2), abs=1e-6)
    assert values["point_plane_signed"] == pytest.approx(-1 / math.sqrt(2), abs=1e-6)
    # (1,1,5) projected onto z = 0: (1,1,0)
    assert values["projected"] == pytest.approx(math.sqrt(2), abs=1e-6)
    assert np.isfinite([p, q, o, x]).all()


def test_degenerate_and_missing_give_nan():
    pts = POINTS.copy()
    pts[2] = [6.0, 0.0, 0.0]      # Y on the line O-X: no plane
    values = measure(parse_spec(SPEC), pts, NAMES)
    for name in ("line_plane", "planes", "projected"):
        assert math.isnan(values[name])
    assert math.isfinite(values["point_plane"])
    pts = POINTS.copy()
    pts[4] = np.nan                # P missing
    values = measure(parse_spec(SPEC), pts, NAMES)
    assert math.isnan(values["dist"]) and math.isnan(values["point_plane"])
    assert math.isfinite(values["planes"])


def test_batch_matches_single_and_world_mm_needs_no_spacing():
    spec = parse_spec(SPEC)
    rng = np.random.default_rng(0)
    batch = POINTS[None] + rng.normal(0, 0.5, (4, *POINTS.shape))
    out = measure_batch(spec, batch, NAMES)
    for n in range(4):
        one = measure(spec, batch[n], NAMES)
        for name in spec.names:
            assert out[name][n] == pytest.approx(one[name], abs=1e-12)
    # voxel indices with a spacing: the same as the scaled points
    sp = np.array([0.5, 2.0, 1.5])
    scaled = measure_batch(spec, batch / sp, NAMES, spacing=sp)
    for name in spec.names:
        np.testing.assert_allclose(scaled[name], out[name], atol=1e-9)


def test_2d_angle_unchanged_and_3d_angle_in_plane_agrees():
    u = np.array([[1.0, 0.0], [1.0, 1.0], [-2.0, 0.5]])
    v = np.array([[0.0, 1.0], [1.0, -1.0], [0.3, -4.0]])
    flat = angle(np.pad(u, ((0, 0), (0, 1))), np.pad(v, ((0, 0), (0, 1))))
    np.testing.assert_allclose(angle(u, v), flat, atol=1e-12)
    assert angle(u, v)[0] == 90.0


def test_dimension_checks():
    spec3 = parse_spec(SPEC)
    with pytest.raises(InputError, match="3-D points"):
        measure(spec3, POINTS[:, :2], NAMES)
    with pytest.raises(InputError, match="2-D points"):
        measure(builtin_specs()["isbi2015"], np.zeros((19, 3)),
                builtin_specs()["isbi2015"].landmarks)
    with pytest.raises(SpecError, match="cannot share one spec"):
        parse_spec({"name": "mixed", "measurements": [
            {"name": "a", "signed_angle": [["O", "X"], ["O", "Y"]]},
            {"name": "b", "plane_angle": [["O", "X", "Y"], ["R", "S", "T"]]}]})
    with pytest.raises(SpecError, match="sign: normal"):
        parse_spec({"name": "bad", "measurements": [
            {"name": "a", "distance": ["O", "X"], "sign": "normal"}]})
    with pytest.raises(SpecError, match="sign: x"):
        parse_spec({"name": "bad", "measurements": [
            {"name": "a", "plane_distance": ["O", ["O", "X", "Y"]], "sign": "x"}]})
    assert spec3.dimensions() == 3 and builtin_specs()["isbi2015"].dimensions() == 2
    assert parse_spec({"name": "d", "measurements": [
        {"name": "a", "distance": ["O", "X"]}]}).dimensions() is None


def test_afids_spec_is_documented():
    spec = builtin_specs()["afids"]
    assert spec.domain == "brain" and spec.dimensions() == 3
    assert {"AC_PC", "ACPC_midline_angle", "AC_RLV", "AC_LLV"} <= set(spec.names)
    assert spec.resolve("AC") == "AC" and spec.resolve("PC") == "PC"
    assert all(m.description for m in spec.measurements)


# -- the AFIDs templates ---------------------------------------------------------------

def _afids(rater: str | None = None):
    from unilandmark.data.adapters.volumes import afids_templates

    return afids_templates(_require("afids_templates"), rater=rater)


def _check_afids(dataset):
    spec = builtin_specs()["afids"]
    assert dataset.landmark_names[0] == "AC" and dataset.landmark_names[1] == "PC"
    for record in dataset.records:
        values = measure(spec, record.meta["world_lps"], dataset.landmark_names)
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        assert not bad, (record.id, bad)
        assert 20.0 <= values["AC_PC"] <= 35.0, (record.id, values["AC_PC"])
        assert abs(values["ACPC_midline_angle"]) < 10.0, record.id
    return len(dataset.records)


def test_afids_spec_on_consensus():
    assert _check_afids(_afids()) == 4


def test_afids_spec_on_every_rater_file():
    consensus = _afids()
    stems = [s for t in sorted(consensus.info["rater_files"])
             for s in consensus.info["rater_files"][t]]
    if not stems:
        pytest.skip("no AFIDs rater files in ../shared/data/afids_templates/raters")
    assert sum(_check_afids(_afids(stem)) for stem in stems) == len(stems)


def test_measure_cli_on_a_volume_prediction_csv(tmp_path):
    dataset = _afids()
    rows = []
    for record in dataset.records:
        world = record.meta["world_lps"]
        present = np.ones(len(world), bool)
        if record.id == "MNI305":
            present[1] = False            # PC absent: AC_PC undefined for this volume
        rows += volume_rows(record.id, dataset.landmark_names, world, world,
                            np.ones(len(world)), "brain", present)
    src = tmp_path / "pred.csv"
    write_volume_predictions(src, rows)
    out = tmp_path / "m.csv"
    r = CliRunner().invoke(app, ["measure", str(src), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "spec afids" in r.output and "world mm" in r.output
    table = {row["image"]: row for row in csv.DictReader(out.open())}
    assert sorted(table) == sorted(rec.id for rec in dataset.records)
    spec = builtin_specs()["afids"]
    for record in dataset.records:
        want = measure(spec, record.meta["world_lps"], dataset.landmark_names)
        got = table[record.id]
        assert got["spec"] == "afids" and got["coordinates"] == "world mm"
        if record.id == "MNI305":
            assert got["AC_PC"] == ""
            continue
        for name in spec.names:
            assert float(got[name]) == pytest.approx(want[name], abs=1e-3)
    r = CliRunner().invoke(app, ["measure", str(src), "--out", str(out), "--spacing", "0.1"])
    assert r.exit_code != 0 and "world millimetres" in r.output


def test_volume_csv_in_ras_frame_and_voxel_refusal(tmp_path):
    spec = parse_spec(SPEC)
    lines = ["image,landmark,name,x,y,z,frame"]
    for k, (name, p) in enumerate(zip(NAMES, POINTS, strict=True)):
        lines.append(f"v1,{k + 1},{name},{-p[0]},{-p[1]},{p[2]},world-ras")
    src = tmp_path / "ras.csv"
    src.write_text("\n".join(lines) + "\n")
    table = measure_file(src, spec)
    want = measure(spec, POINTS, NAMES)
    for name in spec.names:
        assert table.values[name][0] == pytest.approx(want[name], abs=1e-9)
    src.write_text("\n".join(lines).replace("world-ras", "voxel") + "\n")
    with pytest.raises(InputError, match="voxel indices cannot be measured"):
        measure_file(src, spec)
