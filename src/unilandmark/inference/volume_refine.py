"""Coarse to fine in volumes: each landmark's estimate refined on a patch around it, with a
PyTorch model.

One function for training's validation and for prediction (:func:`refine_volume_points`).
A patch is a cube of ``patch_size`` voxels a side centred (to the nearest voxel) on the
estimate, at ``spacing`` mm per patch voxel or, with ``spacing`` None, at the volume's own
voxels (full resolution: :func:`.volume_inputs.patch_geometry` then copies voxels, no
interpolation). Only the patch's box of the volume is touched, so a CT of any size costs
``K`` small patches. Each landmark is decoded from its own channel of its own patch and
mapped back exactly (patch voxels -> the volume's voxels). The loop and the cubes are
numpy (:mod:`.volume_patches`, shared with the ONNX driver); this module adds the model.
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.world import VolumeGeometry
from .volume_patches import PatchNetwork, cut_patches, refine_points

__all__ = ["cut_patches", "refine_volume_points", "torch_patch_network"]


def torch_patch_network(model: torch.nn.Module, codec, domain: str, device="cpu"
                        ) -> PatchNetwork:
    """``model`` (its outputs decoded by ``codec``, for ``domain``) as a
    :data:`~.volume_patches.PatchNetwork`: cubes ``(N, 1, P, P, P)`` -> (points
    ``(N, K, 3)`` patch voxels float32, confidence ``(N, K)`` float32)."""

    @torch.no_grad()
    def run(patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        model.eval()
        pred = codec.decode(model(torch.from_numpy(patches).to(device), domain))
        return pred.points.cpu().numpy(), pred.confidence.float().cpu().numpy()

    return run


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
    return refine_points(torch_patch_network(model, codec, domain, device), array, volume,
                         points, patch_size, spacing, chunk)
