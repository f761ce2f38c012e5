"""3-D augmentation moves points exactly with the volume it warps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unilandmark.training.augment import AugmentConfig
from unilandmark.training.augment3d import augment_volume_batch, random_affines_3d

SIZE = (28, 24, 20)  # x, y, z


def _blobs(points: np.ndarray, sigma: float = 1.2) -> torch.Tensor:
    """(B, K, Z, Y, X): one Gaussian blob per landmark at ``points`` (B, K, 3)."""
    x, y, z = SIZE
    zz, yy, xx = np.meshgrid(np.arange(z), np.arange(y), np.arange(x), indexing="ij")
    out = np.exp(-((xx - points[..., 0, None, None, None]) ** 2
                   + (yy - points[..., 1, None, None, None]) ** 2
                   + (zz - points[..., 2, None, None, None]) ** 2) / (2 * sigma ** 2))
    return torch.from_numpy(out).float()


def _centroids(maps: torch.Tensor) -> np.ndarray:
    """(B, K, 3) intensity centroids (x, y, z) of (B, K, Z, Y, X) maps."""
    m = maps.double().numpy()
    z, y, x = m.shape[2:]
    zz, yy, xx = np.meshgrid(np.arange(z), np.arange(y), np.arange(x), indexing="ij")
    total = m.sum((-3, -2, -1))
    return np.stack([(m * xx).sum((-3, -2, -1)) / total, (m * yy).sum((-3, -2, -1)) / total,
                     (m * zz).sum((-3, -2, -1)) / total], -1)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.0, 1.0, 2.5)])
def test_points_follow_the_warped_volume(spacing):
    rng = np.random.default_rng(0)
    points = rng.uniform(8, 12, size=(6, 3, 3))  # well inside: blobs stay whole
    cfg = AugmentConfig(rotate_deg=20, scale=0.1, translate=0.05, gamma=(1.0, 1.0),
                        contrast=0.0, brightness=0.0, noise=0.0, flip=0.5)
    images = _blobs(points)  # each landmark's blob in its own channel
    batch = {"image": images, "points": torch.from_numpy(points).float(),
             "visible": torch.ones(6, 3, dtype=torch.bool)}
    out = augment_volume_batch(batch, cfg, torch.Generator().manual_seed(3), spacing)
    moved = out["points"].double().numpy()
    assert out["visible"].all()
    assert not np.allclose(moved, points, atol=0.5)  # something happened
    # channel k holds landmark k's blob: its centroid is where the point moved
    assert np.abs(_centroids(out["image"]) - moved).max() < 0.05


def test_a_mirror_swaps_the_flip_pairs():
    cfg = AugmentConfig(rotate_deg=0, scale=0.0, translate=0.0, flip=1.0)
    points = torch.tensor([[[5.0, 6.0, 7.0], [20.0, 6.0, 7.0], [13.0, 9.0, 4.0]]])
    batch = {"image": torch.rand(1, 1, 20, 24, 28), "points": points,
             "visible": torch.tensor([[True, False, True]])}
    out = augment_volume_batch(batch, cfg, torch.Generator().manual_seed(0),
                               flip_permutation=torch.tensor([1, 0, 2]))
    x = SIZE[0] - 1
    assert out["visible"].tolist() == [[False, True, True]]
    assert out["points"][0, 1].tolist() == [x - 5.0, 6.0, 7.0]
    assert out["points"][0, 2].tolist() == [x - 13.0, 9.0, 4.0]


def test_rotation_is_rigid_in_millimetres_for_anisotropic_voxels():
    spacing = np.array([0.8, 0.8, 3.0])
    cfg = AugmentConfig(rotate_deg=25, scale=0.0, translate=0.0)
    m = random_affines_3d(4, SIZE, cfg, torch.Generator().manual_seed(1), spacing).numpy()
    linear_mm = np.diag(spacing) @ m[:, :3, :3] @ np.diag(1 / spacing)
    for r in linear_mm:
        assert np.allclose(r @ r.T, np.eye(3), atol=1e-9)
        assert np.isclose(np.linalg.det(r), 1.0)


def test_points_leaving_the_input_are_no_longer_visible():
    cfg = AugmentConfig(rotate_deg=0, scale=0.0, translate=0.3, gamma=(1.0, 1.0),
                        contrast=0.0, brightness=0.0, noise=0.0)
    points = torch.tensor([[[0.5, 12.0, 10.0], [14.0, 12.0, 10.0]]]).repeat(16, 1, 1)
    batch = {"image": torch.zeros(16, 1, 20, 24, 28), "points": points,
             "visible": torch.ones(16, 2, dtype=torch.bool)}
    out = augment_volume_batch(batch, cfg, torch.Generator().manual_seed(0))
    assert out["visible"][:, 1].all()  # the centre one never leaves
    assert not out["visible"][:, 0].all()  # the edge one leaves in some draws
    assert torch.isnan(out["points"][~out["visible"]]).all()


def test_the_same_generator_state_draws_the_same_augmentation():
    cfg = AugmentConfig(rotate_deg=15, scale=0.1, translate=0.1)
    batch = {"image": torch.rand(2, 1, 20, 24, 28), "points": torch.full((2, 1, 3), 10.0),
             "visible": torch.ones(2, 1, dtype=torch.bool)}
    a = augment_volume_batch(batch, cfg, torch.Generator().manual_seed(5))
    b = augment_volume_batch(batch, cfg, torch.Generator().manual_seed(5))
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["points"], b["points"])
