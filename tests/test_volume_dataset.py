"""Volumes into network space (training.volumes): the Geometry's map and its inverse,
resampling that puts voxels where the Geometry says, intensity per modality, the dataset
with its cache, and the real AFIDs templates (skipped with a reason when absent)."""

from __future__ import annotations

import numpy as np
import pytest

from unilandmark.core.errors import InputError
from unilandmark.core.types import apply_affine
from unilandmark.core.world import VolumeGeometry
from unilandmark.data.adapters.volumes import afids_templates, volume_csv_dataset
from unilandmark.imageio.volume import write_volume
from unilandmark.training import volumes as vol
from unilandmark.training.volumes import (
    VolumeDataset,
    normalise_volume,
    patch_geometry,
    resample_into,
    to_world,
    volume_geometry,
    world_to_network,
)

from .conftest import _require


def _oblique() -> np.ndarray:
    """A rotation about an oblique axis followed by a flip of y: oblique, not LPS."""
    axis = np.array([1.0, 2.0, 0.5]) / np.linalg.norm([1.0, 2.0, 0.5])
    t = np.deg2rad(23.0)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k
    return rot @ np.diag([1.0, -1.0, 1.0])


#: anisotropic 1 x 1 x 3 mm, oblique, non-zero origin
GRID = VolumeGeometry(size=(48, 40, 16), spacing=(1.0, 1.0, 3.0), origin=(-21.5, 13.25, 70.0),
                      direction=_oblique())
#: landmarks in original voxels (x, y, z), well apart and inside GRID
LANDMARKS = np.array([[12.3, 10.7, 4.2], [34.6, 12.1, 7.9], [22.45, 29.8, 11.3]])


def _blobs(grid: VolumeGeometry, centres: np.ndarray, sigma_mm: float = 3.0) -> np.ndarray:
    """(Z, Y, X) float32: a Gaussian of ``sigma_mm`` (world mm) at each voxel centre."""
    zz, yy, xx = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in grid.shape),
                             indexing="ij")
    out = np.zeros(grid.shape)
    sx, sy, sz = grid.spacing
    for cx, cy, cz in centres:
        d2 = ((xx - cx) * sx) ** 2 + ((yy - cy) * sy) ** 2 + ((zz - cz) * sz) ** 2
        out += np.exp(-d2 / (2 * sigma_mm**2))
    return out.astype(np.float32)


def _peak(image: np.ndarray, where: np.ndarray, radius: int = 4):
    """(argmax, centroid) (x, y, z) of ``image`` (Z, Y, X) in a box around ``where``."""
    c = np.rint(where).astype(int)
    lo = np.maximum(c - radius, 0)
    hi = np.minimum(c + radius + 1, image.shape[::-1])
    box = image[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]].astype(np.float64)
    arg = np.array(np.unravel_index(np.argmax(box), box.shape)[::-1]) + lo
    zz, yy, xx = np.meshgrid(*(np.arange(a, b) for a, b in zip(lo[::-1], hi[::-1],
                                                                strict=True)), indexing="ij")
    w = box - box.min()
    centroid = np.array([(w * xx).sum(), (w * yy).sum(), (w * zz).sum()]) / w.sum()
    return arg, centroid


def _dataset(tmp_path, grid=GRID, landmarks=LANDMARKS, array=None, name="vol_a"):
    """A volume CSV dataset of one volume (``.nrrd``, the geometry kept to float64)."""
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    write_volume(images / f"{name}.nrrd", _blobs(grid, landmarks) if array is None else array,
                 grid)
    world = grid.index_to_world(landmarks)
    rows = ["image,landmark,x,y,z,frame"]
    rows += [f"{name},{k + 1},{float(x)!r},{float(y)!r},{float(z)!r},world-lps"
             for k, (x, y, z) in enumerate(world)]
    table = tmp_path / "landmarks.csv"
    table.write_text("\n".join(rows) + "\n")
    return volume_csv_dataset(table, images=images)


