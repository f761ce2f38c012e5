"""Landmarks stored as a label-map volume: one voxel value per landmark.

Spinal-cord tools store vertebral levels this way (the Spinal Cord Toolbox's
``labels.nii.gz``: a few voxels, each valued with its level, on an otherwise zero volume).
A label value names the landmark; zero is background.

- :func:`points_from_labelmap` reads the labelled voxels. Several voxels of one value give
  their centroid (the mean voxel index, a float), with the count in ``voxels``; values that
  do not occur are simply absent from the result.
- :func:`write_labelmap` is the inverse: each point goes to its NEAREST voxel of a
  reference volume's grid (index rounded half up), so a point read back is the voxel
  centre, within half a voxel of the point written.

Points follow the package contract: voxel indices ``(x, y, z)`` = the numpy array axes
reversed (x along the fastest axis), the centre of the first voxel at 0; world points in
millimetres, LPS (ITK's frame), through the volume's own spacing, origin and direction
(which may permute the axes: ``../shared/data/sct_t2`` does).

The geometry is read with SimpleITK in :func:`volume_frame`, a small stand-in for the
package's volume reader that can be swapped for it later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.atomic import atomic_path
from ..core.errors import InputError
from ..imageio.formats import image_suffix as file_suffix
from ..imageio.read import itk_message
from ..imageio.volume import dicom_series_ids, read_volume_info
from .faults import FaultLog
from .markups import raise_faults


@dataclass(frozen=True)
class VolumeFrame:
    """Where a volume's voxels lie in the world (ITK's convention, LPS millimetres).

    size : (x, y, z) voxels (numpy shape reversed). spacing : (x, y, z) mm per voxel.
    origin : (D,) world position of voxel (0, 0, 0). direction : (D, D), column j the
    world direction of index axis j. world = origin + direction @ (spacing * index).
    """

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: np.ndarray
    direction: np.ndarray
    path: str = ""

    @property
    def dimension(self) -> int:
        return len(self.size)

    def index_to_world(self, index) -> np.ndarray:
        """``(..., D)`` voxel indices (x, y, z) to world LPS millimetres; NaN stays NaN."""
        idx = np.asarray(index, dtype=np.float64)
        return (idx * np.asarray(self.spacing)) @ self.direction.T + self.origin

    def world_to_index(self, world) -> np.ndarray:
        """``(..., D)`` world LPS millimetres to continuous voxel indices (x, y, z)."""
        pts = np.asarray(world, dtype=np.float64)
        return ((pts - self.origin) @ np.linalg.inv(self.direction).T) / np.asarray(self.spacing)

    def inside(self, index) -> np.ndarray:
        """``(...,)`` bool: indices within the volume, [-0.5, size - 0.5] on every axis."""
        idx = np.asarray(index, dtype=np.float64)
        return ((idx >= -0.5) & (idx <= np.asarray(self.size) - 0.5)).all(axis=-1)

    def meta(self) -> dict:
        """Plain facts for a record's meta (lists, JSON-ready)."""
        return {"size": list(self.size), "spacing": list(self.spacing),
                "origin": self.origin.tolist(), "direction": self.direction.ravel().tolist(),
                "world_frame": "LPS"}


def volume_frame(source) -> VolumeFrame:
    """The :class:`VolumeFrame` of a volume file (header only, no voxels read), of a
    folder holding one DICOM series (each slice's header, not its pixels: the geometry
    :func:`~..imageio.volume.read_volume` gives the folder), or of a ``SimpleITK.Image``.
    InputError naming the file or folder when it cannot be read; a folder holding several
    series is refused naming them (one record is one volume)."""
    if isinstance(source, sitk.Image):
        return _frame_of(source, "")
    path = Path(source)
    if path.is_dir():
        return _series_frame(path)
    if not path.is_file():
        raise InputError(f"{path}: volume file not found")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise InputError(f"{path}: cannot read the volume header "
                         f"({itk_message(err)})") from err
    return _frame_of(reader, str(path))


