"""Volumes with their world geometry: core.world (index <-> LPS millimetres, orientation
codes), imageio.volume (read/write NIfTI, NRRD, MetaImage, DICOM series) and
imageio.reorient (resampling, axis permutations). Real volumes are read from
../shared/data (skipped with a reason when absent)."""

from __future__ import annotations

import csv
import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from unilandmark.core.errors import InputError
from unilandmark.core.world import VolumeGeometry, lps_to_ras, orientation_code, ras_to_lps
from unilandmark.imageio.read import ImageReadError, write_image
from unilandmark.imageio.reorient import reoriented, resample_to_spacing, resampled_size
from unilandmark.imageio.volume import (
    dicom_series_ids,
    read_volume,
    read_volume_info,
    write_volume,
)

from .conftest import _require

TEMPLATES = ("MNI152NLin6Asym.nii.gz", "MNI305.nii", "MNIColin27.nii", "MNI152Lin.nii")


def _rotation_z(degrees: float) -> np.ndarray:
    t = np.deg2rad(degrees)
    return np.array([[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0], [0, 0, 1]])


def _rotation(rng) -> np.ndarray:
    """A random proper rotation (det +1)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q * np.array([1.0, 1.0, np.linalg.det(q)])


def _voxels(geometry: VolumeGeometry, n: int, seed: int = 0) -> np.ndarray:
    """``(n, 3)`` integer voxel points (x, y, z) inside the volume, corners included."""
    rng = np.random.default_rng(seed)
    size = np.array(geometry.size)
    corners = np.array([[0, 0, 0], size - 1, [size[0] - 1, 0, 0], [0, size[1] - 1, 0]])
    return np.concatenate([corners, rng.integers(0, size, (n, 3))]).astype(np.float64)


def _at(array: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Voxel values at integer points ``(n, 3)`` (x, y, z) of an array (Z, Y, X)."""
    idx = np.rint(points).astype(int)
    return array[idx[:, 2], idx[:, 1], idx[:, 0]]


def _one_sentence(err: pytest.ExceptionInfo, name: str) -> str:
    text = str(err.value)
    assert name in text, text
    assert "\n" not in text, text
    return text


# -- core.world ---------------------------------------------------------------------------

def test_index_to_world_hand_computed():
    # x axis along LPS +y, y axis along LPS -x, z along +z; spacing 0.5, 2, 3 mm
    direction = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    g = VolumeGeometry(size=(4, 5, 6), spacing=(0.5, 2.0, 3.0), origin=(10, 20, 30),
                       direction=direction)
    world = g.index_to_world([[0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 3, 4]])
    np.testing.assert_allclose(world, [[10, 20, 30], [10, 20.5, 30], [8, 20, 30],
                                       [10 - 6, 20 + 1, 30 + 12]])
    np.testing.assert_allclose(g.world_to_index(world), [[0, 0, 0], [1, 0, 0], [0, 1, 0],
                                                         [2, 3, 4]], atol=1e-12)
    assert g.shape == (6, 5, 4)
    np.testing.assert_allclose(g.affine[:3, 3], [10, 20, 30])
    assert g.orientation_code() == "PRS"
    assert g.anatomical_labels() == (("A", "P"), ("L", "R"), ("I", "S"))
    assert g.contains([[-0.5, 0, 0], [3.5, 4, 5]]).all()
    assert not g.contains([[3.51, 0, 0], [0, -0.51, 0], [np.nan, 0, 0]]).any()


def test_world_to_index_is_the_exact_inverse_for_oblique_and_sheared_directions():
    rng = np.random.default_rng(1)
    points = rng.uniform(-5, 60, (50, 3))
    shear = np.eye(3)
    shear[:, 2] = [0.0, 0.3, 1.0]
    shear[:, 2] /= np.linalg.norm(shear[:, 2])  # a CT stack tilted by 16.7 degrees
    for direction in [_rotation(rng) for _ in range(5)] + [shear]:
        g = VolumeGeometry((64, 64, 40), (0.7, 0.9, 2.5), rng.uniform(-100, 100, 3),
                           direction)
        np.testing.assert_allclose(g.world_to_index(g.index_to_world(points)), points,
                                   atol=1e-9)
        assert g.is_orthonormal() == (direction is not shear)
    # the points' leading shape is kept
    g = VolumeGeometry((4, 4, 4), (1, 1, 1))
    assert g.index_to_world(np.zeros((2, 5, 3))).shape == (2, 5, 3)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        g.index_to_world(np.zeros((5, 2)))


