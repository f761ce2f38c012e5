"""Batched, coordinate-exact augmentation on the training device.

Geometric: a random similarity per sample (rotation about the image centre, isotropic
scale, translation) applied to the images and with the same matrix to the points, so a
pixel at p moves exactly to A p. Two interchangeable backends: ``kornia`` (the default:
``RandomAffine`` in a keypoint-aware ``AugmentationSequential``) and ``torch`` (the same
transform written with ``affine_grid``/``grid_sample``). Both were measured exact to
0.03 px on rendered dots (``benchmarks/augment_exactness.py``); kornia was faster.
Mirror: with probability ``flip`` an image is mirrored left-right, its points with it, and
the landmarks of each flip pair (per domain, e.g. left/right lung apex) swap names.
Intensity: gamma, contrast, brightness, Gaussian blur and Gaussian noise (other sites'
radiographs differ in exactly these). Points pushed outside the image become not visible.
All randomness comes from the ``generator`` argument, so a resumed run replays the same
augmentations; the global RNG (CPU, and CUDA where touched) is left as it was found
(``seeded_global_rng``).
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from pydantic import BaseModel, field_validator

from ..core.errors import InputError


class AugmentConfig(BaseModel):
    """Ranges of the random augmentation (0 disables a term).

    rotate_deg: +- degrees; scale: +- fraction; translate: +- fraction of the size;
    gamma: (low, high); contrast: +- fraction; brightness: +- intensity; noise: maximum
    Gaussian noise SD; blur: maximum Gaussian blur sigma in pixels; flip: probability of
    a left-right mirror (with the domain's flip pairs swapped).
    """

    rotate_deg: float = 10.0
    scale: float = 0.1
    translate: float = 0.05
    gamma: tuple[float, float] = (0.75, 1.35)
    contrast: float = 0.2
    brightness: float = 0.05
    noise: float = 0.02
    blur: float = 0.0
    flip: float = 0.0
    enabled: bool = True
    backend: str = "kornia"

    @field_validator("backend")
    @classmethod
    def _backend(cls, v):
        if v not in ("kornia", "torch"):
            raise InputError(f"unknown augmentation backend {v!r}; expected kornia or torch")
        return v


def random_affines(batch: int, size: tuple[int, int], cfg: AugmentConfig,
                   generator: torch.Generator) -> torch.Tensor:
    """(B, 3, 3) matrices mapping input pixels to augmented pixels."""
    w, h = size
    u = torch.rand((batch, 4), generator=generator, dtype=torch.float64) * 2 - 1
    angle = u[:, 0] * math.radians(cfg.rotate_deg)
    scale = 1 + u[:, 1] * cfg.scale
    tx, ty = u[:, 2] * cfg.translate * w, u[:, 3] * cfg.translate * h
    cx, cy = (w - 1) / 2, (h - 1) / 2
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    m = torch.zeros((batch, 3, 3), dtype=torch.float64)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, -sin, sin, cos
    m[:, 0, 2] = cx - cos * cx + sin * cy + tx
    m[:, 1, 2] = cy - sin * cx - cos * cy + ty
    m[:, 2, 2] = 1
    return m


def warp_images(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Resample (B, C, H, W) so that input pixel p lands at ``matrices @ p`` (zero pad)."""
    b, _, h, w = images.shape
    inv = torch.linalg.inv(matrices)  # output pixel -> input pixel
    # normalised (align_corners=False): g = (2 p + 1) / n - 1  <=>  p = ((g + 1) n - 1) / 2
    to_norm = torch.tensor([[2 / w, 0, 1 / w - 1], [0, 2 / h, 1 / h - 1], [0, 0, 1]],
                           dtype=torch.float64)
    from_norm = torch.linalg.inv(to_norm)
    theta = (to_norm @ inv @ from_norm)[:, :2].to(images.dtype).to(images.device)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)


def augment_batch(batch: dict[str, torch.Tensor], cfg: AugmentConfig,
                  generator: torch.Generator, flip_permutation: torch.Tensor | None = None,
                  ) -> dict[str, torch.Tensor]:
    """Augment ``{"image" (B, C, H, W), "points" (B, K, 2), "visible" (B, K)}``.

    ``flip_permutation`` (K,) long: the landmark index each landmark takes under a mirror
    (``arange(K)`` with flip pairs swapped); None means no pairs.
    """
    if not cfg.enabled:
        return batch
    images, points, visible = batch["image"], batch["points"], batch["visible"]
    if cfg.flip > 0:
        images, points, visible = mirror_batch(images, points, visible, cfg.flip, generator,
                                               flip_permutation)
    b, _, h, w = images.shape
    if cfg.backend == "kornia":
        images, points = _kornia_affine(images, points, cfg, generator)
    else:
        mats = random_affines(b, (w, h), cfg, generator)
        images = warp_images(images, mats)
        m = mats.to(points.device).to(points.dtype)
        points = points @ m[:, :2, :2].transpose(1, 2) + m[:, None, :2, 2]
    inside = (points[..., 0] >= -0.5) & (points[..., 0] <= w - 0.5) & \
             (points[..., 1] >= -0.5) & (points[..., 1] <= h - 0.5)
    visible = visible & inside
    points = torch.where(visible[..., None], points, torch.full_like(points, float("nan")))
    return {"image": augment_intensity(images, cfg, generator), "points": points,
            "visible": visible}