# -- the map ---------------------------------------------------------------------------


def test_2d_affine_is_unchanged_bit_for_bit():
    rng = np.random.default_rng(0)
    m = np.array([[4.65, 0.0, 1.82], [0.0, 4.69, 1.84], [0.0, 0.0, 1.0]])
    pts = rng.uniform(0, 500, (7, 5, 2))
    assert np.array_equal(apply_affine(m, pts), pts @ m[:2, :2].T + m[:2, 2])


def test_matrix_by_hand():
    g = volume_geometry(VolumeGeometry(size=(10, 10, 4), spacing=(1, 1, 3)), 2.0, (8, 8, 8))
    # f = (2, 2, 2/3); extent e = n / f = (5, 5, 6); offset o = floor((m - e) / 2 + 0.5)
    f = np.array([2.0, 2.0, 2.0 / 3.0])
    o = np.array([2.0, 2.0, 1.0])
    np.testing.assert_allclose(np.diag(g.matrix)[:3], f)
    np.testing.assert_allclose(g.matrix[:3, 3], f * (0.5 - o) - 0.5)
    assert g.matrix.shape == (4, 4) and g.input_size == (8, 8, 8)
    assert g.original_size == (10, 10, 4) and g.spacing == (1.0, 1.0, 3.0)
    # the outer faces of the volume: padded in x and y, exactly centred in z
    np.testing.assert_allclose(g.to_network(np.array([[-0.5, -0.5, -0.5], [9.5, 9.5, 3.5]])),
                               [[1.5, 1.5, 0.5], [6.5, 6.5, 6.5]])


@pytest.mark.parametrize("target", [1.0, 2.0, 4.0, (0.7, 1.3, 2.5)])
@pytest.mark.parametrize("size", [(64, 64, 64), (24, 20, 16), (7, 33, 12)])
def test_original_to_network_and_back_is_exact(target, size):
    rng = np.random.default_rng(1)
    g = volume_geometry(GRID, target, size)
    pts = rng.uniform(-0.5, np.array(GRID.size) - 0.5, (50, 3))
    np.testing.assert_allclose(g.to_original(g.to_network(pts)), pts, rtol=0, atol=1e-9)
    net = rng.uniform(0, np.array(size) - 1, (50, 3))
    np.testing.assert_allclose(g.to_network(g.to_original(net)), net, rtol=0, atol=1e-9)
    # network voxels are target-spacing mm apart along the volume's own axes
    step = to_world(np.eye(3), g, GRID) - to_world(np.zeros(3), g, GRID)
    np.testing.assert_allclose(np.linalg.norm(step, axis=1),
                               np.broadcast_to(target, 3), rtol=1e-12)
    # world mm there and back
    world = GRID.index_to_world(pts)
    np.testing.assert_allclose(world_to_network(to_world(net, g, GRID), g, GRID), net,
                               atol=1e-9)
    np.testing.assert_allclose(to_world(g.to_network(pts), g, GRID), world, atol=1e-9)


def test_the_volume_centre_lands_on_the_input_centre_to_a_voxel():
    for target in (1.0, 1.7, 3.0):
        for size in ((64, 48, 32), (17, 19, 23)):
            g = volume_geometry(GRID, target, size)
            centre = g.to_network((np.array(GRID.size) - 1) / 2)
            assert (np.abs(centre - (np.array(size) - 1) / 2) <= 0.5 + 1e-9).all()


def test_bad_arguments_are_refused():
    with pytest.raises(InputError, match="target_spacing"):
        volume_geometry(GRID, -1.0, (8, 8, 8))
    with pytest.raises(InputError, match="input_size"):
        volume_geometry(GRID, 1.0, (8, 8))
    with pytest.raises(InputError, match="whole voxels"):
        volume_geometry(GRID, 1.0, (8, 8.5, 8))
    with pytest.raises(InputError, match="does not match"):
        resample_into(np.zeros((3, 4, 5)), volume_geometry(GRID, 1.0, (8, 8, 8)))
    with pytest.raises(InputError, match="modality"):
        normalise_volume(np.zeros((2, 2, 2)), "pet")
    with pytest.raises(InputError, match="window"):
        normalise_volume(np.zeros((2, 2, 2)), "ct", (100, -100))