def test_ras_and_lps_differ_in_the_sign_of_x_and_y():
    ras = np.array([[10.0, -20.0, 30.0], [-1.5, 2.5, -3.5]])
    np.testing.assert_array_equal(ras_to_lps(ras), [[-10, 20, 30], [1.5, -2.5, -3.5]])
    np.testing.assert_array_equal(lps_to_ras(ras_to_lps(ras)), ras)
    np.testing.assert_array_equal(VolumeGeometry.ras_to_lps(ras), ras_to_lps(ras))


def test_orientation_codes_name_what_itk_names():
    assert orientation_code(np.eye(3)) == "LPS"
    assert orientation_code(np.diag([-1.0, -1.0, 1.0])) == "RAS"
    assert orientation_code([[0, 0, -1], [1, 0, 0], [0, -1, 0]]) == "PIR"
    rng = np.random.default_rng(2)
    matrices = [_rotation(rng) for _ in range(300)]
    matrices += [np.eye(3)[rng.permutation(3)] * rng.choice([-1, 1], 3) for _ in range(100)]
    for m in matrices:
        itk = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(
            m.ravel().tolist())
        assert orientation_code(m) == itk, m


def test_geometry_to_json_and_back():
    g = VolumeGeometry((91, 109, 91), (2, 2, 2), (-90, 126, -72), np.diag([1.0, -1, 1]))
    data = json.loads(json.dumps(g.to_dict()))
    assert data["frame"] == "LPS" and VolumeGeometry.from_dict(data) == g
    # the same geometry stated in RAS (as a NIfTI affine would state it)
    ras = {"frame": "RAS", "size": [91, 109, 91], "spacing": [2, 2, 2],
           "origin": [90, -126, -72], "direction": [[-1, 0, 0], [0, 1, 0], [0, 0, 1]]}
    assert VolumeGeometry.from_dict(ras) == g
    assert hash(g) == hash(VolumeGeometry.from_dict(data))


@pytest.mark.parametrize("kwargs, fault", [
    ({"size": (4, 4, 0), "spacing": (1, 1, 1)}, "size"),
    ({"size": (4, 4, 4), "spacing": (1, 0, 1)}, "spacing"),
    ({"size": (4, 4, 4), "spacing": (1, 1, float("nan"))}, "spacing"),
    ({"size": (4, 4, 4), "spacing": (1, 1, 1), "direction": np.ones((3, 3))}, "singular"),
    ({"size": (4, 4), "spacing": (1, 1, 1)}, "size"),
])
def test_geometry_refuses_unusable_values(kwargs, fault):
    with pytest.raises(InputError, match=fault):
        VolumeGeometry(**kwargs)
    with pytest.raises(InputError, match="frame"):
        VolumeGeometry.from_dict({"frame": "XYZ", "size": [4, 4, 4], "spacing": [1, 1, 1],
                                  "origin": [0, 0, 0], "direction": np.eye(3).tolist()})


# -- (a), (b): the AFIDs templates --------------------------------------------------------

def _fcsv_ras(path: Path) -> np.ndarray:
    rows = [r for r in csv.reader(path.read_text().splitlines()) if r and not r[0].startswith("#")]
    return np.array([[float(v) for v in r[1:4]] for r in rows])


