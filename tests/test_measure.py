"""Measurements: hand-computed geometry, the ISBI 2015 values of image 001, classes at
their boundaries, spec files (good and bad), the CLI and the evaluation."""

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from unilandmark.cli import app
from unilandmark.measure import (
    SpecError,
    builtin_specs,
    class_agreement,
    class_labels,
    classify,
    classify_batch,
    load_spec,
    measure,
    measure_batch,
    parse_spec,
    spec_for,
)

DOCS = Path(__file__).resolve().parents[1] / "docs"
ISBI = builtin_specs()["isbi2015"]
ISBI_NAMES = tuple(ISBI.landmarks)

# a right triangle: A at the origin, B 3 px to the right, C 4 px below (y down)
TRIANGLE_NAMES = ("a", "b", "c")
TRIANGLE = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
TRIANGLE_SPEC = {
    "name": "triangle",
    "points": {"A": "a", "B": "b", "C": "c"},
    "measurements": [
        {"name": "at_A", "angle": [["A", "B"], ["A", "C"]]},
        {"name": "at_B", "angle": [["B", "A"], ["B", "C"]]},
        {"name": "turn_AB_AC", "signed_angle": [["A", "B"], ["A", "C"]]},
        {"name": "turn_AC_AB", "signed_angle": [["A", "C"], ["A", "B"]]},
        {"name": "BC", "distance": ["B", "C"]},
        {"name": "BC_pixels", "distance": ["B", "C"], "unit": "px"},
        {"name": "BA_signed", "distance": ["B", "A"], "sign": "x"},
        {"name": "AB_over_AC", "ratio": [["A", "B"], ["A", "C"]]},
        {"name": "B_plus_C", "sum": [{"ref": "at_B"}, {"angle": [["C", "A"], ["C", "B"]]}]},
        {"name": "A_minus_B", "sum": [{"ref": "at_A"}, {"ref": "at_B", "weight": -1}]},
    ],
}


def _spec(data=None):
    return parse_spec(data or TRIANGLE_SPEC, "test")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- hand-computed geometry ----------------------------------------------------------------
def test_right_triangle_measurements_match_hand_computed_values():
    values = measure(_spec(), TRIANGLE, TRIANGLE_NAMES, spacing=(0.1, 0.1))
    at_b = math.degrees(math.atan2(4, 3))  # 53.130 degrees
    assert values["at_A"] == pytest.approx(90.0)
    assert values["at_B"] == pytest.approx(at_b)
    assert values["turn_AB_AC"] == pytest.approx(90.0)  # cross((3,0),(0,4)) = 12 > 0
    assert values["turn_AC_AB"] == pytest.approx(-90.0)
    assert values["BC"] == pytest.approx(0.5)  # 5 px x 0.1 mm
    assert values["BC_pixels"] == pytest.approx(5.0)
    assert values["BA_signed"] == pytest.approx(-0.3)  # A lies left of B
    assert values["AB_over_AC"] == pytest.approx(0.75)
    assert values["B_plus_C"] == pytest.approx(90.0)  # the two acute angles
    assert values["A_minus_B"] == pytest.approx(90.0 - at_b)


def test_anisotropic_spacing_makes_angles_physical_and_missing_spacing_gives_nan():
    spec = _spec()
    values = measure(spec, TRIANGLE, TRIANGLE_NAMES, spacing=(0.1, 0.2))
    # B->C = (-3, 4) px = (-0.3, 0.8) mm
    assert values["BC"] == pytest.approx(math.hypot(0.3, 0.8))
    assert values["at_B"] == pytest.approx(math.degrees(math.atan2(0.8, 0.3)))
    assert values["AB_over_AC"] == pytest.approx(0.3 / 0.8)
    plain = measure(spec, TRIANGLE, TRIANGLE_NAMES)
    assert math.isnan(plain["BC"]) and math.isnan(plain["BA_signed"])
    assert plain["BC_pixels"] == pytest.approx(5.0) and plain["at_A"] == pytest.approx(90.0)


def test_pixel_fallback_is_reported_under_its_own_name():
    data = {"name": "fb", "measurements": [
        {"name": "d", "distance": ["a", "b"], "without_spacing": "px"}]}
    spec = parse_spec(data)
    assert spec.pixel_fallbacks() == ("d",)
    no_spacing = measure(spec, TRIANGLE, TRIANGLE_NAMES)
    assert math.isnan(no_spacing["d"]) and no_spacing["d_px"] == pytest.approx(3.0)
    with_spacing = measure(spec, TRIANGLE, TRIANGLE_NAMES, spacing=(0.5, 0.5))
    assert with_spacing["d"] == pytest.approx(1.5)


