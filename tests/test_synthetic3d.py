"""3-D head phantoms: rendering, geometry, the written set and its reading back."""

import csv

import numpy as np
import pytest
import SimpleITK as sitk

from unilandmark.core.errors import InputError
from unilandmark.data.adapters.volumes import volume_csv_dataset
from unilandmark.data.labelmaps import volume_frame
from unilandmark.data.synthetic3d import (
    DEFAULT_SIZE,
    DEFAULT_SPACING,
    FLIP_PAIRS,
    LANDMARK_STRUCTURE,
    LANDMARKS,
    LEVELS,
    REMOVED_STRUCTURE,
    Pose,
    index_to_world,
    make_synthetic_volumes,
    random_pose,
    render_head_volume,
    synthetic_volumes_dataset,
    volume_grid,
    volume_rng,
    world_to_index,
)

K = len(LANDMARKS)
ALL_LEVELS = np.array(sorted(set(LEVELS.values())))


def _nearest_level(value) -> int:
    return int(ALL_LEVELS[np.abs(ALL_LEVELS - value).argmin()])


def _voxel_values(array, landmarks, size=DEFAULT_SIZE, spacing=DEFAULT_SPACING,
                  direction=None):
    _, sp, origin, d = volume_grid(size, spacing, direction)
    idx = world_to_index(landmarks, sp, origin, d)
    r = np.round(np.nan_to_num(idx)).astype(int)
    return array[r[:, 2], r[:, 1], r[:, 0]], idx


