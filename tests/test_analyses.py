"""Named cephalometric analyses with norms (measure/specs: steiner, downs, bjork-jarabak,
mcnamara, holdaway; isbi2015 with its classes): every value against a hand computation on
constructed points, the norms and their words, the spec language's norm fields and their
faults, and the measurement CSV's class words and deviations (docs/measurements.md)."""

from __future__ import annotations

import csv
import math

import pytest
from typer.testing import CliRunner

from unilandmark.cli import app
from unilandmark.measure import (
    SpecError,
    builtin_specs,
    class_labels,
    measure,
    parse_spec,
    readings,
    resolve_spec,
    spec_for,
)

ISBI = builtin_specs()["isbi2015"]
NAMES = tuple(ISBI.landmarks)
ANALYSES = ("steiner", "downs", "bjork-jarabak", "mcnamara", "holdaway")
SPACING = (0.1, 0.12)  # non-square pixels: every value is taken in millimetres

# a constructed lateral cephalogram (original pixels, x right, y down, facing right)
P = {
    "sella": (800.0, 900.0), "nasion": (1450.0, 800.0), "orbitale": (1300.0, 1000.0),
    "porion": (600.0, 1050.0), "subspinale": (1420.0, 1350.0),
    "supramentale": (1380.0, 1700.0), "pogonion": (1390.0, 1850.0),
    "menton": (1330.0, 1930.0), "gnathion": (1370.0, 1900.0), "gonion": (750.0, 1600.0),
    "lower incisal incision": (1440.0, 1500.0), "upper incisal incision": (1470.0, 1480.0),
    "upper lip": (1560.0, 1450.0), "lower lip": (1540.0, 1620.0),
    "subnasale": (1540.0, 1300.0), "soft tissue pogonion": (1500.0, 1880.0),
    "posterior nasal spine": (950.0, 1250.0), "anterior nasal spine": (1500.0, 1230.0),
    "articulare": (650.0, 1250.0),
}
POINTS = [P[n] for n in NAMES]


# -- hand geometry (math only, in millimetres) -----------------------------------------------
def mm(name):
    x, y = P[name]
    return x * SPACING[0], y * SPACING[1]


def vec(a, b):
    (ax, ay), (bx, by) = mm(a), mm(b)
    return bx - ax, by - ay


def angle(u, v):
    """Unsigned angle in degrees between u and v, by the law of cosines."""
    cos = (u[0] * v[0] + u[1] * v[1]) / (math.hypot(*u) * math.hypot(*v))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def signed(u, v):
    return angle(u, v) * (-1.0 if u[0] * v[1] - u[1] * v[0] < 0 else 1.0)


def dist(a, b):
    return math.hypot(*vec(a, b))


def along(u, d):
    return (u[0] * d[0] + u[1] * d[1]) / math.hypot(*d)


def ahead_of_line(p, a, b):
    """Distance of p from the line a-b through the foot of the perpendicular, positive
    when p lies ahead of the line (larger x: the patient faces right)."""
    (px, py), (ax, ay), (bx, by) = mm(p), mm(a), mm(b)
    t = ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / ((bx - ax) ** 2 + (by - ay) ** 2)
    fx, fy = ax + t * (bx - ax), ay + t * (by - ay)
    return math.hypot(px - fx, py - fy) * (1.0 if px > fx else -1.0)


S, N, A, B = "sella", "nasion", "subspinale", "supramentale"
Po, Or, Pog, Me = "porion", "orbitale", "pogonion", "menton"
Gn, Go, Ar, ANS = "gnathion", "gonion", "articulare", "anterior nasal spine"
UL, sPog = "upper lip", "soft tissue pogonion"
LL, Sn, U1 = "lower lip", "subnasale", "upper incisal incision"

