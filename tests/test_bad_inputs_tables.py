"""Bad inputs, part 1: spreadsheet tables and labelme folders (see docs/refusals.md).

Each test asserts the exit code, that the message names the file and the fault, and that
nothing on disk was changed or left half-written.
"""

import codecs
import json

import numpy as np
import pytest

from tests.bad_inputs import assert_refused, assert_unchanged, cli, phantom_images, snapshot
from unilandmark import csv_dataset, labelme_dataset

PLAIN = ("id,image,split,spacing,tip_x,tip_y,base_x,base_y\n"
         "a,img/a.png,train,0.25,1.5,2.25,30,20.5\n"
         "b,img/b.png,test,,3,4,,\n")


def _spreadsheet_copy(text: str, delimiter: str) -> str:
    """The table as a European spreadsheet writes it: another delimiter, decimal
    commas, CRLF line ends."""
    lines = []
    for line in text.strip().split("\n"):
        cells = [c.replace(".", ",") if c.replace(".", "").isdigit() else c
                 for c in line.split(",")]
        lines.append(delimiter.join(cells))
    return "\r\n".join(lines) + "\r\n"


def test_good_tables_from_spreadsheets_read_like_the_plain_one(tmp_path):
    """Kept good: UTF-8 with BOM + semicolons + decimal commas, and UTF-16 + tabs."""
    phantom_images(tmp_path / "img", ["a.png", "b.png"])
    (tmp_path / "plain.csv").write_text(PLAIN)
    semicolon = _spreadsheet_copy(PLAIN, ";")
    assert "0,25" in semicolon and "1,5" in semicolon
    (tmp_path / "excel.csv").write_bytes(codecs.BOM_UTF8 + semicolon.encode())
    (tmp_path / "unicode.csv").write_bytes(_spreadsheet_copy(PLAIN, "\t").encode("utf-16"))
    plain = csv_dataset(tmp_path / "plain.csv")
    for name in ("excel.csv", "unicode.csv"):
        spec = csv_dataset(tmp_path / name)
        assert spec.landmark_names == ("tip", "base") == plain.landmark_names
        assert [r.id for r in spec.records] == ["a", "b"]  # the BOM did not eat 'id'
        for r, p in zip(spec.records, plain.records, strict=True):
            np.testing.assert_array_equal(r.points, p.points)
            assert r.spacing == p.spacing and r.image_path == p.image_path
        assert spec.splits["train"] == ("a",)


def test_ragged_rows_and_unpaired_columns_are_faults(tmp_path):
    phantom_images(tmp_path / "img", ["a.png", "b.png"])
    (tmp_path / "t.csv").write_text(
        "image;spacing;tip_x;tip_y;base_x;nose_y\n"
        "img/a.png;0,2;1;2;3;4\n"
        "img/b.png;0,2;1;2;3;4;99\n")
    before = snapshot(tmp_path)
    r = cli("datasets", "export", "csv", "--root", tmp_path / "t.csv", "--split", "all",
            "--out", tmp_path / "gt.csv")
    assert_refused(r, 2, "t.csv", "line 3: 7 cells, the header has 6 (delimiter semicolon)",
                   "line 1: column 'base_x' has no partner column 'base_y'",
                   "column 'nose_y' has no partner column 'nose_x'")
    assert_unchanged(tmp_path, before)


def test_long_table_with_an_extra_landmark_row_is_a_fault(tmp_path):
    phantom_images(tmp_path, ["a.png", "b.png", "c.png"])
    rows = [f"{i},{k},{k}.5,{k}" for i in "abc" for k in (1, 2)]
    rows.insert(3, "b,3,7,7")  # one image with a third landmark
    (tmp_path / "long.csv").write_text("image,landmark,x,y\n" + "\n".join(rows) + "\n")
    before = snapshot(tmp_path)
    r = cli("datasets", "check", "csv", "--root", tmp_path / "long.csv")
    assert_refused(r, 1, "long.csv: record b: line 5: landmark 3, but most images have "
                         "landmarks 1..2", "inconsistent landmark counts")
    assert_unchanged(tmp_path, before)