def _read_rows(table):
    with open(table, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def phantom_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("vol3d")
    table = make_synthetic_volumes(root, 3, 1, 1, seed=4)
    return root, table


# --------------------------------------------------------------------------- rendering


def test_render_is_deterministic_per_seed():
    a = render_head_volume(volume_rng(7, 0))
    b = render_head_volume(volume_rng(7, 0))
    c = render_head_volume(volume_rng(8, 0))
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    assert a.array.shape == tuple(reversed(DEFAULT_SIZE)) and a.array.dtype == np.int16
    assert a.landmarks.shape == (K, 3)
    assert not np.array_equal(a.array, c.array)
    assert np.abs(a.landmarks - c.landmarks).max() > 1.0


def test_written_set_is_deterministic_per_seed(tmp_path):
    tables = [make_synthetic_volumes(tmp_path / name, 2, 0, 1, seed=seed)
              for name, seed in (("a", 3), ("b", 3), ("c", 5))]
    texts = [t.read_text() for t in tables]
    assert texts[0] == texts[1] and texts[0] != texts[2]
    for n in range(3):
        arrays = [sitk.GetArrayFromImage(sitk.ReadImage(str(t.parent / "images" /
                                                            f"vol_{n:04d}.nii.gz")))
                  for t in tables]
        np.testing.assert_array_equal(arrays[0], arrays[1])
        assert not np.array_equal(arrays[0], arrays[2])
    # the rule: volume n of seed s renders from volume_rng(s, n)
    vol = render_head_volume(volume_rng(3, 1))
    rows = [r for r in _read_rows(tables[0]) if r["image"] == "vol_0001"]
    written = np.array([[float(r[c]) for c in "xyz"] for r in rows])
    np.testing.assert_array_equal(written, vol.landmarks)


def test_landmarks_lie_inside_and_on_their_structure():
    for n in range(12):
        vol = render_head_volume(volume_rng(0, n))
        values, idx = _voxel_values(vol.array, vol.landmarks)
        assert np.all(idx >= 2) and np.all(idx <= np.array(DEFAULT_SIZE) - 3), idx
        for name, value in zip(LANDMARKS, values, strict=True):
            assert _nearest_level(value) == LEVELS[LANDMARK_STRUCTURE[name]], (n, name, value)
        # the head stays inside the field of view: the border is air (noise only)
        a = vol.array.astype(float)
        border = np.concatenate([a[[0, -1]].ravel(), a[:, [0, -1]].ravel(),
                                 a[:, :, [0, -1]].ravel()])
        assert np.abs(border).max() < 150


def test_left_and_right_structures_look_alike():
    """Left and right ventricles (and eyes) share their level: context tells them apart."""
    vol = render_head_volume(volume_rng(1, 2))
    values, _ = _voxel_values(vol.array, vol.landmarks)
    for a, b in FLIP_PAIRS:
        ia, ib = LANDMARKS.index(a), LANDMARKS.index(b)
        assert abs(int(values[ia]) - int(values[ib])) < 150


def test_pose_varies_positions_and_keeps_the_configuration():
    pts = np.array([render_head_volume(volume_rng(0, n)).landmarks for n in range(10)])
    spread = np.sqrt(((pts - pts.mean(0)) ** 2).sum(-1).mean(0))  # rms mm per landmark
    assert spread.min() > 1.5 and spread.mean() > 2.5, spread
    dist = np.linalg.norm(pts[:, :, None] - pts[:, None], axis=-1)
    iu = np.triu_indices(K, 1)
    rel = dist[:, iu[0], iu[1]] / dist.mean(0)[iu]
    assert 0.7 < rel.min() and rel.max() < 1.3
    at = {name: pts[:, k] for k, name in enumerate(LANDMARKS)}
    # LPS: left is +x, anterior is -y, superior is +z, whatever the pose
    assert np.all(at["ventricle_left"][:, 0] > at["ventricle_right"][:, 0] + 5)
    assert np.all(at["eye_left"][:, 0] > at["eye_right"][:, 0] + 5)
    assert np.all(at["eye_left"][:, 1] < at["ventricle_left"][:, 1] - 5)
    assert np.all(at["vertex"][:, 2] > pts[:, :6, 2].max(axis=1) + 5)
    assert np.all(at["occiput"][:, 1] > at["pineal"][:, 1])


def test_pose_acts_in_world_coordinates():
    """The same generator state under two poses: landmarks differ by exactly that pose."""
    ident = render_head_volume(volume_rng(2, 0), pose=Pose.identity())
    pose = random_pose(np.random.default_rng(11))
    assert 0 < pose.angle_deg <= 15 and 0.9 <= pose.scale <= 1.1
    posed = render_head_volume(volume_rng(2, 0), pose=pose)
    centre = np.zeros(3)  # the field of view is centred on world (0, 0, 0)
    np.testing.assert_allclose(posed.landmarks, pose.apply(ident.landmarks, centre),
                               atol=1e-9)
    values, _ = _voxel_values(posed.array, posed.landmarks)
    assert [_nearest_level(v) for v in values] == \
        [LEVELS[LANDMARK_STRUCTURE[n]] for n in LANDMARKS]


def test_removed_structures_leave_nan_and_change_the_image():
    full = render_head_volume(volume_rng(5, 3))
    gone = ("ventricle_right", "pineal", "vertex")
    part = render_head_volume(volume_rng(5, 3), absent=gone)
    idx = [LANDMARKS.index(n) for n in gone]
    assert np.isnan(part.landmarks[idx]).all()
    keep = [k for k in range(K) if k not in idx]
    np.testing.assert_array_equal(part.landmarks[keep], full.landmarks[keep])
    values, _ = _voxel_values(part.array, full.landmarks)
    for name, k in zip(gone, idx, strict=True):
        assert _nearest_level(values[k]) == LEVELS[REMOVED_STRUCTURE[name]], (name, values[k])


# --------------------------------------------------------------------------- geometry


def test_anisotropic_spacing_and_geometry_are_in_the_header(phantom_set):
    root, _ = phantom_set
    _, sp, origin, d = volume_grid()
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(root / "images" / "vol_0000.nii.gz"))
    reader.ReadImageInformation()
    assert reader.GetSpacing() == (1.5, 1.5, 3.0)
    assert reader.GetSize() == DEFAULT_SIZE
    np.testing.assert_array_equal(reader.GetOrigin(), origin)
    np.testing.assert_array_equal(np.reshape(reader.GetDirection(), (3, 3)), d)
    image = sitk.ReadImage(str(root / "images" / "vol_0000.nii.gz"))
    assert image.GetPixelID() == sitk.sitkInt16


@pytest.mark.parametrize("direction", [None, np.diag([-1.0, -1.0, 1.0]),
                                       [[0, 0, 1], [1, 0, 0], [0, 1, 0]]])
def test_world_voxel_world_round_trip(tmp_path, direction):
    size = (40, 44, 32)
    table = make_synthetic_volumes(tmp_path, 1, 0, 0, seed=1, size=size, direction=direction)
    path = tmp_path / "images" / "vol_0000.nii.gz"
    image = sitk.ReadImage(str(path))
    frame = volume_frame(path)
    world = np.array([[float(r[c]) for c in "xyz"] for r in _read_rows(table)])
    idx = world_to_index(world, frame.spacing, frame.origin, frame.direction)
    np.testing.assert_allclose(index_to_world(idx, frame.spacing, frame.origin,
                                              frame.direction), world, atol=1e-9)
    np.testing.assert_allclose(frame.world_to_index(world), idx, atol=1e-9)
    for p, i in zip(world, idx, strict=True):  # ITK agrees on the mapping
        np.testing.assert_allclose(image.TransformContinuousIndexToPhysicalPoint(i.tolist()),
                                   p, atol=1e-6)
    # and the voxels there show the structures (the header is the rendered grid)
    values = sitk.GetArrayFromImage(image)[tuple(np.round(idx[:, ::-1]).astype(int).T)]
    assert [_nearest_level(v) for v in values] == \
        [LEVELS[LANDMARK_STRUCTURE[n]] for n in LANDMARKS]