def mirror_batch(images, points, visible, probability: float, generator,
                 permutation: torch.Tensor | None):
    """Mirror each sample left-right with ``probability``: x -> W - 1 - x, flip pairs
    swapped. Returns (images, points, visible)."""
    b, w = images.shape[0], images.shape[-1]
    chosen = (torch.rand(b, generator=generator) < probability).to(images.device)
    if not bool(chosen.any()):
        return images, points, visible
    flipped_pts = points.clone()
    flipped_pts[..., 0] = (w - 1) - flipped_pts[..., 0]
    flipped_vis = visible
    if permutation is not None:
        perm = permutation.to(points.device)
        flipped_pts, flipped_vis = flipped_pts[:, perm], visible[:, perm]
    sel = chosen.view(b, *([1] * (images.dim() - 1)))
    images = torch.where(sel, images.flip(-1), images)
    points = torch.where(chosen.view(b, 1, 1), flipped_pts, points)
    visible = torch.where(chosen.view(b, 1), flipped_vis, visible)
    return images, points, visible


def augment_intensity(images: torch.Tensor, cfg: AugmentConfig,
                      generator: torch.Generator) -> torch.Tensor:
    """Gamma, contrast, brightness, blur and noise on (B, C, H, W) images (or (B, C, Z,
    Y, X) volumes, without blur) in [0, 1]."""
    b = images.shape[0]
    per_sample = (b, *([1] * (images.dim() - 1)))
    r = torch.rand((b, 5), generator=generator).to(images.device)
    lo, hi = cfg.gamma
    gamma = (lo + (hi - lo) * r[:, 0]).view(per_sample)
    images = images.clamp(0, 1) ** gamma
    mean = images.mean(dim=tuple(range(1, images.dim())), keepdim=True)
    contrast = (1 + (2 * r[:, 1] - 1) * cfg.contrast).view(per_sample)
    brightness = ((2 * r[:, 2] - 1) * cfg.brightness).view(per_sample)
    images = (images - mean) * contrast + mean + brightness
    if cfg.blur > 0 and images.dim() == 4:
        images = gaussian_blur(images, cfg.blur * r[:, 4])
    if cfg.noise > 0:
        noise = torch.randn(images.shape, generator=generator).to(images.device)
        images = images + noise * (cfg.noise * r[:, 3]).view(per_sample)
    return images.clamp(0, 1)


def gaussian_blur(images: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) with a per-sample sigma (B,) in pixels
    (0: unchanged); reflect padding."""
    b, c, h, w = images.shape
    radius = max(1, int(math.ceil(3 * float(sigmas.max()))))
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    sig = sigmas.to(images.dtype).clamp(min=1e-3).view(b, 1)
    kernel = torch.exp(-offsets[None] ** 2 / (2 * sig ** 2))
    kernel = kernel / kernel.sum(1, keepdim=True)  # (B, 2r + 1); sigma ~0 -> a delta
    x = images.reshape(1, b * c, h, w)
    kx = kernel.repeat_interleave(c, 0)[:, None, None, :]
    ky = kernel.repeat_interleave(c, 0)[:, None, :, None]
    pad_w, pad_h = min(radius, w - 1), min(radius, h - 1)
    x = F.conv2d(F.pad(x, (pad_w, pad_w, 0, 0), mode="reflect"),
                 kx[..., radius - pad_w: radius + pad_w + 1], groups=b * c)
    x = F.conv2d(F.pad(x, (0, 0, pad_h, pad_h), mode="reflect"),
                 ky[..., radius - pad_h: radius + pad_h + 1, :], groups=b * c)
    return x.reshape(b, c, h, w)


_KORNIA_CACHE: dict = {}


def _kornia_affine(images, points, cfg: AugmentConfig, generator: torch.Generator):
    """kornia's keypoint-aware RandomAffine, its parameters drawn from a seed taken from
    ``generator`` (the global RNG is seeded for the call and restored after it, so
    nothing else is disturbed: ``seeded_global_rng``)."""
    try:
        import kornia.augmentation as K
    except ImportError as err:  # pragma: no cover - kornia is a dependency
        raise ImportError("augment.backend 'kornia' needs kornia (pip install kornia); "
                          "or set train.augment.backend=torch") from err
    key = (cfg.rotate_deg, cfg.scale, cfg.translate)
    if key not in _KORNIA_CACHE:
        _KORNIA_CACHE[key] = K.AugmentationSequential(
            K.RandomAffine(degrees=cfg.rotate_deg, translate=(cfg.translate, cfg.translate),
                           scale=(1 - cfg.scale, 1 + cfg.scale), p=1.0, align_corners=False,
                           padding_mode="zeros"),
            data_keys=["input", "keypoints"])
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with seeded_global_rng(seed, images.device):
        out_images, out_points = _KORNIA_CACHE[key](images, points)
    return out_images, out_points.to(points.dtype)


@contextlib.contextmanager
def seeded_global_rng(seed: int, device: torch.device):
    """Seed torch's global RNG for the block and restore it afterwards.

    kornia draws from the global generators, so the block seeds the CPU one and, for a
    CUDA ``device``, that device's one; on leaving, both get back the state they had
    before. Other CUDA devices are neither seeded nor read (``torch.manual_seed`` would
    seed every CUDA device and ``fork_rng`` restore none of them, leaving them reseeded
    by every augmentation).
    """
    device = torch.device(device)
    cuda = [] if device.type != "cuda" else [
        device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=cuda, device_type="cuda"):
        torch.random.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield
