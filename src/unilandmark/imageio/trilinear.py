"""Trilinear sampling of a volume on a separable grid, in numpy, as torch computes it.

``torch.nn.functional.grid_sample(mode="bilinear", padding_mode="border",
align_corners=False)`` on a 5-D input, for a grid whose x coordinates depend only on the
output's x index (and y on y, z on z): the grid of a diagonal scale plus a shift, which is
every grid :func:`..inference.volume_inputs.resample_into` samples. This module follows
the formula of torch's CPU kernel step by step in float32 (the un-normalisation
``((g + 1) n - 1) / 2``, the border clip, the eight corner weights as products
``(wx * wy) * wz`` and their sum in torch's corner order), so its result is torch's to the
last bit on the CPUs measured (``tests/test_onnx_volume.py`` pins it to 1e-6). Both
prediction backends (``VolumeDetector`` and the torch-free ONNX driver) and training
resample volumes through it.

Shapes: the volume ``(Z, Y, X)``, x fastest; grid coordinates per axis in (x, y, z) order,
normalised to [-1, 1] over the volume's outer faces (``align_corners=False``); the output
``(Z', Y', X')`` float32.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import InputError


def _axis(grid: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One axis of ``n`` voxels sampled at normalised ``grid`` (float32): the lower and
    upper voxel index (the upper clamped into the volume: its weight is 0 there) and their
    weights, computed in float32 as torch does."""
    one, size = np.float32(1), np.float32(n)
    index = ((grid.astype(np.float32) + one) * size - one) / np.float32(2)
    index = np.minimum(np.float32(n - 1), np.maximum(index, np.float32(0)))  # border
    low = np.floor(index)
    upper_weight = index - low
    lower_weight = (low + one) - index
    low_index = low.astype(np.int64)
    return low_index, np.minimum(low_index + 1, n - 1), lower_weight, upper_weight


def sample_trilinear(volume: np.ndarray, grid_x: np.ndarray, grid_y: np.ndarray,
                     grid_z: np.ndarray) -> np.ndarray:
    """``volume`` ``(Z, Y, X)`` (finite values) sampled at every combination of the
    normalised coordinates ``grid_x`` ``(X',)``, ``grid_y`` ``(Y',)``, ``grid_z``
    ``(Z',)``: ``(Z', Y', X')`` float32, ``grid_sample``'s trilinear value with border
    padding and ``align_corners=False`` (a coordinate beyond the outer faces takes the
    border voxel's value)."""
    vol = np.asarray(volume, dtype=np.float32)
    if vol.ndim != 3 or 0 in vol.shape:
        raise InputError(f"a (Z, Y, X) volume with voxels expected, got shape {vol.shape}")
    x0, x1, wx0, wx1 = _axis(np.asarray(grid_x), vol.shape[2])
    y0, y1, wy0, wy1 = _axis(np.asarray(grid_y), vol.shape[1])
    z0, z1, wz0, wz1 = _axis(np.asarray(grid_z), vol.shape[0])
    out = np.zeros((len(z0), len(y0), len(x0)), dtype=np.float32)
    term = np.empty_like(out)
    # torch's corner order: z outermost, then y, then x (tnw, tne, tsw, tse, bnw, ...); each
    # weight is (wx * wy) * wz in float32; a corner past the far face has weight 0 and adds
    # exactly nothing
    for zi, wz in ((z0, wz0), (z1, wz1)):
        plane = vol[zi]
        for yi, wy in ((y0, wy0), (y1, wy1)):
            rows = plane[:, yi]
            for xi, wx in ((x0, wx0), (x1, wx1)):
                np.multiply(wx[None, None, :] * wy[None, :, None], wz[:, None, None],
                            out=term)
                term *= rows[:, :, xi]
                out += term
    return out
