"""Coarse to fine in volumes: each landmark's estimate refined on a patch around it.

One function for training's validation and for prediction (:func:`refine_volume_points`).
A patch is a cube of ``patch_size`` voxels a side centred (to the nearest voxel) on the
estimate, at ``spacing`` mm per patch voxel or, with ``spacing`` None, at the volume's own
voxels (full resolution: :func:`.volume_inputs.patch_geometry` then copies voxels, no
interpolation). Only the patch's box of the volume is touched, so a CT of any size costs
``K`` small patches. Each landmark is decoded from its own channel of its own patch and
mapped back exactly (patch voxels -> the volume's voxels).
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.types import Geometry
from ..core.world import VolumeGeometry
from .volume_inputs import patch_geometry, resample_into

__all__ = ["cut_patches", "refine_volume_points"]


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


@torch.no_grad()
def refine_volume_points(model: torch.nn.Module, codec, domain: str, array: np.ndarray,
                         volume: VolumeGeometry, points: np.ndarray, patch_size: int,
                         spacing: float | None, device="cpu", chunk: int = 16,
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Refine ``points`` ``(K, 3)`` voxel indices (x, y, z) of ``array`` ``(Z, Y, X)``
    (its geometry ``volume``): landmark k's patch is centred on its estimate and decoded
    from output channel k. Returns ``(points (K, 3) float64 voxel indices, confidence
    (K,) float32)``; a landmark whose estimate is NaN stays NaN (confidence 0). ``chunk``
    patches go through the model at once (bounded memory)."""
    points = np.asarray(points, dtype=np.float64)
    k = len(points)
    out = np.full((k, 3), np.nan)
    confidence = np.zeros(k, dtype=np.float32)
    todo = np.flatnonzero(np.isfinite(points).all(-1))
    model.eval()
    for start in range(0, len(todo), chunk):
        rows = todo[start:start + chunk]
        patches, geometries = cut_patches(array, volume, points[rows], patch_size, spacing)
        outputs = model(torch.from_numpy(patches).to(device), domain)
        pred = codec.decode(outputs)
        found = pred.points.double().cpu().numpy()  # (n, K, 3) patch voxels
        conf = pred.confidence.float().cpu().numpy()
        for j, (row, g) in enumerate(zip(rows, geometries, strict=True)):
            out[row] = g.to_original(found[j, row][None])[0]
            confidence[row] = conf[j, row]
    return out, confidence