def test_mirrored_configuration_gives_the_same_measurements_when_flagged():
    spec = _spec()
    mirrored = TRIANGLE.copy()
    mirrored[:, 0] = 99.0 - mirrored[:, 0]  # the image read left-right mirrored
    original = measure(spec, TRIANGLE, TRIANGLE_NAMES, spacing=(0.1, 0.1))
    flagged = measure(spec, mirrored, TRIANGLE_NAMES, spacing=(0.1, 0.1), mirrored=True)
    for name, value in original.items():
        assert flagged[name] == pytest.approx(value), name
    unflagged = measure(spec, mirrored, TRIANGLE_NAMES, spacing=(0.1, 0.1))
    assert unflagged["turn_AB_AC"] == pytest.approx(-90.0)  # signed terms flip
    assert unflagged["BA_signed"] == pytest.approx(0.3)


def test_missing_landmarks_and_degenerate_vectors_give_nan():
    spec = _spec()
    partial = measure(spec, TRIANGLE[:2], TRIANGLE_NAMES[:2], spacing=(1, 1))
    assert math.isnan(partial["at_A"]) and partial["BA_signed"] == pytest.approx(-3.0)
    holes = TRIANGLE.copy()
    holes[2] = np.nan
    assert math.isnan(measure(spec, holes, TRIANGLE_NAMES)["AB_over_AC"])
    same = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 4.0]])
    values = measure(spec, same, TRIANGLE_NAMES)
    assert math.isnan(values["at_A"]) and math.isnan(values["A_minus_B"])
    assert values["AB_over_AC"] == 0.0


def test_truncation_option_truncates_before_measuring():
    spec = _spec()
    pts = TRIANGLE + np.array([[0.9, 0.2], [0.7, 0.99], [0.1, 0.6]])
    truncated = measure(spec, pts, TRIANGLE_NAMES, spacing=(0.1, 0.1), truncate=True)
    exact = measure(spec, TRIANGLE, TRIANGLE_NAMES, spacing=(0.1, 0.1))
    floats = measure(spec, pts, TRIANGLE_NAMES, spacing=(0.1, 0.1))
    assert truncated == pytest.approx(exact)
    assert floats["at_B"] != pytest.approx(exact["at_B"])


def test_batch_equals_one_image_at_a_time_and_names_match_in_any_order():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 2000, size=(6, len(ISBI_NAMES), 2))
    mirrored = np.array([0, 1, 0, 1, 0, 0], dtype=bool)
    spacing = np.array([[0.1, 0.1]] * 5 + [[np.nan, np.nan]])
    batch = measure_batch(ISBI, pts, ISBI_NAMES, spacing, mirrored)
    order = rng.permutation(len(ISBI_NAMES))
    shouted = [ISBI_NAMES[k].upper() for k in order]
    for n in range(6):
        sp = None if n == 5 else (0.1, 0.1)
        one = measure(ISBI, pts[n][order], shouted, sp, bool(mirrored[n]))
        for name, value in one.items():
            assert value == pytest.approx(batch[name][n], nan_ok=True), (n, name)
    assert math.isnan(batch["MW"][5]) and np.isfinite(batch["ANB"][5])


# -- ISBI 2015 -----------------------------------------------------------------------------
def test_isbi_image_001_senior_matches_the_organisers_values(isbi_spec):
    record = isbi_spec.record_map()["001"]
    assert np.all(record.points == np.round(record.points))  # integers: no rounding question
    for truncate in (False, True):
        values = measure(ISBI, record.points, isbi_spec.landmark_names, record.spacing,
                         truncate=truncate)
        assert round(values["ANB"], 3) == -3.889
        assert round(values["APDI"], 3) == 99.023
        assert round(values["MW"], 3) == -1.166
        assert values["ANB"] == pytest.approx(values["SNA"] - values["SNB"])
    classes = classify(ISBI, values)
    assert classes["ANB"] == 3 and classes["MW"] == 3 and classes["APDI"] == 3


