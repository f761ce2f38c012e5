"""Cubes around landmark estimates and the refinement loop over them, in numpy.

The half of coarse-to-fine that needs no network: :func:`cut_patches` cuts one cube per
estimate (:func:`.volume_inputs.patch_geometry`, :func:`.volume_inputs.resample_into`),
:func:`refine_points` sends them to a network in chunks and maps each landmark's answer
back to the volume's voxels. The network is a callable, so PyTorch
(:func:`.volume_refine.refine_volume_points`) and onnxruntime (the torch-free
``export.volume_runner``) run the same loop. Points are voxel indices ``(x, y, z)`` of the
volume ``(Z, Y, X)``, the centre of the first voxel at 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..core.types import Geometry
from ..core.world import VolumeGeometry
from .volume_inputs import patch_geometry, resample_into

__all__ = ["PatchNetwork", "cut_patches", "refine_points"]

#: a network over cubes: ``(N, 1, P, P, P)`` float32 -> (points ``(N, K, 3)`` in patch
#: voxels (x, y, z), confidence ``(N, K)``), every landmark's channel decoded
PatchNetwork = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def cut_patches(array: np.ndarray, volume: VolumeGeometry, centres: np.ndarray,
                patch_size: int, spacing: float | None) -> tuple[np.ndarray, list[Geometry]]:
    """Patches ``(N, 1, P, P, P)`` float32 of ``array`` ``(Z, Y, X)`` (normalised
    intensities, its geometry ``volume``) around ``centres`` ``(N, 3)`` voxel indices
    (x, y, z), with their Geometries (patch voxels -> the volume's voxels)."""
    geometries, patches = [], np.zeros((len(centres), 1, patch_size, patch_size, patch_size),
                                       dtype=np.float32)
    for i, centre in enumerate(np.asarray(centres, dtype=np.float64)):
        g = patch_geometry(volume, centre, patch_size, spacing)
        patches[i, 0] = resample_into(array, g)
        geometries.append(g)
    return patches, geometries


def refine_points(network: PatchNetwork, array: np.ndarray, volume: VolumeGeometry,
                  points: np.ndarray, patch_size: int, spacing: float | None,
                  chunk: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Refine ``points`` ``(K, 3)`` voxel indices (x, y, z) of ``array`` ``(Z, Y, X)``
    (its geometry ``volume``): landmark k's cube is centred on its estimate and decoded
    from output channel k of ``network``. Returns ``(points (K, 3) float64 voxel indices,
    confidence (K,) float32)``; a landmark whose estimate is NaN stays NaN (confidence 0).
    ``chunk`` cubes go through the network at once (bounded memory)."""
    points = np.asarray(points, dtype=np.float64)
    k = len(points)
    out = np.full((k, 3), np.nan)
    confidence = np.zeros(k, dtype=np.float32)
    todo = np.flatnonzero(np.isfinite(points).all(-1))
    for start in range(0, len(todo), chunk):
        rows = todo[start:start + chunk]
        patches, geometries = cut_patches(array, volume, points[rows], patch_size, spacing)
        found, conf = network(patches)  # (n, K, 3) patch voxels, (n, K)
        found = np.asarray(found, dtype=np.float64)
        for j, (row, g) in enumerate(zip(rows, geometries, strict=True)):
            out[row] = g.to_original(found[j, row][None])[0]
            confidence[row] = conf[j, row]
    return out, confidence