# -- resampling ------------------------------------------------------------------------


@pytest.mark.parametrize("target,size", [(1.0, (64, 56, 64)),   # pads every axis
                                         (2.0, (24, 22, 24)),   # shrinks 2x in x, y
                                         (1.5, (20, 18, 16)),   # crops
                                         (4.0, (16, 14, 16))])  # shrinks 4x: anti-aliased
def test_a_blob_is_found_where_the_geometry_puts_it(target, size):
    g = volume_geometry(GRID, target, size)
    for landmark, point in zip(LANDMARKS, g.to_network(LANDMARKS), strict=True):
        image = resample_into(_blobs(GRID, landmark[None], sigma_mm=max(3.0, target)), g)
        assert image.shape == tuple(size[::-1]) and image.dtype == np.float32
        if not ((point >= 1) & (point <= np.array(size) - 2)).all():
            continue  # cropped away
        arg, centroid = _peak(image, point, radius=max(4, int(9 / target)))
        assert np.abs(arg - point).max() <= 1.0, (arg, point)
        np.testing.assert_allclose(centroid, point, atol=0.5)


@pytest.mark.parametrize("target", [None, 2.0, 3.0])
def test_a_bright_voxel_lands_at_to_network_of_its_index(target):
    index = np.array([21.0, 17.0, 8.0])
    array = np.zeros(GRID.shape, dtype=np.float32)
    array[8, 17, 21] = 1.0
    centre = index + [0.3, -0.2, 0.4]
    g = patch_geometry(GRID, centre, (15, 13, 11), target)
    image = resample_into(array, g)
    where = g.to_network(index)
    if target is None:  # full resolution: the patch's voxels ARE original voxels
        np.testing.assert_allclose(where, np.rint(where), atol=1e-9)
        assert image[tuple(np.rint(where[::-1]).astype(int))] == 1.0 and image.sum() == 1.0
    _, centroid = _peak(image, where, radius=3)
    np.testing.assert_allclose(centroid, where, atol=0.5)
    # the patch's centre is ``centre`` to the nearest network voxel
    assert np.abs(g.to_network(centre) - (np.array([15, 13, 11]) - 1) / 2).max() <= 0.5 + 1e-9


def test_padding_and_cropping_at_full_resolution_copy_voxels():
    rng = np.random.default_rng(2)
    array = rng.normal(size=GRID.shape).astype(np.float32)  # (16, 40, 48)
    big = volume_geometry(GRID, GRID.spacing, (52, 44, 20))  # pads 2 on each side
    out = resample_into(array, big, fill=-7.0)
    np.testing.assert_array_equal(out[2:18, 2:42, 2:50], array)
    assert (out[:2] == -7).all() and (out[18:] == -7).all() and (out[:, :, :2] == -7).all()
    small = volume_geometry(GRID, GRID.spacing, (20, 10, 6))  # crops the centre
    np.testing.assert_array_equal(resample_into(array, small), array[5:11, 15:25, 14:34])
    pts = np.array([[14.0, 15.0, 5.0], [33.0, 24.0, 10.0]])
    np.testing.assert_allclose(small.to_network(pts), [[0, 0, 0], [19, 9, 5]], atol=1e-12)


def test_resampling_keeps_a_constant_and_fills_outside():
    array = np.full(GRID.shape, 0.25, dtype=np.float32)
    g = volume_geometry(GRID, 4.0, (30, 30, 30))  # e = (12, 10, 12): padded all round
    out = resample_into(array, g)
    inside = GRID.contains(g.to_original(np.stack(np.meshgrid(
        *(np.arange(30.0),) * 3, indexing="ij")[::-1], axis=-1)))
    np.testing.assert_allclose(out[inside], 0.25, rtol=1e-6)
    assert (out[~inside] == 0).all() and inside.sum() > 0