# --------------------------------------------------------------------------- reading back


def test_volume_csv_reader_round_trip(phantom_set):
    root, table = phantom_set
    rows = _read_rows(table)
    assert list(rows[0]) == ["image", "landmark", "x", "y", "z", "frame", "name", "split"]
    spec = volume_csv_dataset(table, images=root / "images")
    assert spec.landmark_names == LANDMARKS and len(spec.records) == 5
    for record in spec.records:
        frame = volume_frame(record.image_path)
        written = np.array([[float(r[c]) for c in "xyz"] for r in rows
                            if r["image"] == record.id])
        assert record.visible.all() and record.spacing == (1.5, 1.5, 3.0)
        assert record.points.shape == (K, 3)
        assert np.abs(frame.index_to_world(record.points) - written).max() < 1e-6
        n = int(record.id.split("_")[1])
        truth = render_head_volume(volume_rng(4, n)).landmarks
        assert np.abs(frame.index_to_world(record.points) - truth).max() < 1e-6


def test_synthetic_volumes_dataset_has_splits_and_flip_pairs(phantom_set):
    root, _ = phantom_set
    spec = synthetic_volumes_dataset(root)
    assert spec.splits == {"train": ("vol_0000", "vol_0001", "vol_0002"),
                           "val": ("vol_0003",), "test": ("vol_0004",),
                           "all": tuple(f"vol_{n:04d}" for n in range(5))}
    assert spec.unit == "mm" and spec.domain == "head3d"
    assert [tuple(p) for p in spec.info["flip_pairs"]] == list(FLIP_PAIRS)


# --------------------------------------------------------------------------- absent


@pytest.mark.parametrize("mode", ["removed", "unlabelled"])
def test_absent_landmarks_are_absent(tmp_path, mode):
    full = make_synthetic_volumes(tmp_path / "full", 3, 1, 0, seed=6)
    table = make_synthetic_volumes(tmp_path / "part", 3, 1, 0, seed=6, absent_fraction=0.25,
                                   absent_mode=mode)
    rows = _read_rows(table)
    assert len(rows) == 4 * K  # absent rows stay, with empty x, y, z
    empty = [r for r in rows if r["x"] == "" and r["y"] == "" and r["z"] == ""]
    assert len(empty) == round(0.25 * 4 * K)
    spec = synthetic_volumes_dataset(tmp_path / "part")
    invisible = sum(int((~r.visible).sum()) for r in spec.records)
    assert invisible == len(empty)
    full_spec = synthetic_volumes_dataset(tmp_path / "full")
    for record, ref in zip(spec.records, full_spec.records, strict=True):
        assert np.isnan(record.points[~record.visible]).all()
        np.testing.assert_array_equal(record.points[record.visible],
                                      ref.points[record.visible])
        a = sitk.GetArrayFromImage(sitk.ReadImage(record.image_path))
        b = sitk.GetArrayFromImage(sitk.ReadImage(ref.image_path))
        if mode == "unlabelled" or record.visible.all():
            np.testing.assert_array_equal(a, b)
        else:  # removed: the structure is gone from the image too
            idx = np.round(ref.points[~record.visible]).astype(int)
            names = [n for n, v in zip(LANDMARKS, record.visible, strict=True) if not v]
            for name, (x, y, z) in zip(names, idx, strict=True):
                assert _nearest_level(a[z, y, x]) == LEVELS[REMOVED_STRUCTURE[name]]
    assert full.read_text() != table.read_text()


def test_bad_requests_are_refused_before_writing(tmp_path):
    for kwargs in ({"count_train": -1}, {"count_train": 0}, {"absent_fraction": 1.0},
                   {"absent_mode": "hidden"}, {"size": (48, 56, 8)},
                   {"spacing": (1.5, 0, 3)}, {"direction": np.ones((3, 3))}):
        args = {"count_train": 1, "count_val": 0, "count_test": 0, **kwargs}
        with pytest.raises(InputError):
            make_synthetic_volumes(tmp_path / "x", **args)
    assert not (tmp_path / "x").exists()
    with pytest.raises(InputError):
        render_head_volume(np.random.default_rng(0), absent=("nose",))
