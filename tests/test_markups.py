"""Landmark files for volumes: Slicer markups (.fcsv, .mrk.json), label maps, the volume
CSV and the AFIDs adapter (issue 20). Real data from ../shared/data, skipped when absent;
world points are checked against SimpleITK's own index <-> physical point maps."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from unilandmark.core.errors import InputError
from unilandmark.data.adapters.volumes import afids_templates, volume_csv_dataset
from unilandmark.data.faults import DatasetError
from unilandmark.data.labelmaps import (
    LabelPoint,
    points_from_labelmap,
    volume_frame,
    write_labelmap,
)
from unilandmark.data.markups import (
    MARKUPS_SCHEMA,
    LandmarkFileError,
    ras_to_lps,
    read_markups,
    write_markups,
)

from .conftest import _require

TEMPLATES = ("MNI152Lin", "MNI152NLin6Asym", "MNI305", "MNIColin27")


@pytest.fixture(scope="module")
def afids_root() -> Path:
    return _require("afids_templates")


@pytest.fixture(scope="module")
def sct_root() -> Path:
    return _require("sct_t2")


def _volume(root: Path, template: str) -> Path:
    return next((root / "images").glob(f"{template}.nii*"))


def _sitk_to_index(image_info, world_lps: np.ndarray) -> np.ndarray:
    return np.array([image_info.TransformPhysicalPointToContinuousIndex(tuple(map(float, p)))
                     for p in world_lps])


def _header(path: Path) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return reader


def _as_image(reader: sitk.ImageFileReader) -> sitk.Image:
    """An empty image with the header's geometry (for SimpleITK's point maps)."""
    image = sitk.Image(list(reader.GetSize()), sitk.sitkUInt8)
    image.SetSpacing(reader.GetSpacing())
    image.SetOrigin(reader.GetOrigin())
    image.SetDirection(reader.GetDirection())
    return image


# --------------------------------------------------------------------------- real .fcsv


@pytest.mark.parametrize("template", TEMPLATES)
def test_afids_consensus_reads_inside_its_volume(afids_root, template):
    m = read_markups(afids_root / "afids" / f"{template}.fcsv")
    assert len(m) == 32 and m.points_lps.shape == (32, 3) and m.visible.all()
    assert m.source_frame == "RAS"
    assert m.labels == tuple(str(i) for i in range(1, 33))  # label: numbers; desc: names
    assert m.descriptions[:2] == ("AC", "PC") and m.descriptions[-1] == "L olfactory sulcal fundus"
    # RAS in the file, LPS in memory: x and y change sign, z does not
    first = next(ln for ln in (afids_root / "afids" / f"{template}.fcsv").read_text()
                 .splitlines() if not ln.startswith("#"))
    x, y, z = map(float, first.split(",")[1:4])
    np.testing.assert_array_equal(m.points_lps[0], [-x, -y, z])
    # right-hemisphere points have x > 0 in RAS, left ones x < 0
    ras = m.points_ras
    right = [i for i, d in enumerate(m.descriptions) if d.startswith("R ")]
    left = [i for i, d in enumerate(m.descriptions) if d.startswith("L ")]
    assert len(right) == len(left) == 11  # and 10 on the midline
    assert (ras[right, 0] > 0).all() and (ras[left, 0] < 0).all()
    # inside the volume, through the volume's own geometry (SimpleITK's map)
    image = _as_image(_header(_volume(afids_root, template)))
    index = _sitk_to_index(image, m.points_lps)
    size = np.array(image.GetSize())
    assert (index >= -0.5).all() and (index <= size - 0.5).all()


def test_afids_rater_files_read_as_the_same_32_landmarks(afids_root):
    files = sorted((afids_root / "raters").glob("*/*.fcsv"))
    assert len(files) == 40  # 4 + 4 + 32 rater sessions
    for path in files:
        m = read_markups(path)
        assert len(m) == 32 and m.visible.all() and m.source_frame == "RAS", path
        # labels are free-form (numbers, 01, abbreviations); numeric ones count 1..32
        for k, label in enumerate(m.labels):
            assert not label.isdigit() or int(label) == k + 1, (path, k, label)
        # same landmarks in the same order: each rater lies near the consensus
        consensus = read_markups(afids_root / "afids" / f"{path.parent.name}.fcsv")
        dist = np.linalg.norm(m.points_lps - consensus.points_lps, axis=1)
        assert np.median(dist) < 5.0, path


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", [".fcsv", ".mrk.json"])
def test_round_trip_from_ras_file(afids_root, tmp_path, suffix):
    m = read_markups(afids_root / "afids" / "MNI305.fcsv")  # a RAS file
    out = write_markups(tmp_path / f"copy{suffix}", m.descriptions, m.points_lps, m.labels)
    back = read_markups(out)
    assert back.source_frame == "LPS"
    np.testing.assert_allclose(back.points_lps, m.points_lps, rtol=0, atol=1e-9)
    assert back.labels == m.descriptions and back.descriptions == m.labels


@pytest.mark.parametrize("system", ["1", "LPS", "0", "RAS", None])
@pytest.mark.parametrize("suffix", [".fcsv", ".mrk.json"])
def test_round_trip_from_lps_and_ras_inputs(tmp_path, system, suffix):
    given = np.array([[10.25, -3.5, 7.0], [-1e-3, 200.125, -45.75], [0.1, 0.2, 0.3]])
    header = ["# Markups fiducial file version = 4.10"]
    if system is not None:
        header.append(f"# CoordinateSystem = {system}")
    header.append("# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID")
    rows = [f"p{i},{float(p[0])!r},{float(p[1])!r},{float(p[2])!r},0,0,0,1,1,1,0,L{i},d{i},vol"
            for i, p in enumerate(given)]
    src = tmp_path / "in.fcsv"
    src.write_text("\r\n".join(header + rows))  # CRLF, no final newline: as some real files
    m = read_markups(src)
    lps = given if system in ("1", "LPS") else given * [-1, -1, 1]
    np.testing.assert_array_equal(m.points_lps, lps)
    assert m.labels == ("L0", "L1", "L2") and m.descriptions == ("d0", "d1", "d2")
    back = read_markups(write_markups(tmp_path / f"out{suffix}", m.labels, m.points_lps))
    np.testing.assert_allclose(back.points_lps, lps, rtol=0, atol=1e-9)
    assert back.labels == m.labels


def test_mrk_json_is_written_as_slicer_5_writes_it(tmp_path):
    pts = np.array([[1.5, -2.0, 3.25], [np.nan] * 3])
    path = write_markups(tmp_path / "a.mrk.json", ["AC", "PC"], pts)
    doc = json.loads(path.read_text())
    assert doc["@schema"] == MARKUPS_SCHEMA
    assert MARKUPS_SCHEMA.endswith("markups-schema-v1.0.3.json#")
    (markup,) = doc["markups"]
    assert markup["type"] == "Fiducial" and markup["coordinateSystem"] == "LPS"
    assert markup["coordinateUnits"] == "mm"
    first, second = markup["controlPoints"]
    assert first["position"] == [1.5, -2.0, 3.25] and first["positionStatus"] == "defined"
    assert first["label"] == "AC" and first["id"] == "1"
    assert second["positionStatus"] == "undefined" and "position" not in second
    assert '"position": [1.5, -2.0, 3.25]' in path.read_text()  # one line, as Slicer


def test_mrk_json_in_ras_reads_as_lps(tmp_path):
    ras = [[12.0, -30.5, 8.25], [-4.0, 2.0, -1.0]]
    doc = {"@schema": MARKUPS_SCHEMA.replace("1.0.3", "1.0.0"),
           "markups": [{"type": "Fiducial", "coordinateSystem": "RAS",
                        "controlPoints": [{"id": str(i + 1), "label": f"F-{i + 1}",
                                           "position": p, "positionStatus": "defined"}
                                          for i, p in enumerate(ras)]}]}
    path = tmp_path / "ras.mrk.json"
    path.write_text(json.dumps(doc))
    m = read_markups(path)
    assert m.source_frame == "RAS"
    np.testing.assert_array_equal(m.points_lps, ras_to_lps(ras))
    np.testing.assert_array_equal(m.points_lps, [[-12.0, 30.5, 8.25], [4.0, -2.0, -1.0]])
    np.testing.assert_array_equal(m.points_ras, ras)


def test_undefined_control_points_read_as_nan(tmp_path):
    points = [{"label": "a", "position": [1.0, 2.0, 3.0], "positionStatus": "defined"},
              {"label": "b", "position": [0.0, 0.0, 0.0], "positionStatus": "undefined"},
              {"label": "c", "position": "", "positionStatus": "undefined"},  # Slicer 5
              {"label": "d", "positionStatus": "undefined"},
              {"label": "e"},  # no position, no status: undefined
              {"label": "f", "position": [4.0, 5.0, 6.0]},  # no status: defined
              {"label": "g", "position": [7.0, 8.0, 9.0], "positionStatus": "preview"}]
    path = tmp_path / "u.mrk.json"
    path.write_text(json.dumps({"@schema": MARKUPS_SCHEMA, "markups": [
        {"type": "Fiducial", "coordinateSystem": "LPS", "controlPoints": points}]}))
    m = read_markups(path)
    assert m.labels == tuple("abcdefg")
    assert m.visible.tolist() == [True, False, False, False, False, True, False]
    np.testing.assert_array_equal(m.points_lps[[0, 5]], [[1, 2, 3], [4, 5, 6]])
    assert np.isnan(m.points_lps[~m.visible]).all()
    with pytest.raises(InputError, match=r"u\.fcsv: points 2 \('b'\).*NaN.*\.mrk\.json"):
        write_markups(tmp_path / "u.fcsv", m.labels, m.points_lps)


# --------------------------------------------------------------------------- faults


def test_fcsv_broken_lines_are_reported_together(tmp_path):
    path = tmp_path / "broken.fcsv"
    path.write_text("# Markups fiducial file version = 4.10\n"
                    "# CoordinateSystem = 0\n"
                    "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID\n"
                    "a,1,2,3,0,0,0,1,1,1,0,ok,,\n"
                    "b,1,abc,3,0,0,0,1,1,1,0,bad y,,\n"
                    "c,1,2,3,0,0,0,1,1,1,0,ok,,\n"
                    "d,1,2\n"
                    "e,nan,2,3,0,0,0,1,1,1,0,bad x,,\n"
                    "f,1,2,3,0,0,0,1,1,1,0,R,superior,LMS,,\n")
    with pytest.raises(LandmarkFileError) as caught:
        read_markups(path)
    err = caught.value
    assert isinstance(err, InputError) and isinstance(err, DatasetError)
    text = str(err)
    assert len(err.faults) == 4
    for line in ("line 5", "line 7", "line 8", "line 9"):
        assert line in text
    assert "line 4:" not in text and "line 6:" not in text
    assert str(path) in text and "y = 'abc'" in text and "unquoted comma" in text


def test_unknown_coordinate_system_is_one_sentence(tmp_path):
    path = tmp_path / "ijk.fcsv"
    path.write_text("# Markups fiducial file version = 4.10\n# CoordinateSystem = 2\n"
                    "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID\n"
                    "a,1,2,3,0,0,0,1,1,1,0,ok,,\n")
    with pytest.raises(InputError) as caught:
        read_markups(path)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(str(path))
    assert "line 2" in text and "unknown coordinate system '2'" in text and "IJK" in text
    js = tmp_path / "frame.mrk.json"
    js.write_text(json.dumps({"@schema": MARKUPS_SCHEMA, "markups": [
        {"type": "Fiducial", "coordinateSystem": "XYZ", "controlPoints": []}]}))
    with pytest.raises(InputError, match=r"^.*frame\.mrk\.json: unknown coordinate system "
                                         r"'XYZ'; expected 'LPS' or 'RAS'$"):
        read_markups(js)


@pytest.mark.parametrize("content, fault", [
    ({"@schema": MARKUPS_SCHEMA}, "no 'markups' list"),
    ([1, 2, 3], "no 'markups' list"),
    ({"@schema": MARKUPS_SCHEMA, "markups": []}, "exactly one markup of type 'Fiducial'"),
    ({"@schema": MARKUPS_SCHEMA, "markups": [{"type": "Line", "controlPoints": []}]},
     "found 0 \\(markup types: Line\\)"),
    ({"@schema": "https://example.org/other.json", "markups": []}, "not a Slicer markups"),
])
def test_json_without_a_point_list_is_one_sentence(tmp_path, content, fault):
    path = tmp_path / "x.mrk.json"
    path.write_text(json.dumps(content))
    with pytest.raises(InputError, match=fault) as caught:
        read_markups(path)
    assert "\n" not in str(caught.value) and str(caught.value).startswith(str(path))


def test_other_json_and_name_faults(tmp_path):
    bad = tmp_path / "bad.mrk.json"
    bad.write_text('{"markups": [\n  {"type": "Fiducial",,}]}')
    with pytest.raises(InputError, match=r"bad\.mrk\.json: line 2: not JSON"):
        read_markups(bad)
    status = tmp_path / "status.mrk.json"
    status.write_text(json.dumps({"markups": [{"type": "Fiducial", "controlPoints": [
        {"label": "a", "positionStatus": "maybe"},
        {"label": "b", "position": [1, 2], "positionStatus": "defined"}]}]}))
    with pytest.raises(LandmarkFileError) as caught:
        read_markups(status)
    assert len(caught.value.faults) == 2
    assert "control point 1 ('a'): unknown positionStatus 'maybe'" in str(caught.value)
    assert "control point 2 ('b')" in str(caught.value)
    with pytest.raises(InputError, match="not a Slicer markups file name"):
        read_markups(tmp_path / "points.csv")
    with pytest.raises(InputError, match="no '# Markups fiducial file version'"):
        (tmp_path / "plain.fcsv").write_text("a,1,2,3\n")
        read_markups(tmp_path / "plain.fcsv")


# --------------------------------------------------------------------------- label maps


@pytest.mark.parametrize("name, labels", [("labels.nii.gz", [3, 5]),
                                          ("t2_labeled_center_manual.nii.gz", [3, 4, 5])])
def test_sct_label_map_reads_and_writes_back(sct_root, tmp_path, name, labels):
    path = sct_root / name
    points = points_from_labelmap(path)
    assert list(points) == labels
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    for value, p in points.items():
        assert p.voxels == 1
        x, y, z = (int(v) for v in p.index)
        assert (x, y, z) == p.index and array[z, y, x] == value  # (x, y, z) = axes reversed
        np.testing.assert_allclose(p.world_lps, image.TransformContinuousIndexToPhysicalPoint(
            p.index), atol=1e-9)
    # the direction permutes the axes: index order and world order differ
    frame = volume_frame(sct_root / "t2.nii.gz")
    assert not np.allclose(np.abs(frame.direction), np.eye(3))
    # the same from (array, image)
    assert points_from_labelmap((array, image)) == points
    # written back on the T2 volume's grid (world points), read again: the same voxels
    out = write_labelmap(tmp_path / "back.nii.gz", sct_root / "t2.nii.gz",
                         {v: p.world_lps for v, p in points.items()})
    again = points_from_labelmap(out)
    assert {v: p.index for v, p in again.items()} == {v: p.index for v, p in points.items()}
    for v in points:
        np.testing.assert_allclose(again[v].world_lps, points[v].world_lps, atol=1e-9)
    # points a little off the voxel centre go to the nearest voxel; voxel frame works too
    nudged = {v: np.asarray(p.world_lps) + [0.3, -0.4, 0.2] for v, p in points.items()}
    out2 = write_labelmap(tmp_path / "nudged.nii", sct_root / "t2.nii.gz", nudged)
    assert {v: p.index for v, p in points_from_labelmap(out2).items()} == \
        {v: p.index for v, p in points.items()}
    out3 = write_labelmap(tmp_path / "vox.nii.gz", image, {v: p.index for v, p in points.items()},
                          frame="voxel")
    assert points_from_labelmap(out3) == points_from_labelmap(out)


def _small_volume(tmp_path: Path, name: str = "vol.nii.gz") -> Path:
    """A 7 x 5 x 4 (x, y, z) volume with permuted, flipped axes and anisotropic spacing."""
    image = sitk.GetImageFromArray(np.arange(4 * 5 * 7, dtype=np.int16).reshape(4, 5, 7))
    image.SetSpacing((0.5, 1.25, 2.0))
    image.SetOrigin((10.0, -20.0, 5.5))
    image.SetDirection((0, 0, 1, -1, 0, 0, 0, 1, 0))
    path = tmp_path / name
    sitk.WriteImage(image, str(path))
    return path


def test_label_centroid_and_write_faults(tmp_path):
    vol = _small_volume(tmp_path)
    image = sitk.ReadImage(str(vol))
    labels = np.zeros((4, 5, 7), dtype=np.uint16)
    labels[1, 2, 3] = labels[1, 2, 4] = labels[3, 2, 4] = 7  # (x, y, z): (3,2,1) (4,2,1) (4,2,3)
    labels[0, 0, 0] = 300
    points = points_from_labelmap((labels, image))
    assert list(points) == [7, 300]
    assert points[7].voxels == 3
    np.testing.assert_allclose(points[7].index, [11 / 3, 2.0, 5 / 3])
    np.testing.assert_allclose(points[7].world_lps,
                               image.TransformContinuousIndexToPhysicalPoint(points[7].index))
    out = write_labelmap(tmp_path / "wide.nii.gz", vol, points)
    assert sitk.ReadImage(str(out)).GetPixelID() == sitk.sitkUInt16
    assert points_from_labelmap(out)[7].index == (4.0, 2.0, 2.0)  # rounded to one voxel
    with pytest.raises(LandmarkFileError) as caught:
        write_labelmap(tmp_path / "bad.nii.gz", vol,
                       {1: (0, 0, 0), 2: (0.2, 0.1, 0.0), 0: (1, 1, 1), 4: (9, 0, 0),
                        5: (np.nan,) * 3}, frame="voxel")
    text = str(caught.value)
    assert len(caught.value.faults) == 3
    assert "label 2: nearest voxel [0, 0, 0] already holds label 1" in text
    assert "label 0: label values are positive integers" in text
    assert "label 4: point [9.0, 0.0, 0.0] (voxel) lies outside the volume" in text
    assert not (tmp_path / "bad.nii.gz").exists()
    with pytest.raises(LandmarkFileError, match="non-integer"):
        points_from_labelmap((labels.astype(np.float32) + 0.5, image))


def test_volume_frame_matches_simpleitk(sct_root, tmp_path):
    for path in (sct_root / "t2.nii.gz", _small_volume(tmp_path)):
        frame = volume_frame(path)
        image = _as_image(_header(path))
        rng = np.random.default_rng(0)
        index = rng.uniform(-0.5, np.array(frame.size) - 0.5, size=(20, 3))
        world = frame.index_to_world(index)
        expect = np.array([image.TransformContinuousIndexToPhysicalPoint(tuple(i))
                           for i in index])
        np.testing.assert_allclose(world, expect, atol=1e-9)
        np.testing.assert_allclose(frame.world_to_index(world), index, atol=1e-9)
        np.testing.assert_allclose(_sitk_to_index(image, world), index, atol=1e-9)


# --------------------------------------------------------------------------- adapters


def test_afids_adapter(afids_root):
    spec = afids_templates(afids_root)
    assert spec.name == "afids-templates" and spec.unit == "mm"
    assert len(spec.records) == 4 and spec.num_landmarks == 32
    assert spec.landmark_names[0] == "AC" and spec.landmark_names[-1] == \
        "L olfactory sulcal fundus"
    assert spec.splits["all"] == TEMPLATES
    for t in TEMPLATES:
        assert spec.splits[f"loo-{t}"] == (t,)
        assert spec.info["leave_one_out"][t]["train"] == [i for i in TEMPLATES if i != t]
    assert len(spec.info["rater_files"]["MNIColin27"]) == 32
    assert len(spec.info["rater_files"]["MNI305"]) == 4
    assert spec.info["rater_files"]["MNI152Lin"] == []
    for record in spec.records:
        assert record.points.shape == (32, 3) and record.visible.all()
        assert record.spacing == (2.0, 2.0, 2.0)
        assert record.meta["source_frame"] == "RAS" and record.meta["world_frame"] == "LPS"
        image = _as_image(_header(Path(record.image_path)))
        world = np.array([image.TransformContinuousIndexToPhysicalPoint(tuple(p))
                          for p in record.points])
        fcsv = read_markups(afids_root / "afids" / f"{record.id}.fcsv")
        np.testing.assert_allclose(world, fcsv.points_lps, rtol=0, atol=1e-6)
        np.testing.assert_allclose(record.meta["world_lps"], fcsv.points_lps, atol=0)


def test_afids_adapter_raters(afids_root):
    spec = afids_templates(afids_root, rater="rater01")
    assert spec.splits["all"] == ("MNI152NLin6Asym", "MNI305")
    assert sorted(spec.info["without_rater"]) == ["MNI152Lin", "MNIColin27"]
    spec = afids_templates(afids_root, rater="tpl-MNIColin27_desc-rater05s01_afids")
    assert spec.splits["all"] == ("MNIColin27",) and spec.num_landmarks == 32
    record = spec.records[0]
    assert record.meta["landmark_file"].endswith("tpl-MNIColin27_desc-rater05s01_afids.fcsv")
    tags = sorted({re.search(r"_desc-([^_]+)_", p.name).group(1)
                   for p in (afids_root / "raters").glob("*/*.fcsv")})
    for tag in tags:  # every rater file is a valid AFIDs file
        assert afids_templates(afids_root, rater=tag).records
    with pytest.raises(InputError, match="no rater file 'nobody'.*rater01"):
        afids_templates(afids_root, rater="nobody")


def _cells(point) -> list[str]:
    return [repr(float(v)) for v in point]


def _csv(path: Path, rows, frame_column=True) -> Path:
    head = "image,landmark,x,y,z" + (",frame" if frame_column else "") + ",name\n"
    path.write_text(head + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def test_volume_csv_frames_give_the_same_records(tmp_path):
    vol = _small_volume(tmp_path)
    frame = volume_frame(vol)
    index = np.array([[0.0, 0.0, 0.0], [6.0, 4.0, 3.0], [2.25, 1.5, 0.75]])
    lps = frame.index_to_world(index)
    ras = lps * [-1, -1, 1]
    specs = []
    for name, pts in (("voxel", index), ("world-lps", lps), ("world-ras", ras)):
        rows = [("vol", k + 1, *_cells(p), name, f"lm{k + 1}") for k, p in enumerate(pts)]
        rows.append(("vol", 5, "", "", "", name, "lm5"))  # absent, and landmark 4 missing
        specs.append(volume_csv_dataset(_csv(tmp_path / f"{name}.csv", rows)))
    # the frame as an option instead of a column
    rows = [("vol", k + 1, *_cells(p), f"lm{k + 1}") for k, p in enumerate(lps)]
    rows.append(("vol", 5, "", "", "", "lm5"))
    specs.append(volume_csv_dataset(_csv(tmp_path / "opt.csv", rows, frame_column=False),
                                    images=tmp_path, frame="world-lps"))
    for spec in specs:
        assert spec.landmark_names == ("lm1", "lm2", "lm3", "4", "lm5")
        (record,) = spec.records
        assert record.id == "vol" and record.spacing == (0.5, 1.25, 2.0)
        assert record.visible.tolist() == [True, True, True, False, False]
        np.testing.assert_allclose(record.points[:3], index, atol=1e-9)
        np.testing.assert_allclose(record.meta["world_lps"][:3], lps, atol=1e-9)
        assert np.isnan(record.points[3:]).all()


def test_volume_csv_faults(tmp_path):
    vol = _small_volume(tmp_path)
    lps = volume_frame(vol).index_to_world(np.array([[6.0, 4.0, 3.0]]))[0]
    rows = [("vol", 1, *lps, "world-ras", "a"),  # RAS given for an LPS point: outside
            ("vol", "x", 1, 2, 3, "voxel", "b"),
            ("vol", 2, 1, "", 3, "voxel", "c"),
            ("vol", 3, 1, 2, 3, "mm", "d"),
            ("nope", 1, 1, 2, 3, "voxel", "a")]
    with pytest.raises(DatasetError) as caught:
        volume_csv_dataset(_csv(tmp_path / "bad.csv", rows))
    text = str(caught.value)
    assert len(caught.value.faults) == 5
    for part in ("line 2: landmark 1 ('a') lies outside the volume", "check the frame",
                 "line 3: landmark is not an integer", "line 4: landmark 2: x, y and z",
                 "line 5: frame 'mm'", "no volume file with stem 'nope'"):
        assert part in text
    with pytest.raises(DatasetError, match="no 'frame' column and no frame option"):
        volume_csv_dataset(_csv(tmp_path / "noframe.csv", [("vol", 1, 1, 2, 3, "a")],
                                frame_column=False))


def test_label_point_values_are_accepted_by_write(tmp_path):
    vol = _small_volume(tmp_path)
    frame = volume_frame(vol)
    p = LabelPoint((1.0, 2.0, 3.0), tuple(frame.index_to_world([1.0, 2.0, 3.0])), 1)
    out = write_labelmap(tmp_path / "lp.nii.gz", vol, {9: p})
    assert points_from_labelmap(out)[9].index == (1.0, 2.0, 3.0)


def test_datasets_check_reads_the_afids_volumes_without_faults():
    """The volume adapters are in the catalog, and `datasets check` validates volume
    records (3-D points inside the volume, a 3-value spacing)."""
    from typer.testing import CliRunner

    from unilandmark.cli import app

    root = _require("afids_templates")
    r = CliRunner().invoke(app, ["datasets", "check", "afids", "--root", str(root)])
    assert r.exit_code == 0, r.output
    assert "no faults" in r.output and "volume size (X x Y x Z): 91x109x91" in r.output
