"""Coarse-to-fine refinement: a stage-2 patch model on top of any stage-1 model.

Stage 1 locates every landmark on a small input. Stage 2 crops a patch of ``size`` x
``size`` pixels around each stage-1 estimate from the image at ``scale`` original pixels
per patch pixel (the crop goes through the Geometry, from a cache of the image resized by
1 / scale once) and finds the exact position in it with a heatmap (a shared U-Net,
one output channel per landmark; the channel of the cropped landmark is used).

Stage 2 trains on crops centred on the ground truth plus a jitter drawn from stage 1's
own error vectors on the validation split (bootstrap, per landmark), so it learns to
correct exactly the mistakes stage 1 makes. ``fit_refiner(config)`` writes
``refine_best.pt`` / ``refine_last.pt``: one file holding both stages, which
``Detector.from_checkpoint`` loads as a cascade.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from .checkpoint import load_checkpoint, save_checkpoint
from .codecs import HeatmapCodec
from .config import DomainConfig, ExperimentConfig
from .data.catalog import build_dataset
from .data.dataset import LandmarkDataset
from .metrics import radial_errors
from .models import build_model

REFINER_MODEL = "heatmap"


class RefineConfig(BaseModel):
    """Stage-2 settings; ``stage1`` is a training checkpoint (its domains are reused)."""

    model_config = ConfigDict(extra="forbid")
    name: str = "refine"
    out_dir: str = "runs/refine"
    stage1: str
    patch_size: int = 64
    scale: float = 2.0
    width: int = 16
    depth: int = 3
    sigma: float = 2.0
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    jitter_floor: float = 2.0
    seed: int = 0
    threads: int | None = None
    cache_dir: str | None = "cache"
    domains: list[str] | None = Field(default=None, description="default: all of stage 1's")


@dataclass
class _Domain:
    name: str
    config: DomainConfig
    train: LandmarkDataset  # images at 1 / scale
    val: LandmarkDataset | None
    jitter: np.ndarray  # (N, K, 2) stage-1 error vectors in original px
    stage1_val: np.ndarray  # (N, K, 2) stage-1 points on the validation split, original px


def crop_patches(images: torch.Tensor, centres: torch.Tensor, size: int,
                 scale_to_cache: torch.Tensor) -> torch.Tensor:
    """Bilinear crops of ``size`` x ``size`` around ``centres`` (B, 2) given in cache pixels.

    images: (B, 1, H, W) cache images; patch pixel (u, v) samples the cache at
    ``centre + (u - (size - 1) / 2, v - (size - 1) / 2) * scale_to_cache`` (B,) factor.
    """
    b, _, h, w = images.shape
    offsets = torch.arange(size, dtype=torch.float32, device=images.device) - (size - 1) / 2
    gx = centres[:, 0, None] + offsets[None] * scale_to_cache[:, None]  # (B, size)
    gy = centres[:, 1, None] + offsets[None] * scale_to_cache[:, None]
    nx = (2 * gx + 1) / w - 1
    ny = (2 * gy + 1) / h - 1
    grid = torch.stack([nx[:, None, :].expand(b, size, size),
                        ny[:, :, None].expand(b, size, size)], -1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)


def _cache_size(original_size, scale):
    return max(8, round(original_size[0] / scale)), max(8, round(original_size[1] / scale))


def _load_domain(name, dc: DomainConfig, scale: float, cache_dir, stage1_errors,
                 stage1_val) -> _Domain:
    spec = build_dataset(dc.dataset, dc.root, **dc.options)
    first = spec.split_records(dc.train_split)[0]
    from .io import read_image_info

    size, _ = read_image_info(first.image_path)
    cache = _cache_size(size, scale)
    train = LandmarkDataset(spec, dc.train_split, cache, "stretch", cache_dir)
    val = (LandmarkDataset(spec, dc.val_split, cache, "stretch", cache_dir)
           if dc.val_split and spec.splits.get(dc.val_split) else None)
    return _Domain(name, dc, train, val, stage1_errors, stage1_val)


def _stage1_predictions(state: dict, dc: DomainConfig, domain: str, split: str, cache_dir):
    """Stage-1 points (N, K, 2) in original px for a split, and the records."""
    from .predict import Detector
    from .train import predict_dataset

    detector = Detector.from_checkpoint_state(state)
    spec = build_dataset(dc.dataset, dc.root, **dc.options)
    data = LandmarkDataset(spec, split, dc.input_size, dc.resize, cache_dir)
    pts, _ = predict_dataset(detector.model, data, detector.codecs[domain], domain, "cpu")
    return pts, data.records


def refine_points(refiner, codec, images_cache, geometries_cache, points, domain, size,
                  scale, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Refine (N, K, 2) original-pixel ``points`` with stage 2; returns (points, confidence).

    images_cache: (N, 1, h, w) tensor of the images at 1 / scale; geometries_cache: their
    Geometries (cache pixels <-> original pixels).
    """
    n, k, _ = points.shape
    out = points.copy()
    conf = np.zeros((n, k), dtype=np.float32)
    pairs = [(i, j) for i in range(n) for j in range(k) if np.all(np.isfinite(points[i, j]))]
    refiner.eval()
    with torch.no_grad():
        for start in range(0, len(pairs), batch):
            chunk = pairs[start:start + batch]
            idx = torch.tensor([i for i, _ in chunk])
            lm = torch.tensor([j for _, j in chunk])
            centres_orig = np.stack([points[i, j] for i, j in chunk])
            centres = np.stack([geometries_cache[i].to_network(c)
                                for (i, _), c in zip(chunk, centres_orig, strict=True)])
            factor = torch.tensor([1.0 / geometries_cache[i].matrix[0, 0] * scale
                                   for i, _ in chunk], dtype=torch.float32)
            patches = crop_patches(images_cache[idx].float(),
                                   torch.tensor(centres, dtype=torch.float32), size, factor)
            heat = refiner(patches, domain)["heatmap"]
            chosen = heat[torch.arange(len(chunk)), lm][:, None]
            pred = codec.decode({"heatmap": chosen})
            local = pred.points[:, 0].double().numpy()  # patch pixels
            delta = (local - (size - 1) / 2) * scale  # original px
            for row, (i, j) in enumerate(chunk):
                out[i, j] = centres_orig[row] + delta[row]
                conf[i, j] = float(pred.confidence[row, 0])
    return out, conf


