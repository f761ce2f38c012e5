"""The 3-D learning test's setup, shared by the test and by the measurement of its spread:

    OMP_NUM_THREADS=1 PYTHONPATH=src python -m tests.volume_learning --seeds 0,1,2,3,4

(``--model displacement3d`` for the 3-D displacement model's test; ``gu2net3d`` by default.)
Seed index i writes the phantoms with seed 7 + i and trains with ``train.seed = i``; index
0 is what the test runs. Errors are in mm on the phantoms' test split (3 mm network
voxels); the mean shape (the training volumes' mean world positions, answered for every
test volume) is the baseline a bound must stay clearly below.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from unilandmark.checkpoints.checkpoint import load_checkpoint
from unilandmark.checkpoints.contract import stage_contract
from unilandmark.core.metrics import radial_errors
from unilandmark.core.types import truth_points
from unilandmark.data.synthetic3d import make_synthetic_volumes, synthetic_volumes_dataset
from unilandmark.models import build_model, codec_for
from unilandmark.training.config import load_config
from unilandmark.training.fit import fit
from unilandmark.training.stages.image import predict_dataset
from unilandmark.training.volumes import VolumeDataset

PHANTOM_SEED = 7
SIZE, SPACING = (32, 36, 28), (2.0, 2.0, 3.0)
EPOCHS, WIDTH = 40, 8
#: models trained with more than ``EPOCHS`` and ``WIDTH``: displacement voting learns more
#: slowly than heatmaps (width 8, 40 epochs: 1.95-3.23 mm over 5 seeds; docs/volumes.md)
SETTINGS_BY_MODEL = {"displacement3d": {"width": 16, "epochs": 80}}


def write_volume_phantoms(root: Path, seed: int = PHANTOM_SEED) -> Path:
    make_synthetic_volumes(root, 16, 4, 6, seed=seed, size=SIZE, spacing=SPACING)
    return root


def volume_config(data: Path, out_dir: Path, model: str = "gu2net3d", seed: int = 0,
                  epochs: int | None = None):
    settings = SETTINGS_BY_MODEL.get(model, {})
    width = ({"width": settings.get("width", WIDTH), "depth": 2}
             | ({"global_width": 8} if "gu2net" in model else {}))
    return load_config(data={
        "name": f"volume-{model}", "out_dir": str(out_dir),
        "stage": {"kind": "volume", "spacing": 3.0},
        "model": {"name": model, **width},
        "domains": [{"name": "head3d", "dataset": "synthetic-volumes", "root": str(data),
                     "input_size": [24, 24, 20], "sigma": 1.5}],
        "optim": {"cycle_epochs": 3},
        "train": {"epochs": epochs or settings.get("epochs", EPOCHS), "batch_size": 4,
                  "cache_dir": None, "threads": 1, "seed": seed}})


def train_volume_model(data: Path, out_dir: Path, model: str = "gu2net3d", seed: int = 0):
    threads = torch.get_num_threads()
    try:
        return fit(volume_config(data, out_dir, model, seed), progress=False,
                   log=lambda *_: None)
    finally:
        torch.set_num_threads(threads)


def errors_on_test_split(checkpoint: Path, data: Path) -> tuple[np.ndarray, np.ndarray]:
    """(model errors (N, K) mm, mean-shape errors (N, K) mm) on the test split."""
    state = load_checkpoint(checkpoint)
    contract = stage_contract(state)
    domains = state["domains"]
    model = build_model(contract.model.name,
                        {n: m["num_landmarks"] for n, m in domains.items()},
                        **contract.model.kwargs())
    model.load_state_dict(state["model"])
    meta = domains["head3d"]
    spec = synthetic_volumes_dataset(data)
    test = VolumeDataset(spec, "test", meta["target_spacing"], meta["input_size"],
                         meta["modality"])
    codec = codec_for(contract.model.name, meta["sigma"])
    pred, _ = predict_dataset(model, test, codec, "head3d", torch.device("cpu"), batch_size=2)
    scale = np.array([r.spacing for r in test.records])[:, None, :]
    errors = radial_errors(pred, truth_points(test.records), scale)
    train_world = np.stack([r.meta["world_lps"] for r in spec.split_records("train")])
    test_world = np.stack([r.meta["world_lps"] for r in test.records])
    mean_shape = np.linalg.norm(test_world - np.nanmean(train_world, axis=0), axis=-1)
    return errors, mean_shape


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--model", default="gu2net3d")
    a = p.parse_args(argv)
    t0 = time.time()
    for index in (int(s) for s in a.seeds.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            data = write_volume_phantoms(Path(tmp) / "data", PHANTOM_SEED + index)
            run = train_volume_model(data, Path(tmp) / "run", a.model, index)
            errors, mean_shape = errors_on_test_split(run.best_path, data)
            print(f"seed {index}: {a.model} test MRE {np.nanmean(errors):.3f} mm, mean shape "
                  f"{np.nanmean(mean_shape):.3f} mm ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
