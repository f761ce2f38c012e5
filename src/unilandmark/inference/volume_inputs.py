"""Volumes into network space: resampling to a target spacing, centring in the input,
intensity per modality, and the way back to original voxels and world millimetres.

One map for everything (the 3-D twin of :func:`..core.geometry.fit_geometry`). A volume of
``n`` voxels per axis at spacing ``s`` mm is resampled to spacing ``t`` mm along its OWN
index axes (the direction and origin are kept, so the map is a diagonal scale plus a
translation and an oblique volume stays oblique), then padded or cropped to the network
input of ``m`` voxels with an integer offset ``o`` (network voxels). Per axis, with the
voxel-centre convention (centre of the first voxel at 0, faces at ``-0.5``)::

    f = t / s                                # original voxels per network voxel
    x_orig = (x_net - o + 0.5) * f - 0.5     # network -> original voxel index
    x_net  = (x_orig + 0.5) / f - 0.5 + o    # its exact inverse

so the outer faces of the volume, ``-0.5`` and ``n - 0.5``, land on ``o - 0.5`` and
``o + n / f - 0.5``: the resampled volume covers ``e = n / f`` network voxels (the world
extent ``n s`` is kept exactly, not rounded to whole voxels). ``o`` centres the volume's
centre ``c = (n - 1) / 2`` (or, for a patch, any centre ``c``) on the input's centre
``(m - 1) / 2`` to the nearest whole voxel: ``o = floor(m / 2 - (c + 0.5) / f + 0.5)``,
which for the whole volume is ``floor((m - e) / 2 + 0.5)``: negative offsets and
``e > m`` crop, ``e < m`` pads. A whole ``o`` keeps the network grid on the resampled
grid, so at ``f = 1`` (a full-resolution patch) every network voxel IS an original voxel.

The (4, 4) :class:`~unilandmark.core.types.Geometry` matrix holds ``diag(f)`` and the
translation ``f (0.5 - o) - 0.5``; world millimetres (LPS) follow through the volume's
:class:`~unilandmark.core.world.VolumeGeometry` (:func:`to_world`). Note the resampled
grid is face-aligned (the 2-D resize's ``align_corners=False``), unlike
:func:`..imageio.reorient.resample_to_spacing`, which keeps the first voxel's centre.

Sampling (:func:`resample_into`): trilinear as ``torch.nn.functional.grid_sample``
computes it (``align_corners=False``, so a normalised coordinate ``g`` is the index
``((g + 1) n - 1) / 2``; ``padding_mode="border"``) inside the volume's outer faces and
``fill`` beyond them, in numpy (:func:`..imageio.trilinear.sample_trilinear`, torch's
float32 arithmetic step by step), so this module needs no torch and the torch-free ONNX
driver (``export.volume_runner``) prepares the very inputs ``VolumeDetector`` does.
Shrinking (``f > 1`` along an axis) first smooths that axis with a Gaussian of
``sigma = (f - 1) / 2`` original voxels (scikit-image's anti-aliasing rule: none at
``f = 1``, 0.5 voxel when halving, 1.5 when shrinking 4x); enlarging is plain trilinear.

Intensity (:func:`normalise_volume`): CT in Hounsfield units clipped to a window
(``-1000 .. 2000`` HU by default) and scaled to [0, 1]; MR by its 0.5th..99.5th
percentiles (:func:`..imageio.read.normalise_intensity`, which works on any number of
dimensions). Normalising comes first, so padding (``fill = 0``) is the background.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.errors import InputError
from ..core.modelmeta import VOLUME_MODALITIES
from ..core.types import Geometry, Record
from ..core.world import VolumeGeometry
from ..imageio.read import normalise_intensity
from ..imageio.trilinear import sample_trilinear
from ..imageio.volume import read_volume_info

__all__ = ["CT_WINDOW", "MODALITIES", "normalise_volume", "patch_geometry",
           "record_volume_geometry", "resample_into", "to_world", "volume_geometry",
           "world_to_network"]

MODALITIES = VOLUME_MODALITIES  # ("mr", "ct"), one list with the model-file checks


#: the default CT window in Hounsfield units: air to dense bone
CT_WINDOW = (-1000.0, 2000.0)


#: scipy's gaussian_filter reaches this many sigmas (its default ``truncate``)
_TRUNCATE = 4.0


def record_volume_geometry(record: Record) -> VolumeGeometry:
    """The :class:`VolumeGeometry` of a volume record: from the header facts the volume
    adapters keep in ``record.meta`` (size, spacing, origin, direction), else from the
    file's header (no voxel decoded)."""
    meta = record.meta
    if all(k in meta for k in ("size", "spacing", "origin", "direction")):
        return VolumeGeometry(size=meta["size"], spacing=meta["spacing"],
                              origin=meta["origin"], direction=meta["direction"])
    return read_volume_info(record.image_path)