@pytest.mark.parametrize("name", TEMPLATES)
def test_afids_templates_read_on_the_mni_grid(name):
    root = _require("afids_templates")
    path = root / "images" / name
    array, g = read_volume(path)
    assert array.shape == (91, 109, 91) and g.size == (91, 109, 91)
    assert g.spacing == (2.0, 2.0, 2.0)
    # README: "x from +90 mm down, y from -126 mm up, z from -72 mm up" (RAS, the sform)
    corner_ras = lps_to_ras(g.index_to_world([0, 0, 0]))
    np.testing.assert_allclose(corner_ras, [90, -126, -72], atol=1e-4)
    steps_ras = lps_to_ras(g.index_to_world(np.eye(3))) - corner_ras
    np.testing.assert_allclose(steps_ras, np.diag([-2.0, 2.0, 2.0]), atol=1e-6)
    # the same in LPS, as ITK keeps it: origin (-90, 126, -72), direction diag(1, -1, 1)
    np.testing.assert_allclose(g.origin, [-90, 126, -72], atol=1e-4)
    np.testing.assert_allclose(g.direction_matrix, np.diag([1.0, -1.0, 1.0]), atol=1e-6)
    assert g.orientation_code() == "LAS"
    assert read_volume_info(path) == g
    # every consensus point (RAS mm in the .fcsv) falls inside its volume
    ras = _fcsv_ras(root / "afids" / (name.split(".")[0] + ".fcsv"))
    assert ras.shape == (32, 3)
    assert g.contains(g.world_to_index(ras_to_lps(ras))).all()


@pytest.mark.parametrize("name", TEMPLATES)
def test_afids_templates_have_their_scale_slope_applied(name):
    path = _require("afids_templates") / "images" / name
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    slope = float(reader.GetMetaData("scl_slope"))
    stored_uint8 = reader.GetMetaData("datatype") == "2"  # NIFTI_TYPE_UINT8
    array, _ = read_volume(path)
    if slope in (0.0, 1.0):  # no scaling: the stored type is kept
        assert array.dtype.kind in "iu" and not stored_uint8
        return
    assert stored_uint8 and array.dtype == np.float32
    assert 0 <= array.min() and array.max() <= 255 * slope * (1 + 1e-6)
    stored = array / np.float32(slope)  # each value is k * slope for k in 0..255
    np.testing.assert_allclose(stored, np.round(stored), atol=1e-3)
    assert not np.all(array == np.round(array))  # not the raw 0..255 integers
    assert len(np.unique(np.round(stored))) > 100


def test_mni305_is_the_uint8_template_with_a_slope():
    path = _require("afids_templates") / "images" / "MNI305.nii"
    array, _ = read_volume(path)
    assert array.dtype == np.float32 and float(array.max()) <= 1.0 + 1e-6
    assert float(array.max()) > 0.9  # 255 * 0.00392157 = 1.0: the slope was applied


# -- (c): the same world positions in every axis order ------------------------------------

def _real_volumes():
    return [("sct_t2", "t2.nii.gz"), ("afids_templates", "images/MNI305.nii")]


@pytest.fixture(params=_real_volumes(), ids=lambda p: p[0])
def real_volume(request):
    sub, rel = request.param
    return read_volume(_require(sub) / rel)


def test_the_sct_volume_is_stored_with_permuted_axes():
    _, g = read_volume(_require("sct_t2") / "t2.nii.gz")
    assert g.size == (60, 55, 52) and g.spacing == (1.0, 1.0, 1.0)
    d = g.direction_matrix
    np.testing.assert_allclose(np.abs(d).sum(axis=0), 1.0, atol=1e-6)  # a signed permutation
    assert not np.allclose(np.abs(d), np.eye(3))
    assert g.orientation_code() == "PSR"


@pytest.mark.parametrize("code, suffix", [("LPS", ".nrrd"), ("RAS", ".nii.gz"),
                                          ("PIR", ".mha"), ("ILA", ".nii")])
