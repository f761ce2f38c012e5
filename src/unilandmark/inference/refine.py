"""Patch geometry for refinement stages, shared by training and prediction.

A patch stage sees each image resized by ``1 / s`` per axis (``s`` original pixels per
patch pixel, from the stage's ``scale`` or ``scale_mm`` and the image's own spacing),
with the image's own :class:`Geometry` back to original pixels: per image, per axis, so
images of different sizes and anisotropic resizes are exact.

A patch of ``size`` x ``size`` pixels around ``centre`` (in resized-image pixels) samples
the resized image at ``centre + L @ ((u, v) - (size - 1) / 2)`` for patch pixel ``(u, v)``,
with ``L`` a 2 x 2 linear map (identity at prediction; a random rotation and zoom when
training). Bilinear sampling, zeros outside the image.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..core.types import Geometry

#: the five crop offsets (in units of ``test_offsets``) averaged at prediction
TEST_OFFSETS = ((0.0, 0.0), (1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0))


def crop(image: torch.Tensor, centres: torch.Tensor, linear: torch.Tensor,
         size: int) -> torch.Tensor:
    """Patches (N, C, size, size) of one image (C, H, W) around ``centres`` (N, 2).

    ``linear`` (N, 2, 2) or (2, 2): patch-pixel offsets to image-pixel offsets. Pixel
    centres follow the project's convention (``align_corners=False``).
    """
    c, h, w = image.shape
    n = centres.shape[0]
    dtype, device = image.dtype, image.device
    lin = linear.to(device=device, dtype=dtype).expand(n, 2, 2)
    offsets = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    vv, uu = torch.meshgrid(offsets, offsets, indexing="ij")
    grid_patch = torch.stack([uu, vv], -1).reshape(-1, 2)  # (S*S, 2) as (u, v)
    pts = centres.to(device=device, dtype=dtype)[:, None] + grid_patch[None] @ lin.transpose(1, 2)
    norm = torch.stack([(2 * pts[..., 0] + 1) / w - 1, (2 * pts[..., 1] + 1) / h - 1], -1)
    grid = norm.reshape(1, n * size, size, 2)
    out = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)  # (1, C, N*S, S)
    return out.reshape(c, n, size, size).transpose(0, 1)


def to_patch(points: torch.Tensor, centres: torch.Tensor, linear: torch.Tensor,
             size: int) -> torch.Tensor:
    """Image pixels (N, K, 2) -> patch pixels of the patches at ``centres`` (N, 2)."""
    inv = torch.linalg.inv(linear.to(points.dtype).expand(points.shape[0], 2, 2))
    return (points - centres[:, None]) @ inv.transpose(1, 2) + (size - 1) / 2


@torch.no_grad()
def refine_points(model: torch.nn.Module, codec, domain: str, images: list[torch.Tensor],
                  geometries: list[Geometry], points: np.ndarray, size: int,
                  apply: np.ndarray | None = None, test_offsets: float = 0.0,
                  device: str | torch.device = "cpu", batch: int = 256,
                  return_spread: bool = False,
                  ) -> tuple[np.ndarray, ...]:
    """Refine ``points`` (N, K, 2) original pixels with a patch model.

    images: N resized images (1, h, w) and their ``geometries`` (resized <-> original).
    ``apply`` (K,) bool: landmarks this stage refines (others pass through unchanged,
    confidence NaN). Each landmark is read from its own output channel of the patch
    centred on it; with ``test_offsets`` > 0, five crops shifted by that many patch
    pixels are decoded and their positions averaged.
    Returns (points (N, K, 2) original pixels, confidence (N, K)); with ``return_spread``
    also spread (N, K): the RMS distance of the crops' decoded points from their mean, in
    original pixels (the mean of the two axes' scales), NaN where one crop was decoded
    (``test_offsets`` 0) or the landmark was not refined. A large spread means the crops
    disagree: the patch model does not see one clear landmark there.
    """
    n, k, _ = points.shape
    out = np.array(points, dtype=np.float64, copy=True)
    conf = np.full((n, k), np.nan, dtype=np.float32)
    spread = np.full((n, k), np.nan, dtype=np.float64)
    mask = np.ones(k, bool) if apply is None else np.asarray(apply, bool)
    offsets = TEST_OFFSETS if test_offsets > 0 else TEST_OFFSETS[:1]
    jobs = []  # (image, landmark, offset, centre in resized px)
    for i in range(n):
        centres = geometries[i].to_network(points[i])
        for j in np.flatnonzero(mask & np.isfinite(points[i]).all(1)):
            for o in offsets:
                jobs.append((i, j, centres[j] + test_offsets * np.asarray(o)))
    if not jobs:
        return (out, conf, spread) if return_spread else (out, conf)
    was_training = model.training
    model.eval()
    found = np.zeros((len(jobs), 2))
    peak = np.zeros(len(jobs))
    eye = torch.eye(2)
    for start in range(0, len(jobs), batch):
        chunk = jobs[start:start + batch]
        patches = []
        for i in sorted({job[0] for job in chunk}):
            rows = [r for r, job in enumerate(chunk) if job[0] == i]
            centres = torch.tensor(np.stack([chunk[r][2] for r in rows]), dtype=torch.float32)
            patches.append((rows, crop(images[i].float(), centres, eye, size)))
        order = [r for rows, _ in patches for r in rows]
        x = torch.cat([p for _, p in patches]).to(device)
        heat = model(x, domain)["heatmap"]
        landmarks = torch.tensor([chunk[r][1] for r in order], device=heat.device)
        chosen = heat[torch.arange(len(order), device=heat.device), landmarks][:, None]
        pred = codec.decode({"heatmap": chosen})
        local = pred.points[:, 0].double().cpu().numpy()
        for row, r in enumerate(order):
            found[start + r] = chunk[r][2] + (local[row] - (size - 1) / 2)
            peak[start + r] = float(pred.confidence[row, 0])
    model.train(was_training)
    sums: dict[tuple[int, int], list] = {}
    for (i, j, _), f, p in zip(jobs, found, peak, strict=True):
        sums.setdefault((i, j), []).append((f, p))
    for (i, j), items in sums.items():
        decoded = np.stack([f for f, _ in items])
        mean_resized = decoded.mean(axis=0)
        # a landmark lies in the image: a patch reaching past the border (zero padding)
        # must not move it out (stage 1 cannot place one outside either)
        h, w = images[i].shape[-2:]
        clamped = np.clip(mean_resized, 0, [w - 1, h - 1])
        out[i, j] = geometries[i].to_original(clamped)
        conf[i, j] = float(np.mean([p for _, p in items]))
        if len(items) > 1:
            rms = np.sqrt(np.mean(np.sum((decoded - mean_resized) ** 2, axis=1)))
            spread[i, j] = rms * _pixel_scale(geometries[i])
    return (out, conf, spread) if return_spread else (out, conf)


def _pixel_scale(geometry: Geometry) -> float:
    """Original pixels per resized pixel (mean of the two axes)."""
    return float(np.mean(np.abs(np.diag(geometry.matrix)[:2])))