def three_values(value, name: str, kind=float) -> np.ndarray:
    values = np.asarray(value, dtype=np.float64).reshape(-1) \
        if not isinstance(value, str) else np.zeros(0)
    if values.size == 1:
        values = np.repeat(values, 3)
    if values.size != 3 or not np.isfinite(values).all() or (values <= 0).any():
        raise InputError(f"{name} must be one positive number or three (x, y, z), "
                         f"got {value!r}")
    if kind is int and not (values == np.round(values)).all():
        raise InputError(f"{name} must be whole voxels (x, y, z), got {value!r}")
    return values


def _centred(volume: VolumeGeometry, centre, input_size, target_spacing) -> Geometry:
    """The Geometry placing original voxel ``centre`` (3,) at the input's centre."""
    size = three_values(input_size, "input_size", int).astype(np.int64)
    spacing = np.array(volume.spacing)
    target = spacing if target_spacing is None else three_values(target_spacing, "target_spacing")
    f = target / spacing
    centre = np.asarray(centre, dtype=np.float64).reshape(3)
    if not np.isfinite(centre).all():
        raise InputError(f"patch centre must be finite voxel indices, got {centre.tolist()}")
    offset = np.floor(size / 2 - (centre + 0.5) / f + 0.5)
    matrix = np.eye(4)
    matrix[:3, :3] = np.diag(f)
    matrix[:3, 3] = f * (0.5 - offset) - 0.5
    return Geometry(original_size=tuple(volume.size), spacing=tuple(volume.spacing),
                    matrix=matrix, input_size=tuple(int(v) for v in size))


def volume_geometry(volume: VolumeGeometry, target_spacing=1.0,
                    input_size=(128, 128, 128)) -> Geometry:
    """The Geometry of a whole volume resampled to ``target_spacing`` mm (one number:
    isotropic; or ``(sx, sy, sz)``) along its own index axes and centred in (padded or
    cropped to) ``input_size`` ``(x, y, z)`` voxels: a (4, 4) matrix from network voxels
    to ORIGINAL voxel indices, ``x_orig = (x_net - o + 0.5) f - 0.5`` per axis with
    ``f = t / s`` and ``o = floor((m - n / f) / 2 + 0.5)`` (module docstring).

    A 10 x 10 x 4 volume at 1 x 1 x 3 mm, at 2 mm into 8 voxels a side: ``f = (2, 2,
    2/3)``, ``e = (5, 5, 6)``, ``o = (2, 2, 1)``; its outer faces land at network 1.5
    and 6.5 (x, y; padded) and 0.5 and 6.5 (z):

    >>> g = volume_geometry(VolumeGeometry(size=(10, 10, 4), spacing=(1, 1, 3)), 2.0, (8, 8, 8))
    >>> g.to_network(np.array([[-0.5, -0.5, -0.5], [9.5, 9.5, 3.5]])).tolist()
    [[1.5, 1.5, 0.5], [6.5, 6.5, 6.5]]
    """
    centre = (np.array(volume.size, dtype=np.float64) - 1) / 2
    return _centred(volume, centre, input_size, target_spacing)


def patch_geometry(volume: VolumeGeometry, centre, patch_size,
                   target_spacing=None) -> Geometry:
    """The Geometry of a patch of ``patch_size`` ``(x, y, z)`` voxels around original
    voxel ``centre`` ``(x, y, z)``, at ``target_spacing`` mm (None: the volume's own
    spacing, full resolution, so the patch's voxels are original voxels): the same map as
    :func:`volume_geometry` with the offset centring ``centre`` to the nearest voxel,
    ``o = floor(m / 2 - (c + 0.5) / f + 0.5)``. The refinement half of "a coarse pass on a
    resampled volume, then patches at full resolution"."""
    return _centred(volume, centre, patch_size, target_spacing)


def to_world(points_network, geometry: Geometry, volume: VolumeGeometry) -> np.ndarray:
    """Network voxel points ``(..., 3)`` -> world LPS millimetres ``(..., 3)`` float64:
    through the Geometry to original voxel indices, then the volume's geometry (the full
    way back; NaN stays NaN)."""
    return volume.index_to_world(geometry.to_original(points_network))


def world_to_network(points_world, geometry: Geometry, volume: VolumeGeometry) -> np.ndarray:
    """World LPS millimetres ``(..., 3)`` -> network voxel points ``(..., 3)``: the inverse
    of :func:`to_world`."""
    return geometry.to_network(volume.world_to_index(points_world))


def _scale_and_shift(geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    matrix = np.asarray(geometry.matrix, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise InputError(f"a volume Geometry has a (4, 4) matrix, got {matrix.shape}")
    scale = np.diag(matrix[:3, :3]).copy()
    if np.abs(matrix[:3, :3] - np.diag(scale)).max() > 0 or (scale <= 0).any():
        raise InputError("resample_into samples along the volume's own axes: the Geometry "
                         f"must be a positive diagonal scale plus a shift, got "
                         f"{matrix[:3, :3].round(6).tolist()}")
    return scale, matrix[:3, 3].copy()


def resample_into(array: np.ndarray, geometry: Geometry, fill: float = 0.0) -> np.ndarray:
    """Sample ``array`` ``(Z, Y, X)`` (original voxels) into the network input of
    ``geometry``: ``(Z', Y', X')`` float32 with ``(X', Y', Z') = geometry.input_size``.

    Network voxel ``(x, y, z)`` takes the trilinear value at original index
    ``geometry.to_original((x, y, z))`` (:func:`~..imageio.trilinear.sample_trilinear`:
    ``grid_sample``'s value, ``align_corners=False``); a network voxel whose original
    position lies beyond the volume's outer faces gets ``fill``. Axes shrunk by ``f > 1``
    are first smoothed with a Gaussian of ``sigma = (f - 1) / 2`` original voxels (module
    docstring). Only the part of the volume the input reaches (plus the filter's and the
    interpolation's margins) is touched, so a small patch of a large volume costs a small
    patch. numpy and scipy only.
    """
    from scipy.ndimage import gaussian_filter

    arr = np.asarray(array)
    shape = tuple(int(v) for v in geometry.original_size)[::-1]
    if arr.ndim != 3 or arr.shape != shape:
        raise InputError(f"volume of shape {arr.shape} does not match the geometry's "
                         f"original size {tuple(geometry.original_size)} (expected "
                         f"(Z, Y, X) = {shape})")
    scale, shift = _scale_and_shift(geometry)
    out_size = [int(v) for v in geometry.input_size]  # (x, y, z)
    sigma = np.where(scale > 1.0, (scale - 1.0) / 2.0, 0.0)  # (x, y, z), original voxels
    n = np.array(arr.shape[::-1])  # (x, y, z)
    # original coordinates of the network voxel centres, per axis (separable map)
    coords = [scale[a] * np.arange(out_size[a], dtype=np.float64) + shift[a] for a in range(3)]
    inside = [(c >= -0.5) & (c <= n[a] - 0.5) for a, c in enumerate(coords)]
    out = np.full(out_size[::-1], fill, dtype=np.float32)
    if not all(m.any() for m in inside):
        return out
    # the original box the samples reach: interpolation (+1) and the filter's radius
    starts, stops = [], []
    for a in range(3):
        c = coords[a][inside[a]]
        margin = 1 + (int(_TRUNCATE * sigma[a] + 0.5) if sigma[a] > 0 else 0)
        starts.append(max(0, int(math.floor(c.min())) - margin))
        stops.append(min(int(n[a]), int(math.ceil(c.max())) + 1 + margin))
    mask = inside[2][:, None, None] & inside[1][None, :, None] & inside[0][None, None, :]
    if (scale == 1.0).all() and (shift == np.round(shift)).all():  # whole voxels: a copy
        idx = [np.round(c[m]).astype(np.int64) for c, m in zip(coords, inside, strict=True)]
        out[np.ix_(*(np.flatnonzero(m) for m in inside[::-1]))] = \
            arr[np.ix_(idx[2], idx[1], idx[0])]
        return out
    # a view where the volume is float32 already (no copy of a large volume's box)
    box = arr[starts[2]:stops[2], starts[1]:stops[1], starts[0]:stops[0]].astype(
        np.float32, copy=False)
    if (sigma > 0).any():
        box = gaussian_filter(box, sigma=tuple(sigma[::-1]), mode="nearest",
                              truncate=_TRUNCATE).astype(np.float32, copy=False)
    size = np.array(box.shape[::-1])  # (x, y, z) of the box
    # normalised coordinates (align_corners=False): g = (2 i + 1) / n - 1, in float32 as
    # grid_sample took them
    g = [((2.0 * (coords[a] - starts[a]) + 1.0) / size[a] - 1.0).astype(np.float32)
         for a in range(3)]
    sampled = sample_trilinear(box, g[0], g[1], g[2])
    out[mask] = sampled[mask]
    return out


def normalise_volume(array: np.ndarray, modality: str = "mr",
                     window: tuple[float, float] = CT_WINDOW) -> np.ndarray:
    """A volume (any shape, any dtype) -> float32 in [0, 1].

    ``ct``: Hounsfield units clipped to ``window`` ``(low, high)`` and scaled, ``low`` to
    0 and ``high`` to 1 (NaN voxels become 0). ``mr``: the 0.5th..99.5th percentile
    window of the volume itself (:func:`~unilandmark.imageio.read.normalise_intensity`;
    a constant volume gives 0); ``window`` is not used.
    """
    if modality not in MODALITIES:
        raise InputError(f"unknown modality {modality!r}; expected one of "
                         f"{', '.join(MODALITIES)}")
    if modality == "mr":
        return np.asarray(normalise_intensity(array), dtype=np.float32)
    try:
        low, high = (float(v) for v in window)
    except (TypeError, ValueError):
        raise InputError(f"CT window must be two numbers (low, high) in HU, got "
                         f"{window!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise InputError(f"CT window must be finite with high > low, got {window!r}")
    out = np.array(array, dtype=np.float32)  # one float32 copy, then in place
    out -= np.float32(low)
    out *= np.float32(1.0 / (high - low))
    out = np.nan_to_num(out, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(out, 0.0, 1.0, out=out)


# -- one orientation for the network ------------------------------------------------------

#: the orientation every volume is turned to before the network: index axes x, y, z
#: pointing to L, P, S (ITK's LPS, the identity direction for an axis-aligned volume)
CANONICAL = "LPS"


def canonical_axes(volume: VolumeGeometry) -> tuple[tuple[int, int, int], tuple[bool, ...]]:
    """For each canonical index axis j (x, y, z = the world L, P, S axes), the volume's own
    index axis that points closest to it and whether it points the other way: ``(axes,
    flips)``. An oblique volume is turned by the nearest whole permutation and flips (no
    interpolation); its small remaining obliquity stays in the direction."""
    direction = np.asarray(volume.direction_matrix, dtype=np.float64)  # columns: index axes
    dominant = np.argmax(np.abs(direction), axis=0)  # world axis of each index axis
    if sorted(dominant.tolist()) != [0, 1, 2]:  # two axes nearest the same world axis
        order = np.argsort(-np.abs(direction), axis=None)
        used_world, used_index, pairs = set(), set(), {}
        for flat in order:
            w, i = divmod(int(flat), 3)
            if w not in used_world and i not in used_index:
                pairs[i] = w
                used_world.add(w)
                used_index.add(i)
        dominant = np.array([pairs[i] for i in range(3)])
    axes = tuple(int(np.flatnonzero(dominant == j)[0]) for j in range(3))
    flips = tuple(bool(direction[j, axes[j]] < 0) for j in range(3))
    return axes, flips


def canonical_geometry(volume: VolumeGeometry) -> VolumeGeometry:
    """The geometry of ``volume`` turned to :data:`CANONICAL` (same voxels, same world)."""
    axes, flips = canonical_axes(volume)
    direction = np.asarray(volume.direction_matrix, dtype=np.float64)
    size = [volume.size[a] for a in axes]
    spacing = [volume.spacing[a] for a in axes]
    columns = np.stack([direction[:, a] * (-1.0 if f else 1.0)
                        for a, f in zip(axes, flips, strict=True)], axis=1)
    corner = np.zeros(3)
    for a, f in zip(axes, flips, strict=True):
        corner[a] = volume.size[a] - 1 if f else 0
    origin = volume.index_to_world(corner[None])[0]
    return VolumeGeometry(tuple(size), tuple(spacing), tuple(origin), columns)


def canonical(array: np.ndarray, volume: VolumeGeometry
              ) -> tuple[np.ndarray, VolumeGeometry]:
    """``array`` (Z, Y, X) and its geometry turned to :data:`CANONICAL` by a permutation
    and flips of the axes (exact: no interpolation). World points are unchanged; voxel
    points map through the two geometries (``canonical.world_to_index(volume.
    index_to_world(p))``). A volume stored in another axis order or orientation thus
    reaches the network as the same picture."""
    axes, flips = canonical_axes(volume)
    # numpy axes are (z, y, x): index axis a is numpy axis 2 - a
    out = np.transpose(array, [2 - axes[2], 2 - axes[1], 2 - axes[0]])
    for j, f in enumerate(flips):
        if f:
            out = np.flip(out, axis=2 - j)
    return np.ascontiguousarray(out), canonical_geometry(volume)