def test_reoriented_volumes_put_every_voxel_at_the_same_world_position(real_volume, code,
                                                                        suffix, tmp_path):
    array, g = real_volume
    moved, h = reoriented(array, g, code)
    assert h.orientation_code() == code
    write_volume(tmp_path / f"v{suffix}", moved, h)
    back, h2 = read_volume(tmp_path / f"v{suffix}")
    np.testing.assert_array_equal(back, moved)
    np.testing.assert_allclose(h2.index_to_world(_voxels(h2, 5)), h.index_to_world(
        _voxels(h2, 5)), atol=0.01)
    points = _voxels(g, 200)
    mapped = h2.world_to_index(g.index_to_world(points))
    np.testing.assert_allclose(mapped, np.rint(mapped), atol=0.01 / max(h2.spacing))
    np.testing.assert_array_equal(_at(back, mapped), _at(array, points))
    np.testing.assert_allclose(h2.index_to_world(np.rint(mapped)), g.index_to_world(points),
                               atol=0.01)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_an_oblique_direction_moves_the_world_points_by_the_rotation(real_volume, suffix,
                                                                     tmp_path):
    """The same array with its direction and origin turned 20 degrees about z (around the
    volume's centre): each voxel's world point turns with it; reoriented keeps them."""
    array, g = real_volume
    turn = _rotation_z(20)
    centre = g.index_to_world((np.array(g.size) - 1) / 2)
    oblique = VolumeGeometry(g.size, g.spacing, turn @ (np.array(g.origin) - centre) + centre,
                             turn @ g.direction_matrix)
    write_volume(tmp_path / f"oblique{suffix}", array, oblique)
    back, h = read_volume(tmp_path / f"oblique{suffix}")
    np.testing.assert_array_equal(back, array)
    points = _voxels(g, 200)
    expected = (g.index_to_world(points) - centre) @ turn.T + centre
    np.testing.assert_allclose(h.index_to_world(points), expected, atol=0.01)
    np.testing.assert_allclose(h.world_to_index(expected), points, atol=0.01 / min(g.spacing))
    assert h.orientation_code() == g.orientation_code()  # 20 degrees: the same closest code
    moved, m = reoriented(back, h, "RAS")
    mapped = m.world_to_index(expected)
    np.testing.assert_allclose(mapped, np.rint(mapped), atol=1e-3)
    np.testing.assert_array_equal(_at(moved, mapped), _at(array, points))


# -- (d): a DICOM series ------------------------------------------------------------------

_UID_ROOT = "1.2.826.0.1.3680043.2.1125.9"


def write_dicom_series(*args, **kwargs) -> list:
    """See :func:`_write_dicom_series`; GDCM's writer changes the process's locale: kept."""
    from unilandmark.imageio.volume import kept_locale

    with kept_locale():
        return _write_dicom_series(*args, **kwargs)


def _write_dicom_series(folder: Path, array: np.ndarray, g: VolumeGeometry, uid: str,
                       prefix: str = "slice", positions: np.ndarray | None = None) -> list:
    """One CT slice per file with SimpleITK (as its DicomSeriesFromArray example): the
    position (0020,0032) of each slice's first voxel, orientation (0020,0037), pixel
    spacing (0028,0030), slice thickness (0018,0050) and one series UID (0020,000e).
    Files are named in reverse stack order so that the reader must sort them."""
    folder.mkdir(parents=True, exist_ok=True)
    d = g.direction_matrix
    if positions is None:
        positions = g.index_to_world([[0, 0, k] for k in range(g.size[2])])
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    names = []
    for k in range(g.size[2]):
        image = sitk.GetImageFromArray(array[k])
        image.SetSpacing(g.spacing[:2])
        tags = {
            "0008|0060": "CT", "0010|0020": "phantom", "0020|000d": _UID_ROOT + ".1",
            "0020|000e": uid, "0008|0018": f"{uid}.{k + 1}", "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.6f}" for v in positions[k]),
            "0020|0037": "\\".join(f"{v:.10f}" for v in (*d[:, 0], *d[:, 1])),
            "0028|0030": f"{g.spacing[1]:.6f}\\{g.spacing[0]:.6f}",  # row, column spacing
            "0018|0050": f"{g.spacing[2]:.6f}",
        }
        for key, value in tags.items():
            image.SetMetaData(key, value)
        name = folder / f"{prefix}{g.size[2] - k:03d}.dcm"
        writer.SetFileName(str(name))
        writer.Execute(image)
        names.append(name)
    return names


