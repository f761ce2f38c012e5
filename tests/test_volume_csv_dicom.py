"""The ``volume-csv`` adapter on DICOM series folders: a record id names a volume file by
its stem or a series subfolder of the images folder by its name (the review app's rule),
with the geometry read from the slices' headers; the faults of such tables; and the path
a clinic runs on its reviewed CT series: train, predict, evaluate."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk
import yaml
from typer.testing import CliRunner

from unilandmark.cli import app
from unilandmark.core.errors import InputError
from unilandmark.core.world import VolumeGeometry
from unilandmark.data.adapters.volumes import volume_csv_dataset
from unilandmark.data.labelmaps import volume_frame
from unilandmark.imageio.volume import (
    holds_dicom_series,
    read_volume,
    volume_version,
    write_volume,
)

from .test_volume_io import _rotation, write_dicom_series

UID = "1.2.826.0.1.3680043.2.1125.9.61"
OTHER_UID = "1.2.826.0.1.3680043.2.1125.9.62"
SERIES = "patient.7"  # a dotted name: the record id is the folder's name, whole
NAMES = ("front", "back", "centre")
#: the landmarks in voxels (x, y, z) of the phantom
VOXELS = np.array([[4.0, 5.5, 3.0], [13.25, 11.0, 8.0], [9.0, 8.5, 5.5]])


def phantom(seed: int = 1) -> tuple[np.ndarray, VolumeGeometry]:
    """A small CT (int16 HU, a bright ball on soft tissue) on an oblique grid."""
    size = (18, 16, 11)
    z, y, x = np.meshgrid(*(np.arange(n) for n in size[::-1]), indexing="ij")
    ball = (x - 9) ** 2 + (y - 8) ** 2 + ((z - 5) * 1.5) ** 2 < 25
    array = np.where(ball, 900, 40).astype(np.int16)
    direction = _rotation(np.random.default_rng(seed))
    return array, VolumeGeometry(size, (1.1, 0.9, 2.5), (-20.5, 14.25, -31.0), direction)


def write_table(path, rows, frame=None):
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "landmark", "x", "y", "z", "name"]
                        + (["frame"] if frame else []))
        for rid, k, point in rows:
            writer.writerow([rid, k + 1, *(f"{v:.6f}" for v in point), NAMES[k]]
                            + ([frame] if frame else []))
    return path


@pytest.fixture
def images(tmp_path):
    """One phantom as a DICOM series folder and as a NIfTI copy, side by side."""
    out = tmp_path / "images"
    array, geometry = phantom()
    write_dicom_series(out / SERIES, array, geometry, UID)
    write_volume(out / "copy.nii.gz", array, geometry)
    return out


def test_the_frame_of_a_series_folder_is_read_volumes_from_headers_alone(images,
                                                                         monkeypatch):
    _, read = read_volume(images / SERIES)
    monkeypatch.setattr(sitk.ImageSeriesReader, "Execute",
                        lambda *_: pytest.fail("the voxels were read"))
    frame = volume_frame(images / SERIES)
    assert frame.size == read.size and frame.path == str(images / SERIES)
    np.testing.assert_allclose(frame.spacing, read.spacing, rtol=0, atol=1e-12)
    np.testing.assert_allclose(frame.origin, read.origin, rtol=0, atol=1e-12)
    np.testing.assert_allclose(frame.direction, read.direction_matrix, rtol=0, atol=1e-12)
    _, geometry = phantom()  # and the geometry written, to the header's precision
    np.testing.assert_allclose(frame.direction, geometry.direction_matrix, atol=1e-6)
    np.testing.assert_allclose(frame.origin, geometry.origin, atol=1e-5)
    assert holds_dicom_series(images / SERIES) and not holds_dicom_series(images)


@pytest.mark.parametrize("frame", ["world-lps", "voxel"])
def test_a_series_folder_gives_the_records_of_its_nifti_copy(images, tmp_path, frame):
    _, geometry = phantom()
    points = VOXELS if frame == "voxel" else geometry.index_to_world(VOXELS)
    rows = [(rid, k, p) for rid in (SERIES, "copy") for k, p in enumerate(points)]
    spec = volume_csv_dataset(write_table(tmp_path / "t.csv", rows, frame), images=images)
    series, copy = (next(r for r in spec.records if r.id == rid) for rid in (SERIES, "copy"))
    assert series.image_path == str(images / SERIES)
    np.testing.assert_allclose(series.points, copy.points, atol=1e-4)
    np.testing.assert_allclose(series.points, VOXELS, atol=1e-4)
    np.testing.assert_allclose(series.meta["world_lps"], copy.meta["world_lps"], atol=1e-4)
    np.testing.assert_allclose(series.spacing, copy.spacing, atol=1e-6)
    for key in ("origin", "direction"):
        np.testing.assert_allclose(series.meta[key], copy.meta[key], atol=1e-4)
    assert series.meta["size"] == copy.meta["size"] and series.visible.all()


def test_the_version_of_a_series_folder_follows_a_slice_rewritten_in_place(images):
    """The volume cache's key (training) and the review app's version of a series folder:
    a slice rewritten in place changes it although the folder's own time stays."""
    folder = images / SERIES
    before, stamp = volume_version(folder), folder.stat().st_mtime_ns
    first = sorted(folder.iterdir())[0]
    first.write_bytes(first.read_bytes())
    os.utime(first, ns=(stamp + 10**9, stamp + 10**9))
    os.utime(folder, ns=(stamp, stamp))
    assert folder.stat().st_mtime_ns == stamp and volume_version(folder) != before


