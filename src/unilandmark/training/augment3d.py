"""Coordinate-exact 3-D augmentation of volumes in network space.

A batch ``{"image" (B, C, Z, Y, X), "points" (B, K, 3) network voxels (x, y, z),
"visible" (B, K)}`` is mirrored left-right (x, with the domain's flip pairs swapped),
warped by a random rotation, isotropic scale and translation about the input's centre,
and varied in intensity, with the same :class:`~unilandmark.training.augment.AugmentConfig`
as 2-D:

- ``rotate_deg``: three angles, one about each world axis, each uniform in +- degrees
  (composed ``Rz @ Ry @ Rx``), in millimetres: with an anisotropic ``spacing`` (mm per
  network voxel) the voxel matrix is ``D^-1 R D``, ``D = diag(spacing)``, so a rotation
  stays rigid in the world;
- ``scale``: one factor per volume, uniform in ``1 +- scale``;
- ``translate``: per axis, uniform in +- that fraction of the input's extent;
- ``flip``: the probability of an x mirror (x is the L-R axis: volumes reach the network
  in LPS, ``inference.volume_inputs.canonical``);
- intensity: ``gamma``, ``contrast``, ``brightness``, ``noise`` as in 2-D (``blur`` is
  2-D only and is not applied to volumes).

Points move by exactly the matrix the volume is warped with (``q = M p`` for input voxel
``p``; the warp samples input ``M^-1 q`` for output voxel ``q``, ``grid_sample`` with
``align_corners=False`` and zero padding, the background after normalisation). A point
that leaves the input (beyond the outer faces ``-0.5 .. n - 0.5``) is no longer visible.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .augment import AugmentConfig, augment_intensity, mirror_batch

__all__ = ["augment_volume_batch", "random_affines_3d", "warp_volumes"]


def _rotation(angles: torch.Tensor) -> torch.Tensor:
    """(B, 3) angles in radians about x, y, z -> (B, 3, 3) ``Rz @ Ry @ Rx``."""
    b = angles.shape[0]
    c, s = torch.cos(angles), torch.sin(angles)
    one, zero = torch.ones(b, dtype=angles.dtype), torch.zeros(b, dtype=angles.dtype)
    rx = torch.stack([one, zero, zero, zero, c[:, 0], -s[:, 0], zero, s[:, 0], c[:, 0]],
                     -1).view(b, 3, 3)
    ry = torch.stack([c[:, 1], zero, s[:, 1], zero, one, zero, -s[:, 1], zero, c[:, 1]],
                     -1).view(b, 3, 3)
    rz = torch.stack([c[:, 2], -s[:, 2], zero, s[:, 2], c[:, 2], zero, zero, zero, one],
                     -1).view(b, 3, 3)
    return rz @ ry @ rx


def random_affines_3d(batch: int, size: tuple[int, int, int], cfg: AugmentConfig,
                      generator: torch.Generator, spacing=(1.0, 1.0, 1.0)) -> torch.Tensor:
    """(B, 4, 4) float64 matrices mapping input voxels (x, y, z) to augmented voxels of an
    input of ``size`` (x, y, z) at ``spacing`` mm per voxel (module docstring)."""
    u = torch.rand((batch, 7), generator=generator, dtype=torch.float64) * 2 - 1
    angles = u[:, :3] * math.radians(cfg.rotate_deg)
    scale = 1 + u[:, 3] * cfg.scale
    extent = torch.tensor([float(v) for v in size], dtype=torch.float64)
    shift = u[:, 4:7] * cfg.translate * extent
    d = torch.diag(torch.tensor([float(v) for v in spacing], dtype=torch.float64))
    linear = torch.linalg.inv(d) @ _rotation(angles) @ d * scale.view(batch, 1, 1)
    centre = (extent - 1) / 2
    m = torch.zeros((batch, 4, 4), dtype=torch.float64)
    m[:, :3, :3] = linear
    m[:, :3, 3] = centre - (linear @ centre) + shift
    m[:, 3, 3] = 1
    return m


def warp_volumes(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Resample (B, C, Z, Y, X) so that input voxel p lands at ``matrices @ p`` (zero
    padding)."""
    b, _, z, y, x = images.shape
    inv = torch.linalg.inv(matrices)  # output voxel -> input voxel
    # normalised (align_corners=False): g = (2 p + 1) / n - 1
    to_norm = torch.tensor([[2 / x, 0, 0, 1 / x - 1], [0, 2 / y, 0, 1 / y - 1],
                            [0, 0, 2 / z, 1 / z - 1], [0, 0, 0, 1]], dtype=torch.float64)
    theta = (to_norm @ inv @ torch.linalg.inv(to_norm))[:, :3]
    grid = F.affine_grid(theta.to(images.dtype).to(images.device), list(images.shape),
                         align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)


def augment_volume_batch(batch: dict[str, torch.Tensor], cfg: AugmentConfig,
                         generator: torch.Generator, spacing=(1.0, 1.0, 1.0),
                         flip_permutation: torch.Tensor | None = None,
                         ) -> dict[str, torch.Tensor]:
    """Augment ``{"image" (B, C, Z, Y, X), "points" (B, K, 3), "visible" (B, K)}``; the
    random draws come from ``generator`` (CPU), so a resumed run draws the same."""
    if not cfg.enabled:
        return batch
    images, points, visible = batch["image"], batch["points"], batch["visible"]
    if cfg.flip > 0:
        images, points, visible = mirror_batch(images, points, visible, cfg.flip, generator,
                                               flip_permutation)
    b, _, z, y, x = images.shape
    if cfg.rotate_deg > 0 or cfg.scale > 0 or cfg.translate > 0:
        mats = random_affines_3d(b, (x, y, z), cfg, generator, spacing)
        images = warp_volumes(images, mats)
        m = mats.to(points.device).to(points.dtype)
        points = points @ m[:, :3, :3].transpose(1, 2) + m[:, None, :3, 3]
    size = torch.tensor([x, y, z], dtype=points.dtype, device=points.device)
    inside = ((points >= -0.5) & (points <= size - 0.5)).all(-1)
    visible = visible & inside
    points = torch.where(visible[..., None], points, torch.full_like(points, float("nan")))
    return {"image": augment_intensity(images, cfg, generator), "points": points,
            "visible": visible}