def test_isbi_image_001_mirrored_gives_the_same_values(isbi_spec):
    record = isbi_spec.record_map()["001"]
    flipped = record.points.copy()
    flipped[:, 0] = 1934 - flipped[:, 0]
    original = measure(ISBI, record.points, isbi_spec.landmark_names, record.spacing)
    back = measure(ISBI, flipped, isbi_spec.landmark_names, record.spacing, mirrored=True)
    assert back == pytest.approx(original)
    wrong = measure(ISBI, flipped, isbi_spec.landmark_names, record.spacing)
    assert wrong["MW"] == pytest.approx(-original["MW"])
    assert wrong["APDI"] != pytest.approx(original["APDI"])


def test_isbi_spec_reads_the_challenge_landmarks_by_name():
    assert ISBI.names == ("ANB", "SNB", "SNA", "ODI", "APDI", "FHI", "FHA", "MW")
    assert ISBI.unit("MW") == "mm" and ISBI.unit("FHI") == "ratio" and ISBI.unit("ANB") == "deg"
    assert spec_for(ISBI_NAMES).name == "isbi2015"
    shuffled = list(reversed(ISBI_NAMES)) + ["extra landmark"]
    assert spec_for(shuffled).name == "isbi2015"
    assert spec_for([n for n in ISBI_NAMES if n != "gonion"]) is None
    assert spec_for([f"L{k}" for k in range(1, 20)]) is None  # 19 landmarks is not enough
    assert spec_for(ISBI_NAMES, domain="hand") is None


@pytest.mark.parametrize("name,value,expected", [
    ("ANB", 3.2, 1), ("ANB", 5.7, 1), ("ANB", 5.7000001, 2), ("ANB", 3.1999999, 3),
    ("SNB", 74.6, 1), ("SNB", 78.7, 1), ("SNB", 74.5999, 2), ("SNB", 78.7001, 3),
    ("SNA", 79.4, 1), ("SNA", 83.2, 1), ("SNA", 83.2001, 2), ("SNA", 79.3999, 3),
    ("ODI", 68.4, 1), ("ODI", 80.5, 1), ("ODI", 80.5001, 2), ("ODI", 68.3999, 3),
    ("APDI", 77.6, 1), ("APDI", 85.2, 1), ("APDI", 77.5999, 2), ("APDI", 85.2001, 3),
    ("FHI", 0.65, 1), ("FHI", 0.75, 1), ("FHI", 0.7501, 2), ("FHI", 0.6499, 3),
    ("FHA", 26.8, 1), ("FHA", 31.4, 1), ("FHA", 31.4001, 2), ("FHA", 26.7999, 3),
    ("MW", 2.0, 1), ("MW", 4.5, 1), ("MW", 0.0, 2), ("MW", -0.0, 2), ("MW", 1.9999, 3),
    ("MW", 0.0001, 3), ("MW", -1.166, 3), ("MW", 4.5001, 4),
])
def test_isbi_classes_at_the_interval_boundaries(name, value, expected):
    assert classify(ISBI, {name: value})[name] == expected
    assert classify_batch(ISBI, {m: np.array([value]) for m in ISBI.names})[name][0] == expected


def test_undefined_values_have_no_class_and_batch_agrees_with_classify():
    assert classify(ISBI, {"ANB": float("nan")})["ANB"] is None
    assert classify(ISBI, {})["MW"] is None
    rng = np.random.default_rng(1)
    edges = [b for m in ISBI.measurements for r in m.classes
             for b in (r.min, r.max, r.above, r.below, r.equals) if b is not None]
    values = {m: np.concatenate([rng.uniform(-10, 100, 200), edges, [np.nan]])
              for m in ISBI.names}
    batch = classify_batch(ISBI, values)
    for n in range(len(values["ANB"])):
        one = classify(ISBI, {m: float(v[n]) for m, v in values.items()})
        assert {m: c or 0 for m, c in one.items()} == {m: int(b[n]) for m, b in batch.items()}


def test_scr_is_the_mean_recall_over_the_classes_present():
    truth = np.array([1, 1, 1, 1, 2, 0])  # 0: no ground-truth class, left out
    pred = np.array([1, 1, 1, 1, 1, 3])
    got = class_agreement(pred, truth)
    assert got["accuracy"] == pytest.approx(0.8)
    assert got["scr"] == pytest.approx(0.5)  # (4/4 + 0/1) / 2: class 3 is not present
    assert got["truth_counts"] == {1: 4, 2: 1}
    undefined = class_agreement(np.array([0, 2]), np.array([1, 2]))
    assert undefined["accuracy"] == 0.5 and undefined["scr"] == 0.5


