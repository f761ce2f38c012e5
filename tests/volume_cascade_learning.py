"""The 3-D cascade's learning test setup, shared by the test and by the measurement of
its spread:

    OMP_NUM_THREADS=1 PYTHONPATH=. python -m tests.volume_cascade_learning --seeds 0,1,2,3,4

Head phantoms with some landmarks removed (the structure not drawn, the row left empty:
what a model should call absent); a 3-D GU2Net on the whole volume (3 mm voxels, with the
geometric 3-D augmentation), then a volume-patch stage (a small 3-D U-Net on 16-voxel
cubes at the volumes' own 2 x 2 x 3 mm voxels). Seed index i writes the phantoms with seed
7 + i and trains with ``train.seed = i``; index 0 is what the test runs. Scored on the
test split through :class:`~unilandmark.inference.volume_detector.VolumeDetector`, as
``predict`` does: MRE in mm over landmarks annotated and predicted present, against the
mean shape (the training volumes' mean world positions), and the precision and recall of
"absent".
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from unilandmark.data.synthetic3d import make_synthetic_volumes, synthetic_volumes_dataset
from unilandmark.inference.volume_detector import VolumeDetector
from unilandmark.quality.presence import presence_counts
from unilandmark.training.config import load_config
from unilandmark.training.fit import fit

from .volume_learning import volume_config

PHANTOM_SEED = 7
SIZE, SPACING = (32, 36, 28), (2.0, 2.0, 3.0)
ABSENT_FRACTION = 0.1
PATCH_EPOCHS = 15


def write_absent_phantoms(root: Path, seed: int = PHANTOM_SEED) -> Path:
    make_synthetic_volumes(root, 16, 6, 6, seed=seed, size=SIZE, spacing=SPACING,
                           absent_fraction=ABSENT_FRACTION, absent_mode="removed")
    return root


#: the refiners of the cascade: the 3-D U-Net (the test's default) or the 2.5-D tri-planar
REFINERS = {"unet3d": {"name": "unet3d", "width": 8, "depth": 2},
            "triplanar": {"name": "triplanar", "width": 16, "depth": 3}}


def patch_config(previous: Path, out_dir: Path, seed: int = 0, epochs: int = PATCH_EPOCHS,
                 refiner: str = "unet3d"):
    return load_config(data={
        "name": "volume-patch", "out_dir": str(out_dir),
        "stage": {"kind": "volume-patch", "previous": str(previous), "patch_size": 16,
                  "sigma": 1.5, "jitter_mm": 6.0},
        "model": dict(REFINERS[refiner]),
        "optim": {"cycle_epochs": 3},
        "train": {"epochs": epochs, "batch_size": 8, "cache_dir": None, "threads": 1,
                  "seed": seed}})


def _quiet_fit(config):
    threads = torch.get_num_threads()
    try:
        return fit(config, progress=False, log=lambda *_: None)
    finally:
        torch.set_num_threads(threads)


def train_cascade(data: Path, out_dir: Path, seed: int = 0, coarse_epochs: int | None = None,
                  patch_epochs: int = PATCH_EPOCHS, refiners=("unet3d",)):
    """(coarse run, patch run of each refiner...) trained on ``data``."""
    coarse = _quiet_fit(volume_config(data, out_dir / "coarse", "gu2net3d", seed,
                                      coarse_epochs))
    patches = [_quiet_fit(patch_config(coarse.best_path, out_dir / f"patch-{r}", seed,
                                       patch_epochs, r)) for r in refiners]
    return (coarse, *patches)


def score_on_test_split(checkpoint: Path, data: Path) -> dict:
    """MRE (mm; landmarks annotated and predicted present), the mean shape's MRE on the
    same landmarks, and the presence counts on the test split."""
    spec = synthetic_volumes_dataset(data)
    detector = VolumeDetector.from_checkpoint(checkpoint)
    train_world = np.stack([r.meta["world_lps"] for r in spec.split_records("train")])
    mean_shape = np.nanmean(train_world, axis=0)
    errors, baseline, truth_present, predicted_present = [], [], [], []
    for record in spec.split_records("test"):
        result = detector.predict(record.image_path)
        truth = np.asarray(record.meta["world_lps"], dtype=np.float64)
        both = record.visible & result.present
        errors.append(np.where(both, np.linalg.norm(result.world - truth, axis=1), np.nan))
        baseline.append(np.where(both, np.linalg.norm(mean_shape - truth, axis=1), np.nan))
        truth_present.append(record.visible)
        predicted_present.append(result.present)
    return {"mre": float(np.nanmean(errors)), "mean_shape": float(np.nanmean(baseline)),
            **presence_counts(np.stack(truth_present), np.stack(predicted_present))}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--refiners", default="unet3d", help="comma-separated: unet3d, triplanar")
    a = p.parse_args(argv)
    refiners = tuple(a.refiners.split(","))
    t0 = time.time()
    for index in (int(s) for s in a.seeds.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            data = write_absent_phantoms(Path(tmp) / "data", PHANTOM_SEED + index)
            coarse, *patches = train_cascade(data, Path(tmp), index, refiners=refiners)
            c = score_on_test_split(coarse.best_path, data)
            for refiner, patch in zip(refiners, patches, strict=True):
                f = score_on_test_split(patch.best_path, data)
                print(f"seed {index}: coarse {c['mre']:.3f} mm, {refiner} cascade "
                      f"{f['mre']:.3f} mm, mean shape {f['mean_shape']:.3f} mm; absent "
                      f"precision {f['precision']}, recall {f['recall']} "
                      f"({f['correctly_absent']}/{f['truth_absent']} found, "
                      f"{f['predicted_absent']} called) ({time.time() - t0:.0f} s)",
                      flush=True)


if __name__ == "__main__":
    main()