HAND = {
    "steiner": {
        "SNA": angle(vec(N, S), vec(N, A)),
        "SNB": angle(vec(N, S), vec(N, B)),
        "ANB": angle(vec(N, S), vec(N, A)) - angle(vec(N, S), vec(N, B)),
        "SN-GoGn": angle(vec(S, N), vec(Go, Gn)),
        "Pog-NB": ahead_of_line(Pog, N, B),
    },
    "downs": {
        "facial_angle": angle(vec(Or, Po), vec(N, Pog)),
        "convexity": 180.0 - angle(vec(A, N), vec(A, Pog)),  # A ahead of N-Pog: convex
        "AB_plane": -angle(vec(A, B), vec(N, Pog)),  # B behind A: negative
        "FMA": angle(vec(Po, Or), vec(Go, Me)),
        "Y_axis": angle(vec(Po, Or), vec(S, Gn)),
        "U1-APog": ahead_of_line(U1, A, Pog),
    },
    "bjork-jarabak": {
        "saddle_angle": angle(vec(S, N), vec(S, Ar)),
        "articular_angle": angle(vec(Ar, S), vec(Ar, Go)),
        "gonial_angle": angle(vec(Go, Ar), vec(Go, Me)),
        "upper_gonial_angle": angle(vec(Go, Ar), vec(Go, N)),
        "lower_gonial_angle": angle(vec(Go, N), vec(Go, Me)),
        "sum_of_angles": angle(vec(S, N), vec(S, Ar)) + angle(vec(Ar, S), vec(Ar, Go)) +
        angle(vec(Go, Ar), vec(Go, Me)),
        "anterior_cranial_base": dist(S, N),
        "posterior_cranial_base": dist(S, Ar),
        "ramus_height": dist(Ar, Go),
        "mandibular_body": dist(Go, Me),
        "facial_height_ratio": 100.0 * dist(S, Go) / dist(N, Me),
    },
    "mcnamara": {
        "A_to_N_perp": along(vec(N, A), vec(Po, Or)),
        "Pog_to_N_perp": along(vec(N, Pog), vec(Po, Or)),
        "midface_length": dist(Ar, A),
        "mandibular_length": dist(Ar, Gn),
        "maxillomandibular_difference": dist(Ar, Gn) - dist(Ar, A),
        "LAFH": dist(ANS, Me),
        "mandibular_plane_angle": angle(vec(Po, Or), vec(Go, Me)),
    },
    "holdaway": {
        "H_angle": signed(vec(N, B), vec(UL, sPog)),
        "chin_thickness": along(vec(Pog, sPog), vec(Po, Or)),
        "LL-H_line": ahead_of_line(LL, sPog, UL),
        "Sn-H_line": -ahead_of_line(Sn, sPog, UL),  # Holdaway: positive behind the line
        "skeletal_convexity": ahead_of_line(A, N, Pog),
    },
}


@pytest.mark.parametrize("name", ANALYSES)
def test_every_analysis_matches_the_hand_computation(name):
    spec = builtin_specs()[name]
    values = measure(spec, POINTS, NAMES, spacing=SPACING)
    assert set(values) == set(HAND[name]) == set(spec.names)
    for key, expected in HAND[name].items():
        assert values[key] == pytest.approx(expected, abs=1e-6), key


def test_the_constructed_face_has_the_signs_the_definitions_say():
    # A ahead of the facial plane: convex (positive); B behind A: A-B plane negative; the
    # H line leans forward more than N-B: positive; A and Pog ahead of N-perp: positive
    hand = HAND
    assert hand["downs"]["convexity"] > 0 and hand["downs"]["AB_plane"] < 0
    assert hand["holdaway"]["H_angle"] > 0
    values = measure(builtin_specs()["downs"], POINTS, NAMES, spacing=SPACING)
    assert values["convexity"] > 0 and values["AB_plane"] < 0


def test_a_mirrored_image_measures_the_same():
    flipped = [(1934.0 - x, y) for x, y in POINTS]
    for name in ANALYSES:
        spec = builtin_specs()[name]
        a = measure(spec, POINTS, NAMES, spacing=SPACING)
        b = measure(spec, flipped, NAMES, spacing=SPACING, mirrored=True)
        for key in a:
            assert b[key] == pytest.approx(a[key], abs=1e-9), (name, key)