def test_the_faults_of_series_folders_are_reported_together(images, tmp_path):
    array, geometry = phantom()
    write_volume(images / f"{SERIES}.nrrd", array, geometry)  # the same id twice
    write_dicom_series(images / "two", array, geometry, UID)
    write_dicom_series(images / "two", array, geometry, OTHER_UID, prefix="other")
    (images / "notes").mkdir()
    (images / "notes" / "readme.txt").write_text("not DICOM")
    write_dicom_series(images / ".hidden", array, geometry, UID)
    rows = [(rid, 0, VOXELS[0]) for rid in (SERIES, "two", "notes", ".hidden", "copy")]
    with pytest.raises(InputError) as err:
        volume_csv_dataset(write_table(tmp_path / "t.csv", rows, "voxel"), images=images)
    text = " ".join(str(err.value).split())
    assert "4 fault(s)" in text, text
    assert (f"record {SERIES}: record id '{SERIES}' names both the volume file "
            f"{SERIES}.nrrd and the DICOM series folder {SERIES}/") in text
    assert "record two: " in text and "2 DICOM series in this folder" in text
    assert f"{UID} (11 files)" in text and f"{OTHER_UID} (11 files)" in text
    assert "split them" in text
    assert ("no volume file with stem 'notes' and no DICOM series folder 'notes' "
            f"in {images} (a folder of that name holds no DICOM file)") in text
    assert "record .hidden: no volume file with stem '.hidden'" in text
    assert "record copy" not in text


def test_reviewed_series_train_predict_and_evaluate(images, tmp_path):
    """The command line on a table naming series folders: ``train`` (with the volume
    cache, keyed for a folder over its files), ``predict`` on the images folder (series
    subfolders included, each named by its folder), ``evaluate`` in mm."""
    array, geometry = phantom()
    write_dicom_series(images / "second", array[:, :, ::-1].copy(), geometry, OTHER_UID)
    world = geometry.index_to_world(VOXELS)
    rows = [(rid, k, p) for rid in (SERIES, "second", "copy") for k, p in enumerate(world)]
    table = write_table(images / "landmarks_reviewed_volumes.csv", rows, "world-lps")
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({
        "out_dir": str(tmp_path / "run"),
        "stage": {"kind": "volume", "spacing": 3.0, "modality": "ct"},
        "model": {"name": "unet3d", "width": 4, "depth": 2},
        "domains": [{"name": "reviewed", "dataset": "volume-csv", "root": str(table),
                     "options": {"images": str(images)}, "train_split": "all",
                     "val_split": None, "input_size": [8, 8, 8], "sigma": 1.5}],
        "train": {"epochs": 1, "batch_size": 2, "cache_dir": str(tmp_path / "cache"),
                  "threads": 1}}))
    runner = CliRunner()
    r = runner.invoke(app, ["train", str(config), "--no-progress"])
    assert r.exit_code == 0, r.output
    cached = sorted(p.name.split("-")[0] for p in (tmp_path / "cache").rglob("*.npz"))
    assert cached == ["copy", "patient.7", "second"]
    checkpoint = tmp_path / "run" / "last.pt"
    out = tmp_path / "pred.csv"
    r = runner.invoke(app, ["predict", str(images), "--checkpoint", str(checkpoint),
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    predicted = list(csv.DictReader(out.open()))
    assert {row["image"] for row in predicted} == {SERIES, "second", "copy"}
    same = [np.array([[float(row[f"{a}_mm"]) for a in "xyz"] for row in predicted
                      if row["image"] == rid]) for rid in (SERIES, "copy")]
    np.testing.assert_allclose(same[0], same[1], atol=1e-2)  # the same voxels, one frame
    report = tmp_path / "report.json"
    r = runner.invoke(app, ["evaluate", "volume-csv", "--root", str(table), "--opt",
                            f"images={images}", "--split", "all", "--predictions", str(out),
                            "--json", str(report)])
    assert r.exit_code == 0, r.output
    scored = json.loads(report.read_text())
    assert scored["unit"] == "mm" and scored["n_images"] == 3