@pytest.fixture
def ct_volume():
    rng = np.random.default_rng(3)
    array = rng.integers(-1000, 2000, (7, 24, 20)).astype(np.int16)
    direction = _rotation_z(20) @ _rotation(np.random.default_rng(4))
    g = VolumeGeometry((20, 24, 7), (0.7, 0.8, 2.5), (-12.25, 30.5, -40.125), direction)
    return array, g


def test_a_dicom_series_reads_back_with_its_array_and_geometry(ct_volume, tmp_path):
    array, g = ct_volume
    uid = _UID_ROOT + ".2"
    write_dicom_series(tmp_path / "ct", array, g, uid)
    back, h = read_volume(tmp_path / "ct")
    np.testing.assert_array_equal(back, array)
    assert back.dtype == np.int16 and h.size == g.size
    np.testing.assert_allclose(h.spacing, g.spacing, atol=1e-6)
    np.testing.assert_allclose(h.origin, g.origin, atol=1e-4)
    np.testing.assert_allclose(h.direction_matrix, g.direction_matrix, atol=1e-6)
    points = _voxels(g, 50)
    np.testing.assert_allclose(h.index_to_world(points), g.index_to_world(points), atol=1e-4)
    info = read_volume_info(tmp_path / "ct")
    np.testing.assert_allclose(info.affine, h.affine, atol=1e-9)
    assert dicom_series_ids(tmp_path / "ct") == {uid: 7}
    assert np.array_equal(read_volume(tmp_path / "ct", series=uid)[0], array)


def test_a_left_handed_volume_comes_back_as_a_dicom_stack_in_normal_order(ct_volume,
                                                                         tmp_path):
    """DICOM stacks along the slice normal (row x column); a volume whose z axis points
    the other way is read back with z flipped: same voxels at the same world points."""
    array, g = ct_volume
    d = g.direction_matrix * np.array([1.0, 1.0, -1.0])
    left = VolumeGeometry(g.size, g.spacing, g.origin, d)
    write_dicom_series(tmp_path / "left", array, left, _UID_ROOT + ".7")
    back, h = read_volume(tmp_path / "left")
    np.testing.assert_array_equal(back, array[::-1])
    points = _voxels(left, 50)
    mapped = h.world_to_index(left.index_to_world(points))
    np.testing.assert_allclose(mapped, np.rint(mapped), atol=1e-4)
    np.testing.assert_array_equal(_at(back, mapped), _at(array, points))


def test_a_tilted_dicom_stack_gets_a_sheared_geometry(ct_volume, tmp_path, caplog):
    """CT gantry tilt: each slice shifted within its plane as the stack goes on; the
    voxels stay at their DICOM positions (ITK's own geometry would put them on the
    normal)."""
    array, g = ct_volume
    d = g.direction_matrix
    positions = np.array([np.array(g.origin) + k * (2.5 * d[:, 2] + 0.6 * d[:, 1])
                          for k in range(7)])
    write_dicom_series(tmp_path / "tilt", array, g, _UID_ROOT + ".3", positions=positions)
    with caplog.at_level(logging.WARNING):
        back, h = read_volume(tmp_path / "tilt")
    assert "gantry tilt" in caplog.text
    assert not h.is_orthonormal()
    np.testing.assert_allclose(h.index_to_world([[0, 0, k] for k in range(7)]), positions,
                               atol=1e-4)
    np.testing.assert_allclose(h.index_to_world([[3, 5, 6]]),
                               [positions[6] + 3 * 0.7 * d[:, 0] + 5 * 0.8 * d[:, 1]],
                               atol=1e-4)
    np.testing.assert_array_equal(back, array)


def test_a_dicom_series_with_a_missing_slice_is_refused(ct_volume, tmp_path):
    array, g = ct_volume
    names = write_dicom_series(tmp_path / "gap", array, g, _UID_ROOT + ".4")
    names[3].unlink()
    with pytest.raises(ImageReadError) as err:
        read_volume(tmp_path / "gap")
    assert "unevenly spaced" in _one_sentence(err, "gap")
    with pytest.raises(ImageReadError, match="unevenly"):
        read_volume_info(tmp_path / "gap")