# -- spec files ----------------------------------------------------------------------------
def test_spec_file_round_trip_and_numeric_landmark_names(tmp_path):
    path = _write(tmp_path / "hand.yaml", """
name: hand-demo
domain: hand
measurements:
  - name: wrist_width
    distance: [1, 5]
    unit: px
""")
    spec = load_spec(path)
    assert spec.landmarks_used() == ("1", "5")
    values = measure(spec, np.array([[0, 0], [9, 9], [9, 9], [9, 9], [6, 8]]),
                     [str(k) for k in range(1, 6)])
    assert values["wrist_width"] == pytest.approx(10.0)
    import yaml  # a spec is plain data: dumped and loaded back, it is the same spec

    dumped = _write(tmp_path / "isbi.yaml", yaml.safe_dump(
        ISBI.model_dump(by_alias=True, exclude_none=True, mode="json")))
    assert load_spec(dumped) == ISBI


def test_bad_spec_file_names_the_file_and_every_fault(tmp_path):
    path = _write(tmp_path / "bad.yaml", """
name: bad
measurements:
  - name: SNA
    angel: [[N, S], [N, A]]
  - name: ANB
    sum: [{ref: SNA}, {ref: SNX}]
  - name: FHI
    ratio: [[S, Go], [N, Me]]
    classes:
      - {class: 1, min: 0.75, max: 0.65}
""")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "measurements[0] (SNA)" in msg and "angel" in msg
    assert "min 0.75 is above max 0.65" in msg
    with pytest.raises(SpecError, match="refers to unknown measurement 'SNX'"):
        parse_spec({"name": "x", "measurements": [
            {"name": "ANB", "sum": [{"ref": "SNX"}]}]}, "x.yaml")


@pytest.mark.parametrize("text,fault", [
    ("name: [unclosed", "not a valid YAML file"),
    ("- just\n- a list\n", "a spec is a mapping"),
    ("name: x\nmeasurements: []\n", "measurements"),
    ("name: x\nmeasurements:\n  - {name: a, angle: [[p, q], [p, r]], distance: [p, q]}\n",
     "exactly one of"),
    ("name: x\nmeasurements:\n  - {name: a, sum: [{ref: b}]}\n  - {name: b, sum: [{ref: a}]}\n",
     "cycle"),
    ("name: x\nmeasurements:\n  - {name: a, sum: [{angle: [[p, q], [p, r]]}, "
     "{distance: [p, q]}]}\n", "mixes units"),
    ("name: x\nmeasurements:\n  - {name: a, distance: [p, q]}\n  - {name: a, distance: [p, q]}\n",
     "defined twice"),
    ("name: x\nlandmarks: [p, q]\nmeasurements:\n  - {name: a, distance: [p, z]}\n",
     "point 'z'"),
    ("name: x\nmeasurements:\n  - {name: a, angle: [[p, q], [p, r]], unit: mm}\n",
     "unit 'mm' does not fit"),
    ("name: x\nmeasurements:\n  - {name: a_class, distance: [p, q]}\n", "must not"),
    ("name: x\nmeasurements:\n  - {name: a, distance: [p, q], classes: [{class: 1}]}\n",
     "at least one of"),
])
def test_each_kind_of_bad_spec_is_explained(tmp_path, text, fault):
    path = _write(tmp_path / "spec.yaml", text)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(path) in str(err.value) and fault in str(err.value)


