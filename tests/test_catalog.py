import json

import numpy as np
import pytest

from unilandmark import (
    DatasetError,
    csv_dataset,
    dha_hand,
    isbi2015,
    labelme_dataset,
    shenzhen_chest,
)
from unilandmark.imageio.read import write_image


def test_isbi_real_split_counts(isbi_spec):
    counts = {k: len(v) for k, v in isbi_spec.splits.items()}
    assert counts == {"train": 150, "test1": 150, "test2": 100, "gu2net-train": 130,
                      "gu2net-val": 20, "gu2net-test": 250, "all": 400}
    assert isbi_spec.splits["test1"][0] == "151" and isbi_spec.num_landmarks == 19
    assert isbi_spec.record_map()["001"].points[0].tolist() == [835.0, 996.0]


def test_isbi_mean_annotator_is_the_average(isbi_root, isbi_spec):
    junior = isbi2015(isbi_root, annotator="junior").record_map()["017"].points
    mean = isbi2015(isbi_root, annotator="mean").record_map()["017"].points
    np.testing.assert_allclose(mean, (junior + isbi_spec.record_map()["017"].points) / 2)
    assert not np.array_equal(mean, np.round(mean))  # means are kept as floats, not rounded


def test_hand_real(hand_root):
    spec = dha_hand(hand_root)
    assert len(spec.records) == 9 and spec.info["labelled"] == 910
    assert spec.info["labelled_without_image"] == 901
    assert len(spec.splits["gu2net-train"]) + len(spec.splits["gu2net-test"]) == 9
    assert all(r.spacing and 0.1 < r.spacing[0] < 0.17 for r in spec.records)
    assert dha_hand(hand_root, wrist_pair=(2, 6)).info["wrist_pair"] == (2, 6)
    assert spec.splits["holdout-test"] == ("3229", "7081", "7236")
    assert len(spec.splits["holdout-train"]) == 6


def test_chest_real(chest_root):
    spec = shenzhen_chest(chest_root)
    assert len(spec.records) == 11 and spec.info["excluded"] == 9
    assert spec.info["labelled_without_image"] == 270 - 11
    assert len(spec.splits["gu2net-train"]) == 11  # 0001..0011 are all among the first 195
    assert spec.splits["holdout-test"] == ("CHNCXR_0003_0", "CHNCXR_0006_0", "CHNCXR_0009_0")
    r = spec.record_map()["CHNCXR_0001_0"]
    w, h = r.meta["size"]
    np.testing.assert_allclose(r.points[0], [0.41625 * w - 0.5, 0.14375 * h - 0.5])


def _fake_isbi(root, n=3, lines=None):
    for folder in ("TrainingData", "Test1Data", "Test2Data"):
        (root / "RawImage" / folder).mkdir(parents=True)
    for who in ("senior", "junior"):
        (root / "AnnotationsByMD" / f"400_{who}").mkdir(parents=True)
    for i in range(1, n + 1):
        write_image(root / "RawImage" / "TrainingData" / f"{i:03d}.bmp",
                    np.zeros((50, 40), np.uint8))
        for who in ("senior", "junior"):
            text = lines.get((i, who)) if lines and (i, who) in lines else \
                "\n".join(f"{5 + k},{6 + k}" for k in range(19)) + "\n1\n2\n"
            (root / "AnnotationsByMD" / f"400_{who}" / f"{i:03d}.txt").write_text(text)
    for folder in ("Test1Data", "Test2Data"):
        write_image(root / "RawImage" / folder / f"{900 + len(folder)}.png",
                    np.zeros((50, 40), np.uint8))
        for who in ("senior", "junior"):
            (root / "AnnotationsByMD" / f"400_{who}" / f"{900 + len(folder)}.txt").write_text(
                "\n".join("1,1" for _ in range(19)))


def test_isbi_reports_every_bad_annotation_together(tmp_path):
    bad = {(1, "senior"): "\n".join("5,6" for _ in range(12)),            # too few points
           (2, "senior"): "\n".join(["abc"] + ["5,6"] * 18),               # text
           (3, "senior"): "\n".join(["nan,4"] + ["5,6"] * 18)}             # NaN
    _fake_isbi(tmp_path, lines=bad)
    with pytest.raises(DatasetError) as info:
        isbi2015(tmp_path)
    text = str(info.value)
    assert len(info.value.faults) == 3
    assert "001.txt: record 001: expected 19 landmark lines" in text
    assert "002.txt: record 002: line 1: expected 'x,y'" in text and "'abc'" in text
    assert "003.txt: record 003: line 1" in text


def test_isbi_any_extension_and_empty_folder(tmp_path):
    _fake_isbi(tmp_path)
    assert len(isbi2015(tmp_path).records) == 5
    with pytest.raises(DatasetError, match="no image files found"):
        isbi2015(tmp_path / "nothing")


def test_hand_bad_rows(tmp_path):
    (tmp_path / "images").mkdir()
    write_image(tmp_path / "images" / "1.mha", np.zeros((30, 20), np.uint8), spacing=(0.1, 0.1))
    good = ",".join(["1"] + ["3"] * 74)
    (tmp_path / "all.csv").write_text(good + "\n" + ",".join(["2"] + ["3"] * 73) + "\n" +
                                      ",".join(["3", "x"] + ["3"] * 73) + "\n")
    with pytest.raises(DatasetError) as info:
        dha_hand(tmp_path)
    assert len(info.value.faults) == 2
    assert "line 2: expected 74 coordinates, found 73" in str(info.value)
    assert "line 3: column 2: not a finite number: 'x'" in str(info.value)