def test_a_dicom_series_of_two_volumes_at_the_same_positions_is_refused(ct_volume,
                                                                       tmp_path):
    array, g = ct_volume
    positions = g.index_to_world([[0, 0, k // 2] for k in range(g.size[2])])  # pairs
    write_dicom_series(tmp_path / "echoes", array, g, _UID_ROOT + ".8", positions=positions)
    with pytest.raises(ImageReadError) as err:
        read_volume(tmp_path / "echoes")
    assert "same position" in _one_sentence(err, "echoes")


def test_one_dicom_slice_given_as_a_file_points_to_its_folder(ct_volume, tmp_path):
    array, g = ct_volume
    names = write_dicom_series(tmp_path / "ct", array, g, _UID_ROOT + ".9")
    with pytest.raises(ImageReadError) as err:
        read_volume(names[0])
    assert "folder" in _one_sentence(err, names[0].name)


# -- (e): faults, each one sentence naming the file ---------------------------------------

def _small(shape=(6, 20, 18), dtype=np.int16) -> tuple[np.ndarray, VolumeGeometry]:
    array = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    return array, VolumeGeometry(shape[::-1], (1.0, 1.0, 2.0))


def test_a_png_is_refused_as_a_2d_image(tmp_path):
    write_image(tmp_path / "picture.png", np.zeros((40, 30), np.uint8))
    with pytest.raises(ImageReadError) as err:
        read_volume(tmp_path / "picture.png")
    assert "2-D" in _one_sentence(err, "picture.png")


def test_a_truncated_nifti_is_refused(tmp_path):
    array, g = _small((20, 40, 40), np.float32)
    array = np.random.default_rng(5).random(array.shape, dtype=np.float32)
    write_volume(tmp_path / "whole.nii.gz", array, g)
    data = (tmp_path / "whole.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as err:
        read_volume(tmp_path / "cut.nii.gz")
    assert "truncated" in _one_sentence(err, "cut.nii.gz")
    # (ITK's NIfTI reader alone would fill the missing voxels with zeros)
    raw = gzip.decompress(data)
    (tmp_path / "cut.nii").write_bytes(raw[: len(raw) - 1000])
    for read in (read_volume, read_volume_info):
        with pytest.raises(ImageReadError) as err:
            read(tmp_path / "cut.nii")
        assert "truncated" in _one_sentence(err, "cut.nii")
    (tmp_path / "head.nii").write_bytes(raw[:200])  # not even a whole header
    with pytest.raises(ImageReadError) as err:
        read_volume_info(tmp_path / "head.nii")
    _one_sentence(err, "head.nii")
    # a whole file in two gzip members (as bgzip writes) is read
    (tmp_path / "members.nii.gz").write_bytes(gzip.compress(raw[:5000]) +
                                              gzip.compress(raw[5000:]))
    np.testing.assert_array_equal(read_volume(tmp_path / "members.nii.gz")[0], array)


def test_a_folder_without_a_dicom_series_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no images here")
    for name in ("empty", "notes"):
        with pytest.raises(ImageReadError) as err:
            read_volume(tmp_path / name)
        assert "no DICOM series" in _one_sentence(err, name)


def test_a_folder_with_two_series_lists_them(ct_volume, tmp_path):
    array, g = ct_volume
    first, second = _UID_ROOT + ".5", _UID_ROOT + ".6"
    write_dicom_series(tmp_path / "mixed", array, g, first, prefix="a")
    write_dicom_series(tmp_path / "mixed", array[:4] + 1, VolumeGeometry(
        (20, 24, 4), g.spacing, g.origin, g.direction), second, prefix="b")
    with pytest.raises(ImageReadError) as err:
        read_volume(tmp_path / "mixed")
    text = _one_sentence(err, "mixed")
    assert first in text and second in text and "series=" in text
    assert read_volume(tmp_path / "mixed", series=second)[0].shape == (4, 24, 20)
    with pytest.raises(ImageReadError, match="no DICOM series '9.9'"):
        read_volume(tmp_path / "mixed", series="9.9")


def test_other_refusals_name_the_file(tmp_path):
    # a 2-D NIfTI, a 3-D file of one slice, a 4-D file of two volumes, vector voxels
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((30, 20), np.int16)),
                    str(tmp_path / "flat.nii"))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((1, 30, 20), np.int16)),
                    str(tmp_path / "slice.mha"))
    frames = [sitk.GetImageFromArray(np.zeros((5, 30, 20), np.int16))] * 2
    sitk.WriteImage(sitk.JoinSeries(frames), str(tmp_path / "time.nii.gz"))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((5, 30, 20, 3), np.uint8), isVector=True),
                    str(tmp_path / "colour.nrrd"))
    for name, needle in [("flat.nii", "2-D"), ("slice.mha", "2-D"), ("time.nii.gz", "4-D"),
                         ("colour.nrrd", "components")]:
        for read in (read_volume, read_volume_info):
            with pytest.raises(ImageReadError) as err:
                read(tmp_path / name)
            assert needle in _one_sentence(err, name)
    with pytest.raises(ImageReadError) as err:
        read_volume(tmp_path / "absent.nii.gz")
    assert "no such file" in _one_sentence(err, "absent.nii.gz")
    array, g = _small()
    write_volume(tmp_path / "big.nrrd", array, g)
    with pytest.raises(ImageReadError) as err:
        read_volume(tmp_path / "big.nrrd", max_voxels=1000)
    assert "limit" in _one_sentence(err, "big.nrrd")