def _series_frame(folder: Path) -> VolumeFrame:
    """The frame of the one DICOM series in ``folder`` (:func:`volume_frame`)."""
    found = dicom_series_ids(folder)
    if len(found) > 1:
        listed = "; ".join(f"{uid} ({n} files)" for uid, n in found.items())
        raise InputError(f"{folder}: {len(found)} DICOM series in this folder ({listed}); "
                         "a record is one volume: split them, each series in a folder of "
                         "its own (the folder's name is its record id)")
    geometry = read_volume_info(folder, series=next(iter(found), None))
    return VolumeFrame(size=tuple(int(v) for v in geometry.size),
                       spacing=tuple(float(v) for v in geometry.spacing),
                       origin=np.asarray(geometry.origin, dtype=np.float64),
                       direction=np.array(geometry.direction_matrix, dtype=np.float64),
                       path=str(folder))


def _frame_of(obj, path: str) -> VolumeFrame:
    dim = obj.GetDimension()
    return VolumeFrame(size=tuple(int(s) for s in obj.GetSize()),
                       spacing=tuple(float(s) for s in obj.GetSpacing()),
                       origin=np.asarray(obj.GetOrigin(), dtype=np.float64),
                       direction=np.asarray(obj.GetDirection(), dtype=np.float64).reshape(dim, dim),
                       path=path)


@dataclass(frozen=True)
class LabelPoint:
    """One label of a label map: ``index`` (x, y, z) voxel centroid (floats),
    ``world_lps`` the same point in world millimetres (LPS), ``voxels`` how many voxels
    carry the label (1 for a single labelled voxel)."""

    index: tuple[float, ...]
    world_lps: tuple[float, ...]
    voxels: int


def points_from_labelmap(source) -> dict[int, LabelPoint]:
    """``{label value: LabelPoint}`` of a label-map volume, sorted by value.

    ``source``: a file path, a ``SimpleITK.Image``, or ``(array, image)`` where ``array``
    is the numpy voxel array (Z, Y, X) and ``image`` the SimpleITK image (or file path)
    giving the geometry. Zero is background. Several voxels of one value give their
    centroid; values not present are absent. Refused: a non-integer voxel value, a
    negative value, a multi-component image, an array whose shape does not match the
    geometry.
    """
    array, frame, name = _labelmap_source(source)
    log = FaultLog(name)
    if array.ndim != frame.dimension or array.shape != tuple(reversed(frame.size)):
        log.add(name, "", f"voxel array of shape {array.shape} does not match the volume "
                          f"size {frame.size} (x, y, z; the array is (z, y, x))")
        raise_faults(log)
    if array.dtype.kind == "b":
        array = array.astype(np.uint8)
    if array.dtype.kind not in "iuf":
        log.add(name, "", f"voxel type {array.dtype} is not a number: not a label map")
        raise_faults(log)
    nonzero = np.flatnonzero(array.ravel() != 0)
    values = array.ravel()[nonzero]
    if array.dtype.kind == "f":
        bad = values[~np.isfinite(values) | (values != np.round(values))]
        if bad.size:
            log.add(name, "", f"{bad.size} voxels hold non-integer values (e.g. {bad[0]!r}): "
                              "not a label map")
    if (values < 0).any():
        log.add(name, "", f"negative label values {sorted(set(values[values < 0].tolist()))[:5]}"
                          ": label values are positive integers, 0 is background")
    raise_faults(log)
    values = values.astype(np.int64)
    # (N, D) indices in (x, y, z) order: numpy axes reversed
    index = np.stack(np.unravel_index(nonzero, array.shape)[::-1], axis=1).astype(np.float64)
    labels, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.zeros((len(labels), frame.dimension))
    np.add.at(sums, inverse.ravel(), index)
    centroids = sums / np.maximum(counts, 1)[:, None]
    world = frame.index_to_world(centroids)
    return {int(v): LabelPoint(tuple(float(c) for c in centroids[i]),
                               tuple(float(w) for w in world[i]), int(counts[i]))
            for i, v in enumerate(labels)}


