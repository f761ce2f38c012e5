"""Coarse-to-fine: a patch stage trained through the same loop refines a coarse stage 1,
on images of different sizes and anisotropic pixel grids."""

import csv

import numpy as np
import pytest

from unilandmark import csv_dataset, make_synthetic, read_image, synthetic_dataset
from unilandmark.checkpoints.checkpoint import load_checkpoint, slim_checkpoint, stage_chain
from unilandmark.core.geometry import fit_geometry, resize_to_input
from unilandmark.imageio.read import write_image
from unilandmark.inference.detector import Detector
from unilandmark.training.config import load_config
from unilandmark.training.fit import fit

from .learning import phantom_config


def _mixed_sizes(src, out, seed=0):
    """The head phantoms, each resized to its own anisotropic size (exact points)."""
    rng = np.random.default_rng(seed)
    spec = synthetic_dataset(src, "head")
    out.mkdir(parents=True)
    rows = []
    for split in ("train", "val", "test"):
        for r in spec.split_records(split):
            image, _ = read_image(r.image_path)
            h, w = image.shape
            size = (int(w * rng.uniform(0.75, 1.35)), int(h * rng.uniform(0.75, 1.35)))
            g = fit_geometry((w, h), size)  # the phantom stretched to ``size``
            resized = resize_to_input(image.astype(np.float32), g)[0]
            write_image(out / f"{r.id}.png", np.clip(np.round(resized), 0, 255).astype(np.uint8))
            pts = g.to_network(r.points)
            rows.append({"id": r.id, "image": f"{r.id}.png", "split": split,
                         **{f"{n}_{a}": v for n, p in zip(spec.landmark_names, pts, strict=True)
                            for a, v in zip("xy", p, strict=True)}})
    with open(out / "landmarks.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out / "landmarks.csv"


@pytest.mark.slow
def test_patch_stage_refines_a_coarse_stage1_on_mixed_sizes(tmp_path):
    make_synthetic(tmp_path / "ph", domains=("head",), train=30, val=10, test=10,
                   size=(128, 128), seed=5)
    table = _mixed_sizes(tmp_path / "ph", tmp_path / "mixed")
    spec = csv_dataset(table, domain="head")
    assert len({read_image(r.image_path)[0].shape for r in spec.records}) > 20
    cfg = phantom_config(tmp_path / "ph", tmp_path / "s1", domains=("head",), epochs=25,
                         size=32, threads=2)
    cfg.domains[0].dataset, cfg.domains[0].root = "csv", str(table)
    cfg.domains[0].options = {"domain": "head"}
    stage1 = fit(cfg, progress=False, log=lambda *_: None)
    refine = load_config(data={
        "out_dir": str(tmp_path / "s2"),
        "stage": {"kind": "patch", "previous": str(stage1.best_path), "patch_size": 24,
                  "scale": 1.0, "sigma": 1.5, "jitter_floor": 1.5},
        "model": {"name": "heatmap", "width": 8, "depth": 2},
        "optim": {"schedule": "constant", "lr": 2e-3},
        "train": {"epochs": 20, "batch_size": 16, "cache_dir": None, "threads": 2}})
    cascade = fit(refine, progress=False, log=lambda *_: None)
    state = load_checkpoint(cascade.best_path)
    assert [s["kind"] for s in stage_chain(state)] == ["image", "patch"]
    assert state["config"]["domains"][0]["root"] == str(table)  # inherited, resolved
    records = spec.split_records("test")
    truth = np.stack([r.points for r in records])
    paths = [r.image_path for r in records]
    coarse = np.stack([r.points for r in Detector.from_checkpoint(stage1.best_path)
                       .predict_many(paths, "head")])
    detector = Detector.from_checkpoint(cascade.best_path)
    assert len(detector.refiners) == 1
    fine = np.stack([r.points for r in detector.predict_many(paths, "head")])
    e1 = np.linalg.norm(coarse - truth, axis=-1).mean()
    e2 = np.linalg.norm(fine - truth, axis=-1).mean()
    assert e2 < 0.75 * e1, f"stage 2 {e2:.2f} px did not improve on stage 1 {e1:.2f} px"
    assert e2 < 2.0
    # the slim (fp16) cascade predicts the same points to a fraction of a pixel
    slim = tmp_path / "slim.pt"
    slim_checkpoint(cascade.best_path, slim)
    again = np.stack([r.points for r in Detector.from_checkpoint(slim).predict_many(paths,
                                                                                  "head")])
    assert np.abs(again - fine).mean() < 0.3