def test_without_spacing_millimetres_are_undefined_and_angles_stay():
    values = measure(builtin_specs()["mcnamara"], POINTS, NAMES)
    assert math.isnan(values["LAFH"]) and math.isnan(values["A_to_N_perp"])
    assert math.isfinite(values["mandibular_plane_angle"])


# -- the analyses as specs -------------------------------------------------------------------
@pytest.mark.parametrize("name", ANALYSES)
def test_each_analysis_declares_its_landmarks_norms_and_what_it_leaves_out(name):
    spec = builtin_specs()[name]
    assert spec.analysis and spec.domain == "head" and spec.title and spec.source
    assert set(spec.landmarks_used()) <= set(NAMES)  # computed from the model's landmarks
    assert any("age, sex and ethnicity" in note for note in spec.notes)
    for m in spec.measurements:
        assert m.description
        if m.norm is not None:
            assert m.norm.source and m.norm.population
    if name != "bjork-jarabak":  # the polygon is whole on the ISBI landmarks
        assert spec.not_computed and all(item.reason for item in spec.not_computed)


def test_mcnamara_says_it_uses_articulare_for_condylion_and_gives_those_no_norm():
    spec = builtin_specs()["mcnamara"]
    sub, = spec.substitutions
    assert (sub.landmark, sub.uses) == ("condylion", "articulare") and sub.note
    for name in ("midface_length", "mandibular_length", "maxillomandibular_difference"):
        assert spec.measurement(name).norm is None
        assert "condylion" in spec.measurement(name).note


TEXTBOOK = {  # (analysis, measurement): (mean, sd) or (min, max)
    ("steiner", "SNA"): (82, 2), ("steiner", "SNB"): (80, 2), ("steiner", "ANB"): (2, 2),
    ("steiner", "SN-GoGn"): (32, 5), ("downs", "facial_angle"): (87.8, 3.6),
    ("downs", "convexity"): (0, 5.1), ("downs", "AB_plane"): (-4.6, 3.7),
    ("downs", "FMA"): (21.9, 3.2), ("downs", "Y_axis"): (59.4, 3.8),
    ("bjork-jarabak", "saddle_angle"): (123, 5), ("bjork-jarabak", "articular_angle"): (143, 6),
    ("bjork-jarabak", "gonial_angle"): (130, 7), ("bjork-jarabak", "sum_of_angles"): (396, 6),
}
RANGES = {("bjork-jarabak", "facial_height_ratio"): (62, 65), ("holdaway", "H_angle"): (7, 15)}


def test_the_norms_are_the_textbook_values():
    specs = builtin_specs()
    for (name, key), (mean, sd) in TEXTBOOK.items():
        norm = specs[name].measurement(key).norm
        assert (norm.mean, norm.sd) == (mean, sd), (name, key)
    for (name, key), (low, high) in RANGES.items():
        norm = specs[name].measurement(key).norm
        assert (norm.min, norm.max) == (low, high), (name, key)


def test_measure_never_picks_an_analysis_by_itself():
    assert spec_for(NAMES, "head").name == "isbi2015"
    assert spec_for(NAMES).name == "isbi2015"


# -- readings: deviation, status and words ---------------------------------------------------
def test_anb_5_1_reads_skeletal_class_ii_two_sd_off():
    steiner = builtin_specs()["steiner"]
    got = {r.name: r for r in readings(steiner, {"SNA": 85.1, "SNB": 80.0, "ANB": 5.1,
                                                 "SN-GoGn": float("nan")})}
    anb = got["ANB"]
    assert anb.deviation == pytest.approx(1.55) and anb.status == "above"
    assert anb.meaning == "skeletal class II"
    assert got["SNB"].meaning == "mandible normally placed" and got["SNB"].deviation == 0
    gogn = got["SN-GoGn"]
    assert math.isnan(gogn.deviation) and gogn.status is None and gogn.meaning == ""