# -- intensity -------------------------------------------------------------------------


def test_ct_window_maps_hounsfield_units_to_0_1():
    hu = np.array([-3000, -1000, -250, 500, 2000, 3071], dtype=np.int16).reshape(1, 2, 3)
    out = normalise_volume(hu, "ct")
    assert out.dtype == np.float32 and out.shape == hu.shape
    np.testing.assert_allclose(out.ravel(), [0, 0, 0.25, 0.5, 1, 1], atol=1e-7)
    narrow = normalise_volume(hu.astype(np.float32), "ct", window=(-250, 750))
    np.testing.assert_allclose(narrow.ravel(), [0, 0, 0, 0.75, 1, 1], atol=1e-7)
    nan = normalise_volume(np.array([[[np.nan, 0.0]]]), "ct")
    assert np.isfinite(nan).all() and nan.min() >= 0


@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.int16])
def test_mr_percentiles_give_0_1(dtype):
    rng = np.random.default_rng(3)
    mr = rng.gamma(2.0, 300.0, (20, 24, 28))
    mr[0, 0, :5] = 60000  # hot voxels: clipped, they do not compress the contrast
    out = normalise_volume(mr.astype(dtype), "mr")
    assert out.dtype == np.float32 and out.shape == mr.shape
    assert out.min() == 0.0 and out.max() == 1.0
    lo, hi = np.percentile(mr.astype(dtype).astype(np.float64), (0.5, 99.5))
    inner = (mr > lo + 1) & (mr < hi - 1)
    assert 0 < out[inner].min() and out[inner].max() < 1
    assert np.median(out) < 0.5


# -- the dataset -----------------------------------------------------------------------


def test_dataset_puts_each_landmark_on_its_blob_and_back_in_world_mm(tmp_path):
    spec = _dataset(tmp_path)
    # a fixed window that keeps the blobs' peaks (MR percentiles would clip them flat)
    ds = VolumeDataset(spec, "all", 1.5, (40, 36, 40), "ct", window=(0.0, 1.0))
    assert ds.images.shape == (1, 1, 40, 36, 40) and ds.images.dtype == np.float16
    assert ds.points.shape == (1, 3, 3) and ds.visible.all()
    record = spec.records[0]
    np.testing.assert_allclose(record.points, LANDMARKS, atol=1e-9)
    turned = ds.canonical_geometries[0].world_to_index(
        ds.volume_geometries[0].index_to_world(record.points))
    np.testing.assert_allclose(ds.points[0], ds.geometries[0].to_network(turned))
    np.testing.assert_allclose(ds.to_original(0, ds.points[0]), record.points, atol=1e-9)
    for point in ds.points[0]:
        arg, centroid = _peak(ds.images[0, 0], point, radius=5)
        assert np.abs(arg - point).max() <= 1.0
        np.testing.assert_allclose(centroid, point, atol=0.5)
    world = record.meta["world_lps"]
    np.testing.assert_allclose(ds.to_world(0, ds.points[0]), world, rtol=0, atol=1e-6)
    np.testing.assert_allclose(to_world(ds.points[0], ds.geometries[0],
                                        ds.canonical_geometries[0]), world, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ds.mm_per_voxel([0]).numpy(), [1.5], rtol=1e-6)
    assert ds.mm_per_px([0, 0]).shape == (2,)
    batch = ds.batch([0, 0])
    assert batch["image"].shape == (2, 1, 40, 36, 40) and str(batch["image"].dtype) == \
        "torch.float32"
    assert batch["points"].shape == (2, 3, 3) and batch["visible"].shape == (2, 3)
    sample = ds[0]
    assert sample.image.shape == (1, 40, 36, 40) and sample.geometry is ds.geometries[0]
    assert 0.0 <= float(ds.images.min()) and float(ds.images.max()) <= 1.0


