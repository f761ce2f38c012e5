"""The learning tests' setups, shared by the tests and by the measurement of their spread.

Every learning test asserts an error bound after a short training. The bounds are set from
the spread of the same quantity over several seeds (train seed and phantom seed varied
together), measured with this module and written down in docs/testing.md:

    OMP_NUM_THREADS=1 PYTHONPATH=src python -m tests.learning --seeds 0,1,2,3,4 \\
        --json out/learning_spread.json

Seed index 0 is exactly what the tests run (phantom seed 3, train seed 0; refinement:
phantom seed 5). Errors are in pixels of the phantom images. A bound must stay clearly
below the error of the mean shape (a "model" that ignores the image, measured for every
seed) and far below an untrained model's (``--untrained``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

#: the phantoms the session fixture writes (tests/conftest.py): 64 x 64, 24/8/8 images
PHANTOM_SEED = 3
#: the phantoms of the refinement test: 128 x 128, 30/10/10 images, head only
REFINE_PHANTOM_SEED = 5
#: every family of the survey that has a learning test on the head phantoms
FAMILY_MODELS = ("pixel-class", "patch-class", "direct-regression", "dsnt", "heatmap",
                 "heatmap-sigma", "heatmap-awing", "displacement", "scn")
#: epochs of the family learning tests; families that are still near the mean-shape
#: baseline after 20 epochs train longer (docs/testing.md)
FAMILY_EPOCHS = {"patch-class": 100, "direct-regression": 120, "scn": 40}
DEFAULT_FAMILY_EPOCHS = 20


def write_phantoms(root: Path, seed: int = PHANTOM_SEED) -> Path:
    """The small synthetic domains of the learning tests (64x64, 24/8/8 images)."""
    from unilandmark import make_synthetic

    make_synthetic(root, train=24, val=8, test=8, size=(64, 64), seed=seed)
    return root


def phantom_config(root, out_dir, domains=("head", "hand", "chest"), epochs=40, size=64,
                   **train):
    """A small GU2Net config over the phantom domains (CPU-sized)."""
    from unilandmark.training.config import load_config

    doms = [{"name": d, "dataset": "synthetic", "root": str(root), "options": {"domain": d},
             "input_size": [size, size], "sigma": 2.0} for d in domains]
    return load_config(data={
        "out_dir": str(out_dir), "domains": doms,
        "model": {"name": "gu2net", "width": 16, "depth": 3, "global_width": 32},
        "optim": {"cycle_epochs": 3},
        "train": {"epochs": epochs, "batch_size": 6, "cache_dir": None, **train}})


def _quiet_fit(cfg):
    """Train on one thread (the float summation order, hence the result, then does not
    depend on the machine's core count), restoring the caller's thread count after."""
    import torch

    from unilandmark.training.fit import fit

    threads = torch.get_num_threads()
    cfg.train.threads = cfg.train.threads or 1
    try:
        return fit(cfg, progress=False, log=lambda *_: None)
    finally:
        torch.set_num_threads(threads)


def predicted_and_true(checkpoint, phantoms: Path, domain: str, split: str = "test"):
    """(pred, truth), each (N, K, 2) original pixels, of a checkpoint on a phantom split."""
    from unilandmark import synthetic_dataset
    from unilandmark.inference.detector import Detector

    records = synthetic_dataset(phantoms, domain).split_records(split)
    results = Detector.from_checkpoint(checkpoint).predict_many(
        [r.image_path for r in records], domain)
    return np.stack([r.points for r in results]), np.stack([r.points for r in records])


def mean_error(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(pred - truth, axis=-1).mean())


def train_family(model: str, phantoms: Path, out_dir: Path, seed: int = 0):
    """A family trained on the head phantoms alone (FAMILY_EPOCHS, default 20 epochs)."""
    epochs = FAMILY_EPOCHS.get(model, DEFAULT_FAMILY_EPOCHS)
    cfg = phantom_config(phantoms, out_dir, domains=("head",), epochs=epochs, seed=seed)
    cfg.model.name = model
    return _quiet_fit(cfg)


def train_universal(phantoms: Path, out_dir: Path, seed: int = 0):
    """GU2Net trained once on the three phantom domains (the ``trained_run`` fixture)."""
    return _quiet_fit(phantom_config(phantoms, out_dir, seed=seed))


def fingers_identified(pred: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of fingertips (and finger bases) found nearer their own finger than any
    other finger's ground truth (hand phantoms: tips 1,3,5,7,9, bases 0,2,4,6,8)."""
    correct, total = 0, 0
    for group in ([1, 3, 5, 7, 9], [0, 2, 4, 6, 8]):
        for n in range(len(pred)):
            d = np.linalg.norm(pred[n, group][:, None] - truth[n, group][None], axis=-1)
            correct += int((d.argmin(axis=1) == np.arange(len(group))).sum())
            total += len(group)
    return correct / total


def upscaled_errors(checkpoint, phantoms: Path, folder: Path) -> tuple[float, float]:
    """A head test phantom upscaled 3x into a MetaImage: (mean |big - (3 small + 1)|, mean
    error of the big image's points against the upscaled truth), both in big-image px."""
    from unilandmark import read_image, synthetic_dataset
    from unilandmark.imageio.read import write_image
    from unilandmark.inference.detector import Detector

    rec = synthetic_dataset(phantoms, "head").split_records("test")[1]
    array, _ = read_image(rec.image_path)
    big = np.kron(array, np.ones((3, 3), dtype=array.dtype))  # exact 3x upscale
    path = Path(folder) / "big.mha"
    write_image(path, big, spacing=(0.2, 0.2))
    detector = Detector.from_checkpoint(checkpoint)
    small = detector.predict(rec.image_path, "head")
    large = detector.predict(path, "head")
    consistency = float(np.abs(large.points - (3 * small.points + 1)).mean())
    return consistency, mean_error(large.points, 3 * rec.points + 1)


def refine_phantoms(root: Path, seed: int = REFINE_PHANTOM_SEED) -> Path:
    from unilandmark import make_synthetic

    make_synthetic(root, domains=("head",), train=30, val=10, test=10, size=(128, 128),
                   seed=seed)
    return root


def train_cascade(data: Path, work: Path, seed: int = 0):
    """Stage 1 (GU2Net at 32 px on 128 px phantoms) then a patch stage on top of it,
    through the same training loop: (stage-1 run, cascade checkpoint path)."""
    from unilandmark.training.config import load_config

    stage1 = _quiet_fit(phantom_config(data, work / "s1", domains=("head",), epochs=25,
                                       size=32, seed=seed))
    stage2 = load_config(data={
        "out_dir": str(work / "s2"),
        "stage": {"kind": "patch", "previous": str(stage1.best_path), "patch_size": 24,
                  "scale": 1.0, "sigma": 1.5, "jitter_floor": 1.5},
        "model": {"name": "heatmap", "width": 8, "depth": 2},
        "optim": {"schedule": "constant", "lr": 2e-3},
        "train": {"epochs": 20, "batch_size": 16, "cache_dir": None, "seed": seed}})
    return stage1, _quiet_fit(stage2).best_path


# -- the measurement -----------------------------------------------------------------------

def mean_shape_errors(phantoms: Path) -> dict[str, float]:
    """Test error of a "model" that ignores the image and answers the training set's mean
    landmark positions: the level below which a learning test's bound must clearly stay."""
    from unilandmark import synthetic_dataset

    out = {}
    for domain in ("head", "hand", "chest"):
        spec = synthetic_dataset(phantoms, domain)
        mean = np.stack([r.points for r in spec.split_records("train")]).mean(0)
        truth = np.stack([r.points for r in spec.split_records("test")])
        out[f"mean shape[{domain}]"] = mean_error(np.broadcast_to(mean, truth.shape), truth)
    return out


def measure_seed(index: int, work: Path, families=FAMILY_MODELS,
                 parts=("families", "gu2net", "refine")) -> dict[str, float]:
    """Every learning test's quantity for one seed index (train seed = index, phantom seeds
    shifted by index)."""
    from unilandmark.checkpoints.checkpoint import slim_checkpoint

    phantoms = write_phantoms(work / "phantoms", PHANTOM_SEED + index)
    out: dict[str, float] = mean_shape_errors(phantoms)
    for model in families if "families" in parts else ():
        run = train_family(model, phantoms, work / model, seed=index)
        out[f"family[{model}]"] = mean_error(*predicted_and_true(run.best_path, phantoms, "head"))
    if "gu2net" not in parts:
        return out
    run = train_universal(phantoms, work / "gu2net", seed=index)
    for domain in ("head", "hand", "chest"):
        pred, truth = predicted_and_true(run.best_path, phantoms, domain)
        out[f"gu2net[{domain}]"] = mean_error(pred, truth)
        if domain == "hand":
            out["gu2net fingers identified"] = fingers_identified(pred, truth)
    out["gu2net 3x consistency"], out["gu2net 3x error"] = upscaled_errors(
        run.best_path, phantoms, work)
    if "refine" not in parts:
        return out
    data = refine_phantoms(work / "refine_phantoms", REFINE_PHANTOM_SEED + index)
    stage1, cascade = train_cascade(data, work / "cascade", seed=index)
    coarse, truth = predicted_and_true(stage1.best_path, data, "head")
    fine, _ = predicted_and_true(cascade, data, "head")
    out["refine stage 1"] = mean_error(coarse, truth)
    out["refine stage 2"] = mean_error(fine, truth)
    out["refine stage 2 / stage 1"] = out["refine stage 2"] / out["refine stage 1"]
    slim_checkpoint(cascade, work / "slim.pt")
    again, _ = predicted_and_true(work / "slim.pt", data, "head")
    out["refine slim fp16 shift"] = float(np.abs(again - fine).mean())
    return out


def measure_untrained(work: Path) -> dict[str, float]:
    """What an untrained model scores (one epoch at a zero learning rate): the level a
    bound must stay far below for the test to mean anything."""
    from unilandmark.training.fit import fit

    phantoms = write_phantoms(work / "phantoms")
    out = {}
    for model in (*FAMILY_MODELS, "gu2net"):
        cfg = phantom_config(phantoms, work / f"untrained-{model}", domains=("head",),
                             epochs=1)
        cfg.model.name = model
        cfg.optim.lr = cfg.optim.max_lr = 0.0
        cfg.optim.schedule = "constant"
        run = fit(cfg, progress=False, log=lambda *_: None)
        out[f"untrained[{model}]"] = mean_error(
            *predicted_and_true(run.best_path, phantoms, "head"))
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description="Spread of every learning test's error over seeds.")
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seed indices")
    p.add_argument("--families", default=",".join(FAMILY_MODELS))
    p.add_argument("--parts", default="families,gu2net,refine",
                   help="which tests to measure: families, gu2net, refine")
    p.add_argument("--untrained", action="store_true", help="also score untrained models")
    p.add_argument("--json", default=None, help="write every value and the summary here")
    a = p.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",")]
    values: dict[str, list[float]] = {}
    t0 = time.time()
    for index in seeds:
        with tempfile.TemporaryDirectory(prefix=f"learning-{index}-") as tmp:
            for key, v in measure_seed(index, Path(tmp), a.families.split(","),
                                       a.parts.split(",")).items():
                values.setdefault(key, []).append(v)
        print(f"seed {index} done ({time.time() - t0:.0f} s)", flush=True)
    if a.untrained:
        with tempfile.TemporaryDirectory(prefix="learning-untrained-") as tmp:
            values.update({k: [v] for k, v in measure_untrained(Path(tmp)).items()})
    summary = {k: {"min": min(v), "median": float(np.median(v)), "max": max(v), "values": v}
               for k, v in values.items()}
    print(f"{'quantity':32s} {'min':>8s} {'median':>8s} {'max':>8s}   per seed")
    for k, s in summary.items():
        print(f"{k:32s} {s['min']:8.3f} {s['median']:8.3f} {s['max']:8.3f}   "
              + " ".join(f"{v:.3f}" for v in s["values"]))
    payload = {"seeds": seeds, "summary": summary}
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(payload, indent=2) + "\n")
    return payload


if __name__ == "__main__":
    main()
