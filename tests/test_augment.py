import numpy as np
import pytest
import torch

from unilandmark.training.augment import AugmentConfig, augment_batch
from unilandmark.training.sampling import epoch_schedule

GEOMETRIC = AugmentConfig(rotate_deg=30, scale=0.2, translate=0.1, gamma=(1, 1), contrast=0,
                          brightness=0, noise=0)


@pytest.mark.parametrize("backend", ["kornia", "torch"])
def test_augmented_dot_is_within_half_a_pixel_of_the_transformed_point(backend):
    h, w = 72, 88
    rng = np.random.default_rng(1)
    pts = torch.tensor(rng.uniform(25, 45, size=(16, 1, 2)), dtype=torch.float32)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    img = torch.exp(-((xs - pts[:, 0, 0, None, None]) ** 2 +
                      (ys - pts[:, 0, 1, None, None]) ** 2) / (2 * 1.5**2))[:, None].float()
    gen = torch.Generator().manual_seed(0)
    cfg = GEOMETRIC.model_copy(update={"backend": backend})
    out = augment_batch({"image": img, "points": pts, "visible": torch.ones(16, 1).bool()},
                        cfg, gen)
    im = out["image"][:, 0]
    mass = im.sum((1, 2))[:, None]
    found = torch.stack([(im * xs).sum((1, 2)), (im * ys).sum((1, 2))], -1) / mass
    moved = (out["points"][:, 0] - pts[:, 0]).norm(dim=-1)
    assert moved.max() > 3  # the augmentation really moved the dots
    assert (found - out["points"][:, 0]).norm(dim=-1).max() < 0.5


def test_points_pushed_outside_become_invisible():
    cfg = AugmentConfig(rotate_deg=0, scale=0, translate=0.5, noise=0)
    pts = torch.tensor([[[1.0, 1.0], [15.0, 15.0]]]).repeat(32, 1, 1)
    batch = {"image": torch.rand(32, 1, 32, 32), "points": pts,
             "visible": torch.ones(32, 2).bool()}
    out = augment_batch(batch, cfg, torch.Generator().manual_seed(0))
    gone = ~out["visible"]
    assert gone.any() and torch.isnan(out["points"][gone]).all()
    assert out["image"].min() >= 0 and out["image"].max() <= 1


def test_same_generator_seed_same_augmentation():
    batch = {"image": torch.rand(4, 1, 16, 16), "points": torch.rand(4, 3, 2) * 10 + 3,
             "visible": torch.ones(4, 3).bool()}
    a = augment_batch(batch, AugmentConfig(), torch.Generator().manual_seed(7))
    torch.manual_seed(123)  # the global RNG must not matter
    b = augment_batch(batch, AugmentConfig(), torch.Generator().manual_seed(7))
    assert torch.equal(a["image"], b["image"])
    assert torch.equal(a["points"].nan_to_num(), b["points"].nan_to_num())


def test_disabled_augmentation_is_identity():
    batch = {"image": torch.rand(2, 1, 8, 8), "points": torch.rand(2, 3, 2),
             "visible": torch.ones(2, 3).bool()}
    out = augment_batch(batch, AugmentConfig(enabled=False), torch.Generator())
    assert out is batch


def test_schedule_one_domain_per_batch_covers_everything_once():
    sizes = {"head": 10, "hand": 7, "chest": 4}
    sched = epoch_schedule(sizes, 3, seed=0, epoch=0)
    seen = {d: [] for d in sizes}
    for domain, idx in sched:
        seen[domain] += idx.tolist()
    for domain, n in sizes.items():
        dropped = n % 3 if n % 3 < 2 else 0  # a last batch of one would break BatchNorm
        assert len(seen[domain]) == len(set(seen[domain])) == n - dropped
        assert set(seen[domain]) <= set(range(n))
    assert [d for d, _ in sched[:3]] == ["chest", "hand", "head"]  # round-robin
    assert [i.tolist() for _, i in epoch_schedule(sizes, 3, 0, 0)] == [i.tolist() for _, i in sched]
    assert [i.tolist() for _, i in epoch_schedule(sizes, 3, 0, 1)] != [i.tolist() for _, i in sched]
    assert all(len(idx) >= 2 for _, idx in sched)


def test_schedule_ranks_share_domains_and_split_indices():
    sizes = {"head": 20, "hand": 9}
    r0 = epoch_schedule(sizes, 2, 5, 3, "proportional", world_size=2, rank=0)
    r1 = epoch_schedule(sizes, 2, 5, 3, "proportional", world_size=2, rank=1)
    assert [d for d, _ in r0] == [d for d, _ in r1]
    for (_, a), (_, b) in zip(r0, r1, strict=True):
        assert not set(a.tolist()) & set(b.tolist())
    with pytest.raises(ValueError, match="mixing policy"):
        epoch_schedule(sizes, 2, 0, 0, "random")