def test_dataset_crops_a_volume_larger_than_the_input(tmp_path):
    spec = _dataset(tmp_path)
    ds = VolumeDataset(spec, "all", 1.0, (24, 20, 24))  # 48 x 40 x 48 mm into 24 x 20 x 24
    pts = ds.points[0]
    assert ((pts < -0.5) | (pts > np.array([24, 20, 24]) - 0.5)).any(axis=1).any()
    np.testing.assert_allclose(ds.to_world(0, pts), spec.records[0].meta["world_lps"],
                               atol=1e-6)


def test_absent_landmarks_stay_nan(tmp_path):
    spec = _dataset(tmp_path)
    table = tmp_path / "landmarks.csv"
    lines = table.read_text().splitlines()
    lines[2] = "vol_a,2,,,,world-lps"
    table.write_text("\n".join(lines) + "\n")
    spec = volume_csv_dataset(table, images=tmp_path / "images")
    ds = VolumeDataset(spec, "all", 2.0, (32, 32, 32))
    assert ds.visible[0].tolist() == [True, False, True]
    assert np.isnan(ds.points[0, 1]).all() and np.isfinite(ds.points[0, [0, 2]]).all()


def test_the_cache_gives_identical_arrays_without_reading_again(tmp_path, monkeypatch):
    spec = _dataset(tmp_path)
    cache = tmp_path / "cache"
    first = VolumeDataset(spec, "all", 2.0, (32, 28, 32), "ct", cache_dir=cache)
    files = list((cache / spec.name).glob("*.npz"))
    assert len(files) == 1 and not list((cache / spec.name).glob(".*tmp"))

    def no_read(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(vol, "read_volume", no_read)
    second = VolumeDataset(spec, "all", 2.0, (32, 28, 32), "ct", cache_dir=cache)
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.points, first.points)
    monkeypatch.undo()
    # another preprocessing is another entry; a damaged entry is rebuilt
    VolumeDataset(spec, "all", 2.0, (32, 28, 32), "mr", cache_dir=cache)
    assert len(list((cache / spec.name).glob("*.npz"))) == 2
    files[0].write_bytes(b"damaged")
    third = VolumeDataset(spec, "all", 2.0, (32, 28, 32), "ct", cache_dir=cache)
    np.testing.assert_array_equal(third.images, first.images)


# -- the AFIDs templates ---------------------------------------------------------------


@pytest.fixture(scope="module")
def afids():
    return afids_templates(_require("afids_templates"))


def test_afids_at_4mm_every_landmark_inside_the_input(afids):
    ds = VolumeDataset(afids, "all", 4.0, (48, 56, 48), "mr")
    n = len(afids.records)
    assert ds.images.shape == (n, 1, 48, 56, 48) and ds.points.shape == (n, 32, 3)
    assert np.isfinite(ds.images).all() and ds.images.min() >= 0 and ds.images.max() <= 1
    size = np.array([48, 56, 48])
    for i, record in enumerate(ds.records):
        pts = ds.points[i][ds.visible[i]]
        assert ds.visible[i].all()
        assert ((pts >= -0.5) & (pts <= size - 0.5)).all(), record.id
        np.testing.assert_allclose(ds.to_world(i, ds.points[i]), record.meta["world_lps"],
                                   rtol=0, atol=1e-6)
        # the brain fills the input's middle; the first slab of each axis is padding
        # (182 x 218 x 182 mm is 45.5 x 54.5 x 45.5 voxels of 4 mm: offset 1 voxel)
        image = ds.images[i, 0].astype(np.float32)
        assert image[20:28, 24:32, 20:28].mean() > 0.2
        assert image[0].max() == image[:, 0].max() == image[:, :, 0].max() == 0
    np.testing.assert_allclose(ds.mm_per_voxel(range(n)).numpy(), 4.0, rtol=1e-6)