def test_a_range_norm_has_no_deviation_but_a_status():
    holdaway = builtin_specs()["holdaway"]
    got = {r.name: r for r in readings(holdaway, {"H_angle": 16.0, "chin_thickness": 11})}
    assert got["H_angle"].status == "above" and math.isnan(got["H_angle"].deviation)
    assert got["H_angle"].meaning.startswith("convex soft-tissue profile")
    assert got["chin_thickness"].status == "within"


# -- the ISBI 2015 classes in words ----------------------------------------------------------
#: the challenge's classes (Wang et al. 2016, table of the classification criteria)
ISBI_CLASS_WORDS = {
    "ANB": {1: "class I", 2: "class II", 3: "class III"},
    "SNB": {1: "normal mandible", 2: "retrognathic mandible", 3: "prognathic mandible"},
    "SNA": {1: "normal maxilla", 2: "prognathic maxilla", 3: "retrognathic maxilla"},
    "ODI": {1: "normal", 2: "deep bite", 3: "open bite"},
    "APDI": {1: "normal", 2: "class II", 3: "class III"},
    "FHI": {1: "normal", 2: "short face", 3: "long face"},
    "FHA": {1: "normal", 2: "high angle", 3: "low angle"},
    "MW": {1: "normal", 2: "edge to edge", 3: "cross bite", 4: "large overjet"},
}


def test_the_isbi_class_words_are_the_challenges():
    labels = class_labels(ISBI)
    assert set(labels) == set(ISBI_CLASS_WORDS)
    for name, words in ISBI_CLASS_WORDS.items():
        assert set(labels[name]) == set(words), name
        for cls, word in words.items():
            label = labels[name][cls]
            assert word in label, (name, cls, label)
            # class I must not read as class II or III (and II not as III)
            if word.endswith("class I") or word.endswith("class II"):
                assert f"{word}I" not in label


def test_isbi_norms_are_the_normal_class_and_kims_means():
    for m in ISBI.measurements:
        normal = next(rule for rule in m.classes if rule.class_ == 1)
        assert (m.norm.min, m.norm.max) == (normal.min, normal.max), m.name
    assert (ISBI.measurement("ODI").norm.mean, ISBI.measurement("ODI").norm.sd) == (74.5, 6.07)
    assert (ISBI.measurement("APDI").norm.mean, ISBI.measurement("APDI").norm.sd) == \
        (81.4, 3.79)


# -- the spec language: norms, words, analyses -----------------------------------------------
BASE = {"name": "t", "points": {"A": "a", "B": "b", "C": "c"},
        "measurements": [{"name": "at_A", "angle": [["A", "B"], ["A", "C"]]}]}


def _with(**fields):
    m = {**BASE["measurements"][0], **fields}
    return {**BASE, "measurements": [m]}


@pytest.mark.parametrize("fields,fault", [
    ({"interpretation": {"above": "wide"}}, "interpretation words need a norm"),
    ({"norm": {"mean": 1, "source": "x"}}, "mean and sd together"),
    ({"norm": {"mean": 1, "sd": 0, "source": "x"}}, "greater than 0"),
    ({"norm": {"min": 3, "max": 1, "source": "x"}}, "min 3.0 is above max 1.0"),
    ({"norm": {"min": 3, "source": "x"}}, "min and max together"),
    ({"norm": {"mean": 1, "sd": 1}}, "source"),
    ({"norm": {"mean": 1, "sd": 1, "source": "x"}, "interpretation": {}},
     "at least one of below, within, above"),
    ({"name": "x_norm_sd"}, "must not be 'image'"),
    ({"name": "x_class_label"}, "must not be 'image'"),
])
def test_norm_faults_are_named(fields, fault):
    with pytest.raises(SpecError, match=fault):
        parse_spec(_with(**fields), "bad.yaml")


