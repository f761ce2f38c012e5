"""Is kornia's keypoint-aware augmentation exact? Compared with unilandmark's own.

Renders Gaussian dots at known sub-pixel positions, applies a random affine (rotation,
scale, translation) to image and keypoints with (a) ``kornia.augmentation.RandomAffine``
inside ``AugmentationSequential(data_keys=["input", "keypoints"])`` and (b)
``unilandmark.data.augment``, and measures the distance between the dot's centroid in the
warped image and the transformed keypoint, plus the time per batch.

    python benchmarks/augment_exactness.py --json out/augment_exactness.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402
from unilandmark.training.augment import AugmentConfig, augment_batch


def dots(n, h, w, seed):
    rng = np.random.default_rng(seed)
    pts = torch.tensor(rng.uniform(0.35, 0.65, size=(n, 1, 2)) * [w, h], dtype=torch.float32)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    img = torch.exp(-((xs - pts[:, 0, 0, None, None]) ** 2 +
                      (ys - pts[:, 0, 1, None, None]) ** 2) / (2 * 1.5**2))[:, None]
    return img.float(), pts, xs, ys


def centroid_error(img, pts, xs, ys):
    im = img[:, 0].clamp(min=0)
    c = torch.stack([(im * xs).sum((1, 2)), (im * ys).sum((1, 2))], -1) / im.sum((1, 2))[:, None]
    return (c - pts[:, 0]).norm(dim=-1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    h = w = a.size
    img, pts, xs, ys = dots(a.n, h, w, 0)
    results = {}

    for backend in ("torch", "kornia"):
        cfg = AugmentConfig(rotate_deg=20, scale=0.15, translate=0.05, gamma=(1, 1),
                            contrast=0, brightness=0, noise=0, backend=backend)
        times = []
        for r in range(a.repeats):
            t0 = time.perf_counter()
            batch = {"image": img, "points": pts, "visible": torch.ones(a.n, 1).bool()}
            out = augment_batch(batch, cfg, torch.Generator().manual_seed(r))
            times.append(time.perf_counter() - t0)
        err = centroid_error(out["image"], out["points"], xs, ys)
        results[f"unilandmark_{backend}_backend"] = {
            "max_px": float(err.max()), "mean_px": float(err.mean()),
            "ms_per_batch": 1000 * min(times)}
    try:
        import kornia.augmentation as K
    except ImportError:
        results["kornia"] = {"error": "kornia not installed (pip install kornia)"}
    else:
        for align in (False, True):
            aug = K.AugmentationSequential(
                K.RandomAffine(degrees=20, translate=(0.05, 0.05), scale=(0.85, 1.15), p=1.0,
                               align_corners=align),
                data_keys=["input", "keypoints"])
            times = []
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                out_img, out_pts = aug(img, pts)
                times.append(time.perf_counter() - t0)
            err = centroid_error(out_img, out_pts, xs, ys)
            results[f"kornia_align_corners_{align}"] = {
                "max_px": float(err.max()), "mean_px": float(err.mean()),
                "ms_per_batch": 1000 * min(times)}
    print(f"{'method':32s} {'mean px':>8s} {'max px':>8s} {'ms/batch':>9s}")
    for name, r in results.items():
        if "error" in r:
            print(f"{name:32s} {r['error']}")
        else:
            print(f"{name:32s} {r['mean_px']:8.3f} {r['max_px']:8.3f} {r['ms_per_batch']:9.1f}")
    write_json(a.json, {"benchmark": "augment_exactness", "machine": machine(),
                        "batch": a.n, "size": [w, h], "results": results})
    return results


if __name__ == "__main__":
    main()
