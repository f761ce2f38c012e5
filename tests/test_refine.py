"""Coarse-to-fine: stage 2 refines a coarse stage 1 on the phantoms."""

import numpy as np
import pytest
import torch

from unilandmark import make_synthetic, synthetic_dataset
from unilandmark.checkpoint import load_checkpoint, slim_checkpoint
from unilandmark.predict import Detector
from unilandmark.refine import RefineConfig, crop_patches, fit_refiner
from unilandmark.train import fit

from .conftest import phantom_config


def test_crop_patches_centre_and_scale():
    h, w = 40, 50
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    image = (xs + 100 * ys)[None, None]  # a linear ramp: bilinear sampling is exact
    patch = crop_patches(image, torch.tensor([[20.25, 10.5]]), 5, torch.tensor([2.0]))
    # patch pixel (u, v) samples centre + (u - 2, v - 2) * 2
    assert patch[0, 0, 2, 2].item() == pytest.approx(20.25 + 100 * 10.5)
    assert patch[0, 0, 0, 4].item() == pytest.approx(20.25 + 4 + 100 * (10.5 - 4))


@pytest.mark.slow
def test_stage2_refines_a_coarse_stage1(tmp_path):
    data = tmp_path / "ph"
    make_synthetic(data, domains=("head",), train=30, val=10, test=10, size=(128, 128), seed=5)
    cfg = phantom_config(data, tmp_path / "s1", domains=("head",), epochs=25, size=32,
                         threads=2)
    stage1 = fit(cfg, progress=False, log=lambda *_: None)
    rc = RefineConfig(out_dir=str(tmp_path / "s2"), stage1=str(stage1.best_path),
                      patch_size=24, scale=1.0, width=8, depth=2, sigma=1.5, epochs=20,
                      batch_size=16, lr=2e-3, cache_dir=None, threads=2)
    best = fit_refiner(rc, log=lambda *_: None)
    spec = synthetic_dataset(data, "head")
    records = spec.split_records("test")
    truth = np.stack([r.points for r in records])
    paths = [r.image_path for r in records]
    coarse = np.stack([r.points for r in Detector.from_checkpoint(stage1.best_path)
                       .predict_many(paths, "head")])
    cascade = Detector.from_checkpoint(best)
    assert cascade.refiner is not None
    fine = np.stack([r.points for r in cascade.predict_many(paths, "head")])
    e1 = np.linalg.norm(coarse - truth, axis=-1).mean()
    e2 = np.linalg.norm(fine - truth, axis=-1).mean()
    assert e2 < 0.75 * e1, f"stage 2 {e2:.2f} px did not improve on stage 1 {e1:.2f} px"
    assert e2 < 2.0
    # the slim (fp16) cascade predicts the same points to a fraction of a pixel
    slim = tmp_path / "slim.pt"
    slim_checkpoint(best, slim)
    assert load_checkpoint(slim)["kind"] == "cascade"
    again = np.stack([r.points for r in Detector.from_checkpoint(slim).predict_many(paths, "head")])
    assert np.abs(again - fine).mean() < 0.3