def test_loading_a_spec_never_runs_code(tmp_path):
    marker = tmp_path / "ran"
    path = _write(tmp_path / "evil.yaml",
                  f"!!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(SpecError, match="not a valid YAML file"):
        load_spec(path)
    assert not marker.exists()
    with pytest.raises(SpecError, match="no such measurement spec file"):
        load_spec(tmp_path / "absent.yaml")


def test_the_spec_examples_in_the_docs_are_valid():
    text = (DOCS / "measurements.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 2
    import yaml

    specs = [parse_spec(yaml.safe_load(b), "docs/measurements.md") for b in blocks]
    assert {s.domain for s in specs} >= {"chest"}


# -- files and the CLI ---------------------------------------------------------------------
def _isbi_csv(path: Path, points: np.ndarray, ids, *, names=True, spacing=0.1,
              orientation=None) -> Path:
    header = ["image", "landmark", "x", "y"] + (["name"] if names else []) + \
        (["x_mm", "y_mm"] if spacing else []) + (["orientation"] if orientation else [])
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for n, rid in enumerate(ids):
            for k, (x, y) in enumerate(points[n]):
                row = [rid, k + 1, repr(float(x)), repr(float(y))]
                row += [ISBI_NAMES[k]] if names else []
                row += [repr(float(x * spacing)), repr(float(y * spacing))] if spacing else []
                row += [orientation[n]] if orientation else []
                w.writerow(row)
    return path


def _read_rows(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, list(reader)


@pytest.fixture()
def heads():
    rng = np.random.default_rng(7)
    return rng.uniform(200, 1800, size=(3, len(ISBI_NAMES), 2))


def test_cli_measure_writes_one_row_per_image(tmp_path, heads):
    src = _isbi_csv(tmp_path / "pred.csv", heads, ["a", "b", "c"])
    r = CliRunner().invoke(app, ["measure", str(src), "--domain", "head"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "pred_measurements.csv"
    header, rows = _read_rows(out)
    assert header[:9] == ["image", "ANB", "SNB", "SNA", "ODI", "APDI", "FHI", "FHA", "MW"]
    # each class number with its words beside it, then the deviations from the norms that
    # give a mean and an SD (ODI, APDI: Kim's), then the tail as before
    assert header[9:25] == [c for n in ISBI.names for c in (f"{n}_class", f"{n}_class_label")]
    assert header[25:] == ["ODI_norm_sd", "APDI_norm_sd", "orientation", "spacing_x",
                           "spacing_y", "coordinates", "spec"]
    assert [row["image"] for row in rows] == ["a", "b", "c"]
    labels = class_labels(ISBI)
    for n, row in enumerate(rows):
        expected = measure(ISBI, heads[n], ISBI_NAMES, (0.1, 0.1))
        classes = classify(ISBI, expected)
        for name in ISBI.names:
            assert float(row[name]) == pytest.approx(expected[name], rel=1e-5)
            assert row[f"{name}_class"] == str(classes[name])
            assert row[f"{name}_class_label"] == labels[name][classes[name]]
        assert float(row["ODI_norm_sd"]) == pytest.approx((expected["ODI"] - 74.5) / 6.07,
                                                          rel=1e-5)
        assert row["coordinates"] == "float" and row["orientation"] == "original"
    assert "coordinates float" in r.output


def test_cli_measure_mirrored_rows_truncation_and_spacing(tmp_path, heads):
    flipped = heads.copy()
    flipped[..., 0] = 1934 - flipped[..., 0]
    both = np.concatenate([heads[:1], flipped[:1]])
    src = _isbi_csv(tmp_path / "p.csv", both, ["orig", "flip"], spacing=None,
                    orientation=["original", "mirrored"])
    out = tmp_path / "m.csv"
    r = CliRunner().invoke(app, ["measure", str(src), "--out", str(out), "--truncate"])
    assert r.exit_code == 0, r.output
    _, rows = _read_rows(out)
    assert rows[1]["orientation"] == "mirrored" and rows[0]["coordinates"] == \
        "truncated to integers"
    assert rows[0]["MW"] == "" and rows[0]["MW_class"] == ""  # no spacing: no mm
    truncated = measure(ISBI, heads[0], ISBI_NAMES, truncate=True)
    for name in ("ANB", "APDI", "FHI"):
        assert float(rows[0][name]) == pytest.approx(truncated[name], rel=1e-5)
    r = CliRunner().invoke(app, ["measure", str(src), "--out", str(out), "--spacing", "0.1"])
    assert r.exit_code == 0, r.output
    _, rows = _read_rows(out)
    assert rows[0]["spacing_x"] == "0.1" and rows[0]["MW"] != ""
    for name in ISBI.names:  # the mirrored image, flagged, measures the same
        assert float(rows[1][name]) == pytest.approx(float(rows[0][name]), rel=1e-5)


def test_cli_measure_without_names_uses_the_spec_order_and_a_user_spec(tmp_path, heads):
    src = _isbi_csv(tmp_path / "p.csv", heads[:1], ["x"], names=False)
    out = tmp_path / "m.csv"
    r = CliRunner().invoke(app, ["measure", str(src), "--domain", "head", "--out", str(out)])
    assert r.exit_code == 0, r.output
    _, rows = _read_rows(out)
    expected = measure(ISBI, heads[0], ISBI_NAMES, (0.1, 0.1))
    assert float(rows[0]["SNA"]) == pytest.approx(expected["SNA"], rel=1e-5)
    spec = _write(tmp_path / "tri.yaml", "name: tri\nmeasurements:\n"
                  "  - {name: SN, distance: [sella, nasion], unit: px}\n")
    r = CliRunner().invoke(app, ["measure", str(src), "--spec", str(spec), "--out", str(out)])
    assert r.exit_code != 0 and "no landmark names" in r.output  # and the spec has no order
    named = _isbi_csv(tmp_path / "n.csv", heads[:1], ["x"])
    r = CliRunner().invoke(app, ["measure", str(named), "--spec", str(spec), "--out", str(out)])
    assert r.exit_code == 0, r.output
    header, rows = _read_rows(out)
    assert header[:2] == ["image", "SN"]
    assert float(rows[0]["SN"]) == pytest.approx(np.linalg.norm(heads[0, 1] - heads[0, 0]))


def test_cli_measure_with_domain_skips_rows_of_other_domains(tmp_path, heads):
    src = _isbi_csv(tmp_path / "p.csv", heads[:1], ["h"])
    lines = src.read_text().splitlines()
    text = "\n".join([lines[0] + ",domain"] + [ln + ",head" for ln in lines[1:]] +
                     ["x,1,5.0,6.0,thumb tip,0.5,0.6,hand"]) + "\n"
    src.write_text(text)
    out = tmp_path / "m.csv"
    r = CliRunner().invoke(app, ["measure", str(src), "--domain", "head", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "skipped 1 image(s) of another domain" in r.output
    assert [row["image"] for row in _read_rows(out)[1]] == ["h"]
    r = CliRunner().invoke(app, ["measure", str(src), "--out", str(out)])
    assert r.exit_code != 0 and "'x'" in r.output  # the hand image fits no built-in spec


def test_cli_measure_reports_bad_input_clearly(tmp_path, heads):
    src = _isbi_csv(tmp_path / "p.csv", heads[:2], ["a", "b"],
                    orientation=["sideways", "original"])
    r = CliRunner().invoke(app, ["measure", str(src)])
    assert r.exit_code != 0
    assert "p.csv" in r.output and "sideways" in r.output
    bad = _write(tmp_path / "bad.yaml", "name: x\nmeasurements: [{name: a}]\n")
    r = CliRunner().invoke(app, ["measure", str(src), "--spec", str(bad)])
    assert r.exit_code != 0 and "bad.yaml" in r.output and "exactly one of" in r.output
    mm = _write(tmp_path / "mm.csv", "image,landmark,x,y,x_mm,y_mm\na,1,1,2,abc,0.2\n")
    r = CliRunner().invoke(app, ["measure", str(mm)])
    assert r.exit_code != 0 and "mm.csv" in r.output and "'abc'" in r.output
    other = _write(tmp_path / "o.csv", "image,landmark,x,y,name\na,1,1,2,foo\n")
    r = CliRunner().invoke(app, ["measure", str(other)])
    assert r.exit_code != 0 and "no built-in measurement spec fits" in r.output


def test_cli_evaluate_measurements_junior_and_perfect(tmp_path, isbi_root):
    runner = CliRunner()
    for who in ("junior", "senior"):
        csv_path = tmp_path / f"{who}.csv"
        r = runner.invoke(app, ["datasets", "export", "isbi2015", "--root", str(isbi_root),
                                "--split", "test2", "--annotator", who, "--out", str(csv_path)])
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["evaluate", "isbi2015", "--root", str(isbi_root), "--protocol",
                                "isbi2015-test2", "--predictions", str(csv_path),
                                "--measurements", "--json", str(tmp_path / f"{who}.json")])
        assert r.exit_code == 0, r.output
        assert "SCR" in r.output
    perfect = json.loads((tmp_path / "senior.json").read_text())["measurements"]
    assert perfect["coordinates"] == "float" and perfect["n_images"] == 100
    assert all(m["mae"] == 0 and m["accuracy"] == 1 and m["scr"] == 1
               for m in perfect["measurements"])
    junior = json.loads((tmp_path / "junior.json").read_text())["measurements"]
    rows = {m["name"]: m for m in junior["measurements"]}
    assert set(rows) == set(ISBI.names)
    assert all(0 < m["mae"] and 0 < m["scr"] < 1 and 0 < m["accuracy"] < 1
               for m in rows.values())
    assert sum(rows["ANB"]["truth_counts"].values()) == 100


def test_cli_predict_measurements_with_the_builtin_model(tmp_path, isbi_root):
    from unilandmark.inference.detector import PRETRAINED_DIR, PRETRAINED_NAME

    if not (PRETRAINED_DIR / PRETRAINED_NAME).is_file():
        pytest.skip("no built-in model in this build")
    image = isbi_root / "RawImage" / "TrainingData" / "001.jpg"
    out = tmp_path / "pred.csv"
    r = CliRunner().invoke(app, ["predict", str(image), "--out", str(out), "--spacing", "0.1",
                                 "--measurements"])
    assert r.exit_code == 0, r.output
    header, rows = _read_rows(tmp_path / "pred_measurements.csv")
    assert header[:9] == ["image", *ISBI.names] and len(rows) == 1
    assert rows[0]["image"] == "001" and all(rows[0][n] != "" for n in ISBI.names)
    assert rows[0]["spacing_x"] == "0.1"


def test_the_chest_example_measures_the_shenzhen_images(chest_root):
    import yaml

    from unilandmark import shenzhen_chest
    from unilandmark.measure import measure_batch

    text = (DOCS / "measurements.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
                 if "domain: chest" in b)
    spec = parse_spec(yaml.safe_load(block), "docs/measurements.md")
    dataset = shenzhen_chest(chest_root)
    points = np.stack([r.points for r in dataset.records])
    values = measure_batch(spec, points, dataset.landmark_names)
    assert np.all(np.isfinite(values["lung_height_ratio"]))
    assert np.all(np.isnan(values["base_width"]))  # no spacing: no mm
    assert np.all(values["base_width_px"] > 0)


def test_benchmark_scores_the_junior_and_a_prediction_file(tmp_path, isbi_root, isbi_spec):
    import importlib.util

    from unilandmark import export_ground_truth

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "measurements_isbi2015.py"
    module_spec = importlib.util.spec_from_file_location("measurements_isbi2015", path)
    bench = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(bench)
    senior = tmp_path / "senior.csv"
    export_ground_truth(isbi_spec, "gu2net-test", senior)  # test1 + test2
    out = bench.main(["--root", str(isbi_root), "--predictions", str(senior),
                      "--json", str(tmp_path / "b.json")])
    assert json.loads((tmp_path / "b.json").read_text())["coordinates"] == "float"
    for split in ("test1", "test2"):
        scores = out["splits"][split]
        assert set(scores) == {"model_vs_senior", "model_vs_mean", "junior_vs_senior",
                               "junior_vs_mean"}
        assert all(m["mae"] == 0 and m["scr"] == 1
                   for m in scores["model_vs_senior"]["measurements"])
        # the mean lies between the annotators: neither of them matches it
        for a, b in zip(scores["model_vs_mean"]["measurements"],
                        scores["junior_vs_mean"]["measurements"], strict=True):
            assert a["n_compared"] == b["n_compared"] and a["mae"] > 0
    counts = out["class_counts"]
    assert sum(counts["train"]["ANB"].values()) == 150
    assert sum(counts["test2"]["MW"].values()) == 100


def test_evaluate_measures_mirrored_predictions_in_the_patients_frame(tmp_path, isbi_root,
                                                                      isbi_spec):
    from unilandmark import export_ground_truth

    src = tmp_path / "senior.csv"
    export_ground_truth(isbi_spec, "test2", src)
    header, rows = _read_rows(src)
    for row in rows:  # image 301 read left-right mirrored (width 1935)
        mirrored = row["image"] == "301"
        if mirrored:
            row["x"] = repr(1934 - float(row["x"]))
            row.pop("x_mm"), row.pop("y_mm")
        if mirrored:  # the others keep the export's (image 322 is stored mirrored)
            row["orientation"] = "mirrored"
    flipped = tmp_path / "flipped.csv"
    with open(flipped, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "r.json"
    r = CliRunner().invoke(app, ["evaluate", "isbi2015", "--root", str(isbi_root), "--protocol",
                                 "isbi2015-test2", "--predictions", str(flipped),
                                 "--measurements", "--truncate", "--json", str(out)])
    assert r.exit_code == 0, r.output
    report = json.loads(out.read_text())
    assert report["mre"] > 0  # the landmarks themselves are far off for image 301
    section = report["measurements"]
    assert section["coordinates"] == "truncated to integers"
    assert section["mirrored_predictions"] == 2  # 301 here, 322 as stored
    assert all(m["mae"] < 1e-9 and m["scr"] == 1 for m in section["measurements"])
    # a built-in analysis by name: its measurements, not the default spec's
    r = CliRunner().invoke(app, ["evaluate", "isbi2015", "--root", str(isbi_root), "--protocol",
                                 "isbi2015-test2", "--predictions", str(src),
                                 "--measurement-spec", "steiner", "--json", str(out)])
    assert r.exit_code == 0, r.output
    names = {m["name"] for m in json.loads(out.read_text())["measurements"]["measurements"]}
    assert "SNA" in names and "ODI" not in names
    r = CliRunner().invoke(app, ["evaluate", "isbi2015", "--root", str(isbi_root), "--protocol",
                                 "isbi2015-test2", "--predictions", str(src),
                                 "--measurement-spec", "stiener"])
    assert r.exit_code == 2 and "closest: steiner" in r.output


def test_evaluate_measurements_need_a_spec_that_fits(tmp_path, chest_root):
    from unilandmark import export_ground_truth, shenzhen_chest

    src = tmp_path / "chest.csv"
    export_ground_truth(shenzhen_chest(chest_root), "all", src)
    args = ["evaluate", "shenzhen_chest", "--root", str(chest_root), "--split", "all",
            "--predictions", str(src)]
    r = CliRunner().invoke(app, [*args, "--measurements"])
    assert r.exit_code != 0 and "no built-in measurement spec fits" in r.output
    text = (DOCS / "measurements.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
                 if "domain: chest" in b)
    spec = _write(tmp_path / "chest.yaml", block)
    out = tmp_path / "r.json"
    r = CliRunner().invoke(app, [*args, "--measurement-spec", str(spec), "--json", str(out)])
    assert r.exit_code == 0, r.output
    rows = {m["name"]: m for m in json.loads(out.read_text())["measurements"]["measurements"]}
    assert rows["lung_height_ratio"]["mae"] == 0 and rows["lung_height_ratio"]["scr"] == 1
    assert rows["base_width"]["n_compared"] == 0  # mm without spacing: undefined


def test_line_distance_in_2d_and_3d():
    """The distance of a point from a line: unsigned in 2-D and 3-D; ``sign: side`` by the
    side of A->B on screen (2-D only); NaN for a line of one point; refusals."""
    spec = parse_spec({"name": "lines", "measurements": [
        {"name": "d", "line_distance": ["P", ["A", "B"]], "unit": "px"},
        {"name": "s", "line_distance": ["P", ["A", "B"]], "sign": "side", "unit": "px"},
        {"name": "r", "line_distance": ["P", ["B", "A"]], "sign": "side", "unit": "px"}]})
    names = ["P", "A", "B"]
    # a line through (0, 10) and (0, -10) drawn upwards; P right of it: ahead, positive
    v = measure(spec, np.array([[5.0, 3.0], [0.0, 10.0], [0.0, -10.0]]), names)
    assert v == pytest.approx({"d": 5.0, "s": 5.0, "r": -5.0})
    # a slanted line: |cross| / |AB| by hand (3-4-5 triangle)
    v = measure(spec, np.array([[0.0, 5.0], [0.0, 0.0], [4.0, 3.0]]), names)
    assert v["d"] == pytest.approx(4.0) and v["s"] == pytest.approx(4.0)
    assert math.isnan(measure(spec, np.array([[1.0, 1.0], [2.0, 2.0], [2.0, 2.0]]),
                              names)["d"])
    assert spec.dimensions() == 2
    unsigned = parse_spec({"name": "l3", "measurements": [
        {"name": "d", "line_distance": ["P", ["A", "B"]]},
        {"name": "h", "plane_distance": ["P", ["A", "B", "C"]]}]})
    assert unsigned.dimensions() == 3
    pts = np.array([[3.0, 4.0, 7.0], [0.0, 0.0, 0.0], [0.0, 0.0, 2.0], [1.0, 0.0, 0.0]])
    assert measure(unsigned, pts, ["P", "A", "B", "C"], spacing=(1.0, 1.0, 1.0))["d"] == \
        pytest.approx(5.0)
    with pytest.raises(SpecError, match="'sign: side' applies to a line_distance only"):
        parse_spec({"name": "x", "measurements": [
            {"name": "d", "distance": ["P", "A"], "sign": "side"}]})
    with pytest.raises(SpecError, match="2-D points only.*3-D points only"):
        parse_spec({"name": "x", "measurements": [
            {"name": "s", "line_distance": ["P", ["A", "B"]], "sign": "side"},
            {"name": "h", "plane_distance": ["P", ["A", "B", "C"]]}]})