def test_analysis_faults_are_named():
    with pytest.raises(SpecError, match="not_computed: 'at_A' is a measurement"):
        parse_spec({**BASE, "not_computed": [{"name": "at_A", "reason": "r"}]})
    with pytest.raises(SpecError, match="no measurement reads 'd'"):
        parse_spec({**BASE, "substitutions": [{"landmark": "e", "uses": "d", "note": "n"}]})
    with pytest.raises(SpecError, match="unit 'percent' is for a ratio only"):
        parse_spec({**BASE, "measurements": [{"name": "d", "distance": ["A", "B"],
                                               "unit": "percent"}]})


def test_projection_and_percent_in_a_users_spec():
    spec = parse_spec({"name": "u", "measurements": [
        {"name": "ahead", "projection": [["a", "b"], ["c", "d"]], "unit": "px"},
        {"name": "pct", "ratio": [["a", "b"], ["c", "d"]], "unit": "percent",
         "norm": {"min": 40, "max": 60, "source": "made up", "population": "none"},
         "interpretation": {"below": "short", "within": "fine", "above": "long"}}]})
    pts = [(0, 0), (3, 4), (1, 1), (1, 11)]  # d - c points down (y), |b - a| = 5
    values = measure(spec, pts, ["a", "b", "c", "d"])
    assert values["ahead"] == pytest.approx(4.0) and values["pct"] == pytest.approx(50.0)
    assert spec.units() == {"ahead": "px", "pct": "percent"}
    assert [r.meaning for r in readings(spec, values)] == ["", "fine"]


def test_analyses_resolve_by_name_or_file(tmp_path):
    assert resolve_spec("downs").name == "downs"
    with pytest.raises(SpecError, match=r"no built-in measurement spec or analysis 'dows' "
                                        r"\(closest: downs"):
        resolve_spec("dows")
    with pytest.raises(SpecError, match="no such measurement spec file"):
        resolve_spec(tmp_path / "mine.yaml")


# -- the measurement CSV: class words and deviations -----------------------------------------
def _prediction_csv(path, spacing=True):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "landmark", "x", "y", "name", "spacing_x", "spacing_y"])
        for k, name in enumerate(NAMES):
            x, y = P[name]
            w.writerow(["ceph", k + 1, x, y, name, *(SPACING if spacing else ("", ""))])
    return path


def _rows(path):
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, list(reader)


def test_measure_writes_class_words_and_deviations(tmp_path):
    src = _prediction_csv(tmp_path / "p.csv")
    out = tmp_path / "m.csv"
    r = CliRunner().invoke(app, ["measure", str(src), "--out", str(out)])
    assert r.exit_code == 0, r.output
    header, (row,) = _rows(out)
    values = measure(ISBI, POINTS, NAMES, spacing=SPACING)
    labels = class_labels(ISBI)
    for name in ISBI.names:
        assert header.index(f"{name}_class_label") == header.index(f"{name}_class") + 1
        assert row[f"{name}_class_label"] == labels[name][int(row[f"{name}_class"])]
    assert float(row["APDI_norm_sd"]) == pytest.approx((values["APDI"] - 81.4) / 3.79,
                                                       abs=1e-5)
    # an analysis by name: every value, its deviation and its words
    r = CliRunner().invoke(app, ["measure", str(src), "--spec", "steiner", "--out", str(out)])
    assert r.exit_code == 0, r.output
    header, (row,) = _rows(out)
    # Pog-NB has no norm: no deviation column
    assert header == ["image", "SNA", "SNB", "ANB", "SN-GoGn", "Pog-NB", "SNA_norm_sd",
                      "SNB_norm_sd", "ANB_norm_sd", "SN-GoGn_norm_sd", "orientation",
                      "spacing_x", "spacing_y", "coordinates", "spec"]
    for key, expected in HAND["steiner"].items():
        assert float(row[key]) == pytest.approx(expected, abs=1e-5)
    assert float(row["ANB_norm_sd"]) == pytest.approx((HAND["steiner"]["ANB"] - 2) / 2,
                                                      abs=1e-5)