def fit_refiner(config: RefineConfig, log=print) -> Path:
    """Train stage 2 for the stage-1 checkpoint ``config.stage1``; returns refine_best.pt."""
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage1 = load_checkpoint(config.stage1)
    s1cfg = ExperimentConfig.model_validate(stage1["config"])
    names = config.domains or [d.name for d in s1cfg.domains]
    domains: dict[str, _Domain] = {}
    for dc in s1cfg.domains:
        if dc.name not in names:
            continue
        if not dc.val_split:
            raise ValueError(f"domain {dc.name}: refinement needs a validation split to "
                             "learn stage 1's error distribution")
        pts, records = _stage1_predictions(stage1, dc, dc.name, dc.val_split,
                                           config.cache_dir)
        truth = np.stack([np.where(r.visible[:, None], r.points, np.nan) for r in records])
        errors = pts - truth
        s1 = np.nanmean(np.linalg.norm(errors, axis=-1))
        log(f"{dc.name}: stage-1 validation error {s1:.2f} original px")
        domains[dc.name] = _load_domain(dc.name, dc, config.scale, config.cache_dir, errors,
                                        pts)
    # the family backbone: BatchNorm per domain (shared BatchNorm would average the
    # domains' statistics, see docs/families.md), background-prior output bias
    refiner = build_model(REFINER_MODEL,
                          {n: d.train.spec.num_landmarks for n, d in domains.items()},
                          width=config.width, depth=config.depth)
    codec = HeatmapCodec(config.sigma)
    optimizer = torch.optim.Adam(refiner.parameters(), lr=config.lr)
    rng = np.random.default_rng(config.seed)
    size, scale = config.patch_size, config.scale
    best = float("inf")
    metrics = out_dir / "refine_metrics.jsonl"
    metrics.unlink(missing_ok=True)
    for epoch in range(config.epochs):
        t0 = time.time()
        refiner.train()
        losses = []
        for name, d in domains.items():
            n, k = len(d.train), d.train.spec.num_landmarks
            pairs = [(i, j) for i in range(n) for j in range(k) if d.train.visible[i, j]]
            order = rng.permutation(len(pairs))
            for start in range(0, len(order), config.batch_size):
                chunk = [pairs[o] for o in order[start:start + config.batch_size]]
                if len(chunk) < 2:
                    continue
                idx = np.array([i for i, _ in chunk])
                lm = np.array([j for _, j in chunk])
                jit = d.jitter[rng.integers(0, len(d.jitter), len(chunk)), lm]
                jit = np.nan_to_num(jit) + rng.normal(0, config.jitter_floor, jit.shape)
                truth_cache = d.train.points[idx, lm]  # cache pixels
                mpp = np.array([d.train.geometries[i].matrix[0, 0] for i in idx])
                centre = truth_cache + jit / mpp[:, None]
                factor = torch.tensor(scale / mpp, dtype=torch.float32)
                images = torch.from_numpy(d.train.images[idx].astype(np.float32))
                patches = crop_patches(images, torch.tensor(centre, dtype=torch.float32), size,
                                       factor)
                gain = torch.empty(len(chunk), 1, 1, 1).uniform_(0.8, 1.2)
                patches = (patches * gain).clamp(0, 1)
                target_pts = (truth_cache - centre) / (scale / mpp[:, None]) + (size - 1) / 2
                tp = torch.tensor(target_pts, dtype=torch.float32)[:, None]
                targets = codec.encode(tp, torch.ones(len(chunk), 1, dtype=torch.bool),
                                       (size, size))
                heat = refiner(patches, name)["heatmap"]
                chosen = heat[torch.arange(len(chunk)), torch.from_numpy(lm)][:, None]
                loss = codec.loss({"heatmap": chosen}, targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
        val = {}
        for name, d in domains.items():
            if d.val is None:
                continue
            pts1, records = d.stage1_val, d.val.records  # stage 1 is fixed: predicted once
            images = torch.from_numpy(d.val.images.astype(np.float32))
            refined, _ = refine_points(refiner, codec, images, d.val.geometries, pts1, name,
                                       size, scale)
            truth = np.stack([np.where(r.visible[:, None], r.points, np.nan) for r in records])
            sp = np.array([r.spacing or (1.0, 1.0) for r in records])[:, None, :]
            val[name] = {"stage1": float(np.nanmean(radial_errors(pts1, truth, sp))),
                         "refined": float(np.nanmean(radial_errors(refined, truth, sp)))}
        score = float(np.mean([v["refined"] for v in val.values()]))
        state = {"kind": "cascade", "stage1": stage1, "refiner": refiner.state_dict(),
                 "refine_model": REFINER_MODEL,
                 "refine_config": config.model_dump(mode="json"),
                 "refine_domains": {n: d.train.spec.num_landmarks for n, d in domains.items()},
                 "config": stage1["config"], "domains": stage1["domains"], "epoch": epoch}
        improved = score < best
        if improved:
            best = score
            save_checkpoint(out_dir / "refine_best.pt", state)
        save_checkpoint(out_dir / "refine_last.pt", state)
        entry = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "val": val,
                 "best": improved, "time_s": round(time.time() - t0, 1)}
        with open(metrics, "a") as fh:
            fh.write(json.dumps(entry) + "\n")
        vals = "  ".join(f"{n} {v['stage1']:.3f} -> {v['refined']:.3f}" for n, v in val.items())
        log(f"refine epoch {epoch + 1}/{config.epochs}  loss {entry['loss']:.5f}  val {vals}"
            f"{'  *best*' if improved else ''}  ({entry['time_s']:.1f} s)")
    stage1_score = float(np.mean([v["stage1"] for v in val.values()]))
    if best >= stage1_score:
        log(f"warning: stage 2 did not improve on stage 1 on validation ({best:.3f} vs "
            f"{stage1_score:.3f}); predict with the stage-1 checkpoint instead")
    return out_dir / "refine_best.pt"