def _labelmap_source(source):
    if isinstance(source, tuple):
        if len(source) != 2:
            raise InputError("points_from_labelmap: give a path, a SimpleITK image or "
                             f"(array, image); got a tuple of {len(source)}")
        array, ref = source
        frame = volume_frame(ref)
        name = frame.path or "label map (array)"
        return np.asarray(array), frame, name
    if isinstance(source, sitk.Image):
        image, name = source, "label map (image)"
    else:
        name = str(source)
        if not Path(source).is_file():
            raise InputError(f"{name}: label-map file not found")
        try:
            image = sitk.ReadImage(name)
        except RuntimeError as err:
            raise InputError(f"{name}: cannot read the label map ({itk_message(err)})") from err
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{name}: {image.GetNumberOfComponentsPerPixel()} components per "
                         "voxel: a label map has one")
    frame = _frame_of(image, name if not isinstance(source, sitk.Image) else "")
    return sitk.GetArrayFromImage(image), frame, name


def write_labelmap(path: str | os.PathLike, reference_volume, points: Mapping,
                   frame: str = "world-lps") -> Path:
    """Write a label map on the grid of ``reference_volume`` (path or SimpleITK image):
    each ``{label value: point}`` marks its nearest voxel with the value; atomic.

    ``points`` values are world LPS millimetres (``frame="world-lps"``, the default) or
    voxel indices (x, y, z) (``frame="voxel"``), or :class:`LabelPoint` (its world point).
    A NaN point is absent (nothing written). Refused, all together: a label value that is
    not a positive integer, a point outside the volume, two labels on one voxel. The
    voxel type is the smallest unsigned integer holding the largest value. Returns the
    path written (its suffix chooses the file format, e.g. ``.nii.gz``).
    """
    if frame not in ("world-lps", "voxel"):
        raise InputError(f"write_labelmap: unknown frame {frame!r}; expected 'world-lps' or "
                         "'voxel'")
    path = Path(path)
    grid = volume_frame(reference_volume)
    log = FaultLog(str(path))
    voxels: dict[tuple[int, ...], int] = {}
    for value, point in points.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            log.add(path, "", f"label {value!r}: label values are positive integers "
                              "(0 is background)")
            continue
        if isinstance(point, LabelPoint):
            p, kind = np.asarray(point.world_lps, dtype=np.float64), "world-lps"
        else:
            p, kind = np.asarray(point, dtype=np.float64), frame
        if p.shape != (grid.dimension,):
            log.add(path, "", f"label {value}: expected {grid.dimension} coordinates, got "
                              f"shape {p.shape}")
            continue
        if np.isnan(p).all():
            continue
        index = p if kind == "voxel" else grid.world_to_index(p)
        if not (np.isfinite(index).all() and grid.inside(index)):
            log.add(path, "", f"label {value}: point {p.tolist()} ({kind}) lies outside the "
                              f"volume (voxel index {np.round(index, 2).tolist()}, size "
                              f"{list(grid.size)})")
            continue
        voxel = tuple(int(v) for v in np.minimum(np.floor(index + 0.5),
                                                 np.asarray(grid.size) - 1))
        if voxel in voxels:
            log.add(path, "", f"label {value}: nearest voxel {list(voxel)} already holds "
                              f"label {voxels[voxel]}")
            continue
        voxels[voxel] = int(value)
    raise_faults(log)
    top = max(voxels.values(), default=0)
    dtype = np.uint8 if top < 2**8 else np.uint16 if top < 2**16 else np.uint32
    array = np.zeros(tuple(reversed(grid.size)), dtype=dtype)
    for voxel, value in voxels.items():
        array[tuple(reversed(voxel))] = value
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(grid.spacing)
    image.SetOrigin(tuple(grid.origin.tolist()))
    image.SetDirection(tuple(grid.direction.ravel().tolist()))
    _write_image_atomic(image, path)
    return path


def _write_image_atomic(image: sitk.Image, path: Path) -> None:
    """Write ``image`` to ``path`` through a temporary file in the same folder that keeps
    the suffix (SimpleITK picks the format, and compression, from the file name)."""
    with atomic_path(path, suffix=file_suffix(path)) as tmp:
        try:
            sitk.WriteImage(image, str(tmp))
        except RuntimeError as err:
            raise InputError(f"{path}: cannot write the label map ({itk_message(err)})") from err