def test_an_implausible_spacing_is_kept_with_a_warning(tmp_path, caplog):
    array, _ = _small()
    write_volume(tmp_path / "thick.mha", array, VolumeGeometry((18, 20, 6), (1, 1, 25.0)))
    with caplog.at_level(logging.WARNING):
        _, g = read_volume(tmp_path / "thick.mha")
    assert g.spacing == (1.0, 1.0, 25.0)
    assert "thick.mha" in caplog.text and "implausible spacing" in caplog.text


def test_a_4d_file_holding_one_volume_is_read_as_3d(tmp_path):
    array, _ = _small()
    image = sitk.JoinSeries([sitk.GetImageFromArray(array)])
    image.SetSpacing((0.5, 0.6, 0.7, 1.0))
    sitk.WriteImage(image, str(tmp_path / "one.nrrd"))
    back, g = read_volume(tmp_path / "one.nrrd")
    np.testing.assert_array_equal(back, array)
    assert g.spacing == pytest.approx((0.5, 0.6, 0.7))
    assert read_volume_info(tmp_path / "one.nrrd") == g


# -- (f): NaN voxels ----------------------------------------------------------------------

def test_nan_voxels_become_the_background_with_a_warning(tmp_path, caplog):
    array = np.random.default_rng(6).uniform(5, 10, (6, 20, 18)).astype(np.float32)
    array[0, 0, :4] = np.nan
    array[5, 19, 17] = np.inf
    write_volume(tmp_path / "holes.nrrd", array, VolumeGeometry((18, 20, 6), (1, 1, 1)))
    with caplog.at_level(logging.WARNING):
        back, _ = read_volume(tmp_path / "holes.nrrd")
    assert "holes.nrrd" in caplog.text and "5 NaN/Inf" in caplog.text
    assert np.isfinite(back).all()
    finite = np.isfinite(array)
    assert np.all(back[~finite] == array[finite].min())
    np.testing.assert_array_equal(back[finite], array[finite])
    write_volume(tmp_path / "void.nrrd", np.full((6, 20, 18), np.nan, np.float32),
                 VolumeGeometry((18, 20, 6), (1, 1, 1)))
    with pytest.raises(ImageReadError) as err:
        read_volume(tmp_path / "void.nrrd")
    _one_sentence(err, "void.nrrd")


# -- (g): resampling ----------------------------------------------------------------------