def test_chest_fraction_outside_unit_square(tmp_path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "images").mkdir()
    write_image(tmp_path / "images" / "CHNCXR_0001_0.png", np.zeros((20, 20), np.uint8))
    (tmp_path / "labels" / "CHNCXR_0001_0.txt").write_text("6\n" + "0.5 0.5\n" * 5 + "1.5 0.2\n")
    with pytest.raises(DatasetError, match=r"line 7: fractions must lie in \[0, 1\]"):
        shenzhen_chest(tmp_path)


def _labelme(path, shapes, image="img.png"):
    path.write_text(json.dumps({"imagePath": image, "shapes": [
        {"label": lb, "points": [pt], "shape_type": "point"} for lb, pt in shapes]}))


def test_labelme_union_visibility_and_duplicates(tmp_path):
    write_image(tmp_path / "img.png", np.zeros((40, 40), np.uint8))
    _labelme(tmp_path / "a.json", [("tip", [3, 4]), ("base", [10, 11])])
    _labelme(tmp_path / "b.json", [("tip", [5, 6])])
    spec = labelme_dataset(tmp_path)
    assert spec.landmark_names == ("base", "tip")
    b = spec.record_map()["b"]
    assert b.visible.tolist() == [False, True] and b.points[1].tolist() == [5.0, 6.0]
    spec2 = labelme_dataset(tmp_path, landmarks=["tip", "base", "nose"])
    assert spec2.record_map()["a"].visible.tolist() == [True, True, False]
    _labelme(tmp_path / "c.json", [("tip", [1, 1]), ("tip", [2, 2])])
    _labelme(tmp_path / "d.json", [("tip", [1, 1])], image="missing.png")
    with pytest.raises(DatasetError) as info:
        labelme_dataset(tmp_path)
    assert len(info.value.faults) == 2
    assert "c.json: record c: label 'tip' given twice" in str(info.value)
    assert "d.json: record d: imagePath 'missing.png' does not exist" in str(info.value)


def test_csv_wide_and_long(tmp_path):
    write_image(tmp_path / "a.png", np.zeros((30, 30), np.uint8))
    write_image(tmp_path / "b.png", np.zeros((30, 30), np.uint8))
    (tmp_path / "wide.csv").write_text("image,split,spacing,x1,y1,x2,y2\n"
                                       "a.png,train,0.5,1.5,2,3,4\nb.png,test,,5,6,,\n")
    spec = csv_dataset(tmp_path / "wide.csv", spacing=0.2)
    a, b = spec.record_map()["a"], spec.record_map()["b"]
    assert a.spacing == (0.5, 0.5) and b.spacing == (0.2, 0.2)
    assert b.visible.tolist() == [True, False]
    assert spec.splits["train"] == ("a",) and spec.unit == "mm"
    (tmp_path / "long.csv").write_text("image,landmark,x,y,name\na,1,1,2,tip\na,2,3,4,base\n"
                                       "b,1,5,6,tip\nb,2,,,base\n")  # marked not visible
    spec = csv_dataset(tmp_path / "long.csv", images=tmp_path)
    assert spec.landmark_names == ("tip", "base")
    assert spec.record_map()["b"].visible.tolist() == [True, False]
    assert spec.unit == "px"


def test_csv_faults_together(tmp_path):
    write_image(tmp_path / "a.png", np.zeros((30, 30), np.uint8))
    write_image(tmp_path / "b.png", np.zeros((30, 30), np.uint8))
    (tmp_path / "t.csv").write_text("image,spacing,x1,y1\na.png,0,1,2\na2.png,,abc,2\n"
                                    "b.png,,1,\n")
    with pytest.raises(DatasetError) as info:
        csv_dataset(tmp_path / "t.csv")
    text = str(info.value)
    assert "line 2: spacing must be positive and finite, got (0, 0)" in text
    assert "not a finite number: 'abc'" in text and "a2.png' does not exist" in text
    assert "x and y must both be given" in text


def test_isbi_mirrored_copy_of_image_322_is_corrected_by_content(isbi_root, monkeypatch):
    """The JPEG copy's test2 image 322 faces left while its annotations are those of the
    right-facing image: the adapter mirrors them to fit, only for that exact file."""
    from unilandmark.data.adapters import catalog

    raw = isbi2015(isbi_root, errata=False).record_map()["322"]
    fixed = isbi2015(isbi_root).record_map()["322"]
    assert raw.points[1, 0] > raw.points[0, 0]  # as distributed: nasion right of sella
    np.testing.assert_allclose(fixed.points[:, 0], 1934 - raw.points[:, 0])
    np.testing.assert_allclose(fixed.points[:, 1], raw.points[:, 1])
    assert fixed.meta["orientation"] == "mirrored"
    assert any(e.startswith("322:") for e in isbi2015(isbi_root).info["errata"])
    other = isbi2015(isbi_root).record_map()["321"]
    np.testing.assert_allclose(other.points, isbi2015(isbi_root, errata=False)
                               .record_map()["321"].points)
    # another copy of the release (other bytes) is left as it is
    monkeypatch.setitem(catalog.ISBI_MIRRORED_COPIES, "322", "0" * 64)
    untouched = isbi2015(isbi_root)
    np.testing.assert_allclose(untouched.record_map()["322"].points, raw.points)
    assert untouched.info["errata"] == []