@pytest.mark.parametrize("content,fault", [
    ("image,x1,y1\nimg/\u00e9.png,1,2\n".encode("cp1252"), "line 2: not UTF-8 text (byte 0xe9)"),
    ("image,x1,y1\n".encode("utf-16-le"), "UTF-16 text without a byte-order mark"),
])
def test_tables_in_unreadable_encodings_are_named(tmp_path, content, fault):
    (tmp_path / "t.csv").write_bytes(content)
    before = snapshot(tmp_path)
    r = cli("datasets", "export", "csv", "--root", tmp_path / "t.csv", "--split", "all",
            "--out", tmp_path / "gt.csv")
    assert_refused(r, 2, "t.csv", fault)
    assert_unchanged(tmp_path, before)


def _labelme(path, shapes, image="img.png"):
    path.write_text(json.dumps({"imagePath": image, "shapes": [
        {"label": lb, "points": [pt], "shape_type": "point"} for lb, pt in shapes]}))


def test_labelme_label_typo_is_a_fault_naming_the_file(tmp_path):
    phantom_images(tmp_path, ["img.png"])
    for i in range(5):
        _labelme(tmp_path / f"p{i}.json", [("a", [3, 4]), ("c", [10, 11])])
    _labelme(tmp_path / "p5.json", [("a", [3, 4]), ("C", [10, 11])])
    before = snapshot(tmp_path)
    r = cli("datasets", "check", "labelme", "--root", tmp_path)
    assert_refused(r, 1, "p5.json: record p5: label 'C' appears in only 1 of 6 files; "
                         "likely a typo of 'c'", "--opt landmarks=")
    assert_unchanged(tmp_path, before)
    # given the landmark list, the label is accepted as a landmark of its own
    spec = labelme_dataset(tmp_path, landmarks="a,c,C")
    assert spec.record_map()["p5"].visible.tolist() == [True, False, True]


def test_labelme_malformed_structure_is_a_fault_not_a_traceback(tmp_path):
    phantom_images(tmp_path, ["img.png"])
    _labelme(tmp_path / "good.json", [("a", [3, 4])])
    (tmp_path / "five.json").write_text(json.dumps({"imagePath": "img.png", "shapes": 5}))
    (tmp_path / "items.json").write_text(json.dumps({"imagePath": "img.png",
                                                     "shapes": [5, "x"]}))
    (tmp_path / "points.json").write_text(json.dumps({"imagePath": "img.png", "shapes": [
        {"label": "a", "points": "abc"}, {"label": ["a"], "points": [[1, 2]]}]}))
    (tmp_path / "path.json").write_text(json.dumps({"imagePath": 7, "shapes": []}))
    before = snapshot(tmp_path)
    r = cli("datasets", "check", "labelme", "--root", tmp_path)
    assert_refused(r, 1, "five.json: record five: 'shapes' must be a list of shapes, got int 5",
                   "items.json: record items: shape 0: expected an object",
                   "points.json: record points: shape 0 ('a'): expected one [x, y] point",
                   "shape 1: point without a text label",
                   "path.json: record path: no 'imagePath'")
    assert_unchanged(tmp_path, before)


def test_labelme_windows_paths_and_label_counts_kept_good(tmp_path):
    phantom_images(tmp_path / "images", ["a.png", "b.png"])
    (tmp_path / "json").mkdir()
    _labelme(tmp_path / "json" / "a.json", [("tip", [3, 4]), ("base", [10, 11])],
             image="..\\images\\a.png")
    _labelme(tmp_path / "json" / "b.json", [("tip", [5, 6])], image="../images/b.png")
    r = cli("datasets", "check", "labelme", "--root", tmp_path / "json")
    assert r.exit_code == 0, r.output
    assert "label counts: {'base': 1, 'tip': 2}" in r.output
    assert "files lacking a label: {'base': 'b.json'}" in r.output
