"""Volumes on another grid: a new voxel spacing, or the axes permuted and flipped to an
orientation code. World points (LPS mm) are unchanged by both; voxel points move with the
grid and are mapped with the geometries: ``new.world_to_index(old.index_to_world(p))``.

Arrays are ``(Z, Y, X)`` (x fastest); geometries are
:class:`~unilandmark.core.world.VolumeGeometry` (LPS millimetres).
"""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk

from ..core.errors import InputError
from ..core.limits import size_fault
from ..core.world import ORIENTATION_LETTERS, VolumeGeometry
from .volume import geometry_of, image_from_array

__all__ = ["INTERPOLATORS", "resample_to_spacing", "resampled_size", "reoriented"]

#: interpolation order name -> SimpleITK interpolator (0, 1 and 3 name them too)
INTERPOLATORS = {"nearest": sitk.sitkNearestNeighbor, "linear": sitk.sitkLinear,
                 "bspline": sitk.sitkBSpline}
_ORDER_NAMES = {0: "nearest", 1: "linear", 3: "bspline"}


def resampled_size(geometry: VolumeGeometry, spacing) -> tuple[int, int, int]:
    """The size ``(X, Y, Z)`` of ``geometry``'s volume resampled to ``spacing`` (mm).

    The origin (the centre of the first voxel) is kept and the new voxel centres cover
    the old centres' span: ``n' = floor((n - 1) s / s') + 1`` per axis. No new centre
    lies beyond the last old one (nothing is extrapolated), and the world extent is kept
    to within one new voxel.
    """
    new = _spacing(spacing)
    return tuple(int(math.floor((n - 1) * s / t + 1e-9)) + 1
                 for n, s, t in zip(geometry.size, geometry.spacing, new, strict=True))


def resample_to_spacing(array: np.ndarray, geometry: VolumeGeometry, spacing=1.0,
                        order: str | int = "linear", max_voxels: int | None = None,
                        ) -> tuple[np.ndarray, VolumeGeometry]:
    """Resample a volume to a voxel spacing, keeping its origin and direction.

    ``array`` ``(Z, Y, X)`` with ``geometry``; ``spacing``: one number (isotropic, 1 mm
    by default) or ``(sx, sy, sz)`` mm. ``order``: ``"nearest"`` (0; label maps),
    ``"linear"`` (1) or ``"bspline"`` (3, cubic). The new size is
    :func:`resampled_size`; the sampling is SimpleITK's ``ResampleImageFilter`` (no
    anti-aliasing: smooth first when the spacing grows several-fold). ``max_voxels``
    caps the new volume (``$UNILANDMARK_MAX_PIXELS`` by default).

    Returns ``(array (Z', Y', X'), geometry)``: ``"nearest"`` keeps the dtype;
    ``"linear"`` and ``"bspline"`` give float32 (float64 stays float64). A world point
    keeps its position; a voxel point ``p`` becomes
    ``new.world_to_index(geometry.index_to_world(p))``.
    """
    interpolator = _interpolator(order)
    new_spacing = _spacing(spacing)
    size = resampled_size(geometry, new_spacing)
    fault = size_fault(size[0], size[1], size[2], max_voxels)
    if fault:
        raise InputError(f"resampling to {new_spacing} mm: {fault}")
    image = image_from_array(array, geometry)
    keep = interpolator == sitk.sitkNearestNeighbor or image.GetPixelID() == sitk.sitkFloat64
    if not keep:
        image = sitk.Cast(image, sitk.sitkFloat32)
    target = VolumeGeometry(size=size, spacing=new_spacing, origin=geometry.origin,
                            direction=geometry.direction)
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize(target.size)
    resampler.SetOutputSpacing(target.spacing)
    resampler.SetOutputOrigin(target.origin)
    resampler.SetOutputDirection(tuple(target.direction_matrix.ravel()))
    resampler.SetInterpolator(interpolator)
    resampler.SetDefaultPixelValue(float(np.min(array)) if np.size(array) else 0.0)
    resampler.SetOutputPixelType(image.GetPixelID())
    out = resampler.Execute(image)
    return sitk.GetArrayFromImage(out), target


def reoriented(array: np.ndarray, geometry: VolumeGeometry, code: str = "LPS",
               ) -> tuple[np.ndarray, VolumeGeometry]:
    """The same voxels with the axes permuted and flipped so the index axes point towards
    ``code`` (three letters, one of L/R, P/A, S/I each, in the convention of
    :meth:`VolumeGeometry.orientation_code`), with SimpleITK's ``DICOMOrient``.

    No voxel is interpolated: the array is a permutation of the input's and the new
    geometry (origin at the new first voxel, the direction's columns permuted and
    negated) puts every voxel at its old world position. An oblique direction stays
    oblique: its closest code becomes ``code``. Returns ``(array (Z', Y', X'),
    geometry)``.
    """
    code = _code(code)
    image = image_from_array(array, geometry)
    out = sitk.DICOMOrient(image, code)
    return sitk.GetArrayFromImage(out), geometry_of(out)


def _spacing(spacing) -> tuple[float, float, float]:
    values = np.asarray(spacing, dtype=np.float64).reshape(-1) \
        if not isinstance(spacing, str) else np.zeros(0)
    if values.size == 1:
        values = np.repeat(values, 3)
    if values.size != 3 or not np.isfinite(values).all() or (values <= 0).any():
        raise InputError(f"spacing must be one positive number of mm or three (x, y, z), "
                         f"got {spacing!r}")
    return tuple(float(v) for v in values)


def _interpolator(order):
    name = _ORDER_NAMES.get(order, order) if isinstance(order, int) else order
    if name not in INTERPOLATORS:
        raise InputError(f"unknown interpolation order {order!r}; expected one of "
                         f"{', '.join(INTERPOLATORS)} (or 0, 1, 3)")
    return INTERPOLATORS[name]


def _code(code) -> str:
    text = str(code).upper()
    pairs = [set(p) for p in ORIENTATION_LETTERS]
    if len(text) != 3 or any(sum(letter in p for letter in text) != 1 for p in pairs):
        raise InputError(f"orientation code {code!r}: expected three letters, one of L/R, "
                         "one of P/A and one of S/I (e.g. 'LPS', 'RAS', 'PIR')")
    return text