@pytest.mark.parametrize("direction", [np.eye(3), _rotation_z(20) @ np.diag([1.0, -1, 1])],
                         ids=["axial", "oblique"])
def test_resampling_keeps_a_bright_voxels_world_position(direction):
    array = np.zeros((12, 32, 32), np.int16)
    bright = np.array([10.0, 12.0, 5.0])  # (x, y, z) voxel
    array[5, 12, 10] = 1000
    g = VolumeGeometry((32, 32, 12), (1.0, 1.0, 3.0), (-20.0, 15.0, 40.0), direction)
    out, h = resample_to_spacing(array, g, 1.0)
    assert h.spacing == (1.0, 1.0, 1.0) and h.origin == g.origin
    assert h.direction == g.direction
    assert h.size == resampled_size(g, 1.0) == (32, 32, 34)  # (12 - 1) * 3 / 1 + 1 slices
    assert out.dtype == np.float32 and out.shape == h.shape
    peak = np.array(np.unravel_index(np.argmax(out), out.shape)[::-1], dtype=np.float64)
    world, expected = h.index_to_world(peak), g.index_to_world(bright)
    assert np.abs(h.world_to_index(world) - h.world_to_index(expected)).max() <= 0.5
    np.testing.assert_allclose(world, expected, atol=1e-6)  # 3 mm -> 1 mm: on a new centre
    assert out.max() == pytest.approx(1000)
    nearest, _ = resample_to_spacing(array, g, (2.0, 2.0, 1.0), order="nearest")
    assert nearest.dtype == np.int16 and set(np.unique(nearest)) <= {0, 1000}


def test_resampling_refuses_bad_arguments():
    array, g = _small()
    with pytest.raises(InputError, match="spacing"):
        resample_to_spacing(array, g, 0.0)
    with pytest.raises(InputError, match="order"):
        resample_to_spacing(array, g, 1.0, order="cubic")
    with pytest.raises(InputError, match="limit"):
        resample_to_spacing(array, g, 0.01, max_voxels=10_000)
    with pytest.raises(InputError, match="orientation code"):
        reoriented(array, g, "LLS")
    with pytest.raises(InputError, match="does not match"):
        reoriented(array[:, :, :5], g, "RAS")


# -- writing ------------------------------------------------------------------------------

def test_write_volume_is_atomic_and_refuses_what_it_cannot_hold(tmp_path):
    array, g = _small()
    target = tmp_path / "out" / "v.mha"
    write_volume(target, array, g)
    write_volume(target, array + 1, g)  # replaces the file
    back, h = read_volume(target)
    np.testing.assert_array_equal(back, array + 1)
    assert h == g
    assert sorted(p.name for p in target.parent.iterdir()) == ["v.mha"]
    with pytest.raises(InputError, match="mhd"):
        write_volume(tmp_path / "v.mhd", array, g)
    with pytest.raises(InputError, match="does not match"):
        write_volume(tmp_path / "v.nrrd", array[:3], g)
    shear = np.eye(3)
    shear[:, 2] = [0.0, 0.6, 0.8]
    sheared = VolumeGeometry(g.size, g.spacing, g.origin, shear)
    with pytest.raises(InputError, match="orthonormal"):
        write_volume(tmp_path / "v.nii.gz", array, sheared)
    write_volume(tmp_path / "v.nrrd", array, sheared)  # NRRD keeps it
    np.testing.assert_allclose(read_volume(tmp_path / "v.nrrd")[1].direction_matrix, shear,
                               atol=1e-12)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "v.nrrd"]


def test_reading_dicom_keeps_the_process_locale(tmp_path):
    """GDCM changes the C locale; left so, Python's default text encoding falls to ASCII."""
    import locale

    before = locale.getpreferredencoding(False)
    g = VolumeGeometry((20, 18, 4), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), np.eye(3))
    write_dicom_series(tmp_path / "s", np.zeros((4, 18, 20), np.int16), g, _UID_ROOT + ".9")
    read_volume(tmp_path / "s")
    assert locale.getpreferredencoding(False) == before
