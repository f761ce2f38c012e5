"""Hardening, round two: measure, evaluate, the long csv table and the ONNX device.

Each refusal is one sentence naming the file (or option) and the fault, exit code 2 (1 for
`datasets check`), and nothing written (docs/refusals.md). Tiny tables, no training.
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.bad_inputs import assert_refused, assert_unchanged, cli, phantom_images, snapshot
from unilandmark import csv_dataset
from unilandmark.core.errors import InputError
from unilandmark.measure import builtin_specs, measure, measure_batch

ISBI = builtin_specs()["isbi2015"]
NAMES = tuple(ISBI.landmarks)


def _heads(n: int = 2) -> np.ndarray:
    return np.random.default_rng(3).uniform(200, 1800, size=(n, len(NAMES), 2))


def _write_rows(path: Path, header, rows) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _isbi_csv(path: Path, points: np.ndarray, ids, names=None) -> Path:
    names = names or [NAMES] * len(ids)
    rows = [[rid, k + 1, repr(float(x)), repr(float(y)), names[n][k]]
            for n, rid in enumerate(ids) for k, (x, y) in enumerate(points[n])]
    return _write_rows(path, ["image", "landmark", "x", "y", "name"], rows)


# -- 1. coordinates beyond a sane range ----------------------------------------------------
def test_measure_refuses_a_point_beyond_a_sane_range_naming_file_image_landmark(tmp_path):
    points = _heads()
    points[1, 1] = (1e308, -1e308)  # image b, landmark 2 (nasion)
    src = _isbi_csv(tmp_path / "p.csv", points, ["a", "b"])
    before = snapshot(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning on the way to the refusal
        r = cli("measure", src)
    out = assert_refused(r, 2, "p.csv: record b: line 22: landmark 2 (nasion): coordinates "
                               "(1e+308, -1e+308) lie beyond +-1e+06 pixels")
    assert "record a" not in out
    assert_unchanged(tmp_path, before)  # no p_measurements.csv


def test_measure_api_refuses_such_points_too_and_allows_missing_ones():
    points = _heads(1)
    points[0, 4] = (np.inf, 3.0)
    with pytest.raises(InputError, match=r"image 0, landmark 'subspinale': coordinates "
                                         r"\(inf, 3\) are not finite"):
        measure(ISBI, points[0], NAMES)
    points[0, 4] = (2e6, 3.0)
    with pytest.raises(InputError, match="beyond"):
        measure_batch(ISBI, points, NAMES)
    points[0, 4] = (np.nan, np.nan)  # a missing landmark: measured as NaN, not refused
    assert np.isnan(measure(ISBI, points[0], NAMES)["SNA"])


def test_measure_refuses_an_implausible_spacing_in_the_file(tmp_path):
    src = tmp_path / "p.csv"
    points = _heads(1)
    rows = [["a", k + 1, x, y, NAMES[k], "1e300", "1e300"] for k, (x, y) in enumerate(points[0])]
    _write_rows(src, ["image", "landmark", "x", "y", "name", "spacing_x", "spacing_y"], rows)
    r = cli("measure", src)
    assert_refused(r, 2, "p.csv: record a: line 2: spacing_x, spacing_y: implausible spacing "
                         "(1e+300, 1e+300) mm per pixel")


# -- 2. names that disagree with numbers; a spec naming an unknown landmark ----------------
def test_measure_reports_names_that_the_spec_numbers_otherwise_all_together(tmp_path):
    swapped = list(NAMES)
    swapped[0], swapped[2] = swapped[2], swapped[0]  # 1 says orbitale, 3 says sella
    src = _isbi_csv(tmp_path / "p.csv", _heads(1), ["b"], [swapped])
    before = snapshot(tmp_path)
    r = cli("measure", src)
    assert_refused(
        r, 2, "p.csv: 2 fault(s)",
        "p.csv: record b: landmark 1 is named 'orbitale', but spec isbi2015 numbers "
        "'orbitale' 3 and 1 'sella': the names and numbers disagree",
        "p.csv: record b: landmark 3 is named 'sella', but spec isbi2015 numbers 'sella' 1")
    assert_unchanged(tmp_path, before)
    # two images of one file that number the same names differently: named by line
    src = _isbi_csv(tmp_path / "p.csv", _heads(), ["a", "b"], [NAMES, swapped])
    r = cli("measure", src)
    assert_refused(r, 2, "p.csv: record b: line 21: landmark 1 is named 'orbitale' here but "
                         "'sella' for image a (line 2): the names and numbers disagree",
                   "record b: line 23: landmark 3 is named 'sella' here but 'orbitale'")


def test_measure_reports_names_that_disagree_between_images(tmp_path):
    src = tmp_path / "p.csv"
    src.write_text("image,landmark,x,y,name\na,1,10,10,tip\na,2,20,30,base\n"
                   "b,1,11,10,base\nb,2,21,30,tip\nc,1,1,1,tip\nc,2,1,2,tip\n")
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nmeasurements:\n  - {name: len, distance: [tip, base], unit: px}\n")
    r = cli("measure", src, "--spec", spec)
    assert_refused(r, 2, "3 fault(s)",
                   "p.csv: record b: line 4: landmark 1 is named 'base' here but 'tip' for "
                   "image a (line 2): the names and numbers disagree",
                   "p.csv: record b: line 5: landmark 2 is named 'tip' here but 'base'",
                   "p.csv: record c: line 7: landmark 2 is named 'tip', and so is landmark 1")


def test_a_spec_naming_an_unknown_landmark_names_it_and_the_closest_names(tmp_path):
    src = _isbi_csv(tmp_path / "p.csv", _heads(1), ["a"])
    spec = tmp_path / "s.yaml"
    spec.write_text("name: typo\nmeasurements:\n"
                    "  - {name: SN, distance: [sella, nasoin], unit: px}\n"
                    "  - {name: Go, distance: [sella, gonoin], unit: px}\n")
    before = snapshot(tmp_path)
    r = cli("measure", src, "--spec", spec)
    assert_refused(r, 2, "p.csv: measurement spec 'typo' reads landmark(s) that do not exist "
                         "here: 'nasoin' (closest: 'nasion'", "'gonoin' (closest: 'gonion'",
                   "the landmarks are: sella, nasion")
    assert_unchanged(tmp_path, before)  # not "defined for 0"


def test_evaluate_names_the_unknown_landmark_of_a_measurement_spec(tmp_path):
    phantom_images(tmp_path, ["a.png"])
    (tmp_path / "t.csv").write_text("image,tip_x,tip_y,base_x,base_y\na.png,3,4,10,12\n")
    (tmp_path / "pred.csv").write_text("image,landmark,x,y\na,1,3,4\na,2,10,12\n")
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nmeasurements:\n  - {name: len, distance: [tip, bsae], unit: px}\n")
    r = cli("evaluate", "csv", "--root", tmp_path / "t.csv", "--split", "all",
            "--predictions", tmp_path / "pred.csv", "--measurement-spec", spec)
    assert_refused(r, 2, "csv: measurement spec 's' reads landmark(s) that do not exist here: "
                         "'bsae' (closest: 'base')")


# -- 3. millimetres in x, y ----------------------------------------------------------------
def _mm_case(tmp_path, spacing: str, factor: float, spacing_columns: str | None = None):
    phantom_images(tmp_path, ["a.png", "b.png"])
    (tmp_path / "t.csv").write_text("image,spacing,x1,y1,x2,y2\n"
                                    f"a.png,{spacing},3,4,10,12\nb.png,{spacing},5,6,20,22\n")
    points = {"a": [(3, 4), (10, 12)], "b": [(5, 6), (20, 22)]}
    extra = ",spacing_x,spacing_y" if spacing_columns else ""
    lines = ["image,landmark,x,y,x_mm,y_mm" + extra]
    for rid, pts in points.items():
        for k, (x, y) in enumerate(pts):
            tail = f",{spacing_columns},{spacing_columns}" if spacing_columns else ""
            lines.append(f"{rid},{k + 1},{x * factor:g},{y * factor:g},{x * factor:g},"
                         f"{y * factor:g}{tail}")
    (tmp_path / "pred.csv").write_text("\n".join(lines) + "\n")
    return ["evaluate", "csv", "--root", tmp_path / "t.csv", "--split", "all",
            "--predictions", tmp_path / "pred.csv", "--json", tmp_path / "r.json"]


def test_evaluate_refuses_x_y_that_hold_the_millimetres(tmp_path):
    args = _mm_case(tmp_path, "0.1", 0.1)
    before = snapshot(tmp_path)
    out = assert_refused(cli(*args), 2,
                         "pred.csv: x, y equal x_mm, y_mm in all 4 rows that give both, but "
                         "the spacing is 0.1 x 0.1 mm per pixel (image a, the spacing of csv): "
                         "x, y look like millimetres, not pixels")
    assert len(out.strip().splitlines()) == 1
    assert_unchanged(tmp_path, before)  # no r.json


def test_evaluate_refuses_them_against_the_files_own_spacing(tmp_path):
    r = cli(*_mm_case(tmp_path, "1", 0.1, spacing_columns="0.1"))
    assert_refused(r, 2, "(image a, the file's spacing_x, spacing_y)", "look like millimetres")


def test_evaluate_accepts_equal_columns_where_the_spacing_is_1(tmp_path):
    r = cli(*_mm_case(tmp_path, "1", 1.0))
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "r.json").read_text())["mre"] == 0


# -- 4. the long csv table: a missing row is a fault ---------------------------------------
def test_long_table_rows_missing_for_an_image_are_faults_listed_together(tmp_path):
    phantom_images(tmp_path, ["a.png", "b.png", "c.png"])
    (tmp_path / "long.csv").write_text(
        "image,landmark,x,y\na,1,1,2\na,2,3,4\na,3,5,6\na,4,7,8\nb,1,1,2\nb,4,7,8\n"
        "c,1,1,2\nc,2,3,4\nc,3,5,6\n")
    before = snapshot(tmp_path)
    r = cli("datasets", "check", "csv", "--root", tmp_path / "long.csv")
    out = assert_refused(r, 1, "long.csv: record b: no row for landmark(s) 2-3 of 1..4",
                         "long.csv: record c: no row for landmark(s) 4 of 1..4",
                         "with x and y empty for one not visible")
    assert "record a" not in out
    assert_unchanged(tmp_path, before)


def test_long_table_with_landmarks_marked_not_visible_still_loads(tmp_path):
    phantom_images(tmp_path, ["a.png", "b.png"])
    (tmp_path / "long.csv").write_text("image,landmark,x,y,name\na,1,1,2,tip\na,2,3,4,base\n"
                                       "b,1,5,6,tip\nb,2,,,base\n")
    spec = csv_dataset(tmp_path / "long.csv")
    assert spec.record_map()["b"].visible.tolist() == [True, False]


def test_exported_ground_truth_keeps_rows_of_landmarks_not_visible(tmp_path):
    phantom_images(tmp_path, ["a.png", "b.png"])
    (tmp_path / "t.csv").write_text("image,x1,y1,x2,y2\na.png,3,4,10,12\nb.png,5,6,,\n")
    r = cli("datasets", "export", "csv", "--root", tmp_path / "t.csv", "--split", "all",
            "--out", tmp_path / "gt.csv")
    assert r.exit_code == 0, r.output
    assert "b,2,,,2" in (tmp_path / "gt.csv").read_text()
    again = csv_dataset(tmp_path / "gt.csv", images=tmp_path)  # reads its own export back
    assert again.record_map()["b"].visible.tolist() == [True, False]


# -- 5. predict --model x.onnx --device --------------------------------------------------
@pytest.mark.parametrize("device, fault", [
    ("foo", "--device 'foo': unknown device; an ONNX model runs on cpu, auto, cuda or cuda:N"),
    ("cpu:1", "--device 'cpu:1': unknown device"),
    ("mps", "--device mps: an ONNX model runs on onnxruntime's CPU or CUDA provider, not on "
            "Apple MPS"),
])
def test_predict_with_an_onnx_model_refuses_an_unknown_device(tmp_path, device, fault):
    phantom_images(tmp_path, ["a.png"])
    (tmp_path / "model.onnx").write_bytes(b"checked after the device")
    before = snapshot(tmp_path)
    r = cli("predict", tmp_path / "a.png", "--model", tmp_path / "model.onnx", "--device",
            device, "--out", tmp_path / "p.csv")
    assert_refused(r, 2, fault)
    assert_unchanged(tmp_path, before)


def test_the_onnx_runner_refuses_an_unknown_device_in_python(tmp_path):
    from unilandmark.export.runner import OnnxDetector

    with pytest.raises(InputError, match="device 'gpu': unknown device"):
        OnnxDetector(tmp_path / "missing.onnx", device="gpu")
