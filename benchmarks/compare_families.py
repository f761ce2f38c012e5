"""Compare the survey's families of landmark detectors with the same budget and backbone.

Every family trains on the same data with the same epochs, batch size, optimiser and
backbone width, then is scored on the held-out split: MRE (px and mm where known), SDR,
parameters, training seconds and inference milliseconds per image (batch 1, model and
decoding, preprocessing excluded).

    python benchmarks/compare_families.py --quick --json out/families_quick.json
    python benchmarks/compare_families.py --dataset isbi2015 --root ../shared/data/isbi2015 \\
        --epochs 20 --size 208x256 --json out/families_isbi.json

``--quick`` uses the synthetic phantoms (head, hand, chest at 64 x 64) and fits in about
ten minutes on a 2-core CPU. Coarse-to-fine is a cascade: ``heatmap`` on half the input,
then a patch refiner (``unilandmark.refine``) trained on its errors. Output:
``{"families": [{"name", "model", "mre_px", "mre_mm", "sdr", "params", "train_s",
"ms_per_image", "domains": {...}}, ...]}``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402
from unilandmark.core.metrics import radial_errors
from unilandmark.core.types import truth_points
from unilandmark.data.adapters.catalog import build_dataset
from unilandmark.data.synthetic import make_synthetic
from unilandmark.imageio.read import read_image
from unilandmark.inference.detector import Detector
from unilandmark.models import MODELS, count_parameters
from unilandmark.training.config import load_config
from unilandmark.training.fit import fit

#: (survey family, model name) compared by default, one row each
FAMILIES = [
    ("pixel classification", "pixel-class"),
    ("patch classification", "patch-class"),
    ("coordinate regression (direct)", "direct-regression"),
    ("coordinate regression (integral / DSNT)", "dsnt"),
    ("heatmap regression (fixed sigma, BCE)", "heatmap"),
    ("heatmap regression (learnable sigma)", "heatmap-sigma"),
    ("heatmap regression (adaptive wing)", "heatmap-awing"),
    ("displacement-map regression", "displacement"),
    ("spatial configuration net", "scn"),
    ("universal local x global (GU2Net)", "gu2net"),
    ("coarse-to-fine (heatmap at 1/2 input + patch refiner)", "cascade"),
]


def domains_for(args, data_root: Path, input_size=None) -> list[dict]:
    size = list(input_size or args.input)
    if args.dataset == "synthetic":
        return [{"name": d, "dataset": "synthetic", "root": str(data_root),
                 "options": {"domain": d}, "input_size": size,
                 "sigma": args.sigma, "train_split": "train", "val_split": "val"}
                for d in ("head", "hand", "chest")]
    if args.dataset == "isbi2015":
        return [{"name": "head", "dataset": "isbi2015", "root": args.root,
                 "options": {"annotator": "senior"}, "input_size": size,
                 "sigma": args.sigma, "train_split": "gu2net-train",
                 "val_split": "gu2net-val"}]
    raise SystemExit(f"unknown --dataset {args.dataset!r}")


TEST_SPLIT = {"synthetic": "test", "isbi2015": "test1"}


def evaluate_family(detector: Detector, cfg, args, threads) -> dict:
    """Score a Detector on the held-out split of every domain; time one in-memory image
    (preprocessing + model + decoding, and stage 2 for a cascade)."""
    per_domain, all_px, all_mm, ms = {}, [], [], []
    for dc in cfg.domains:
        spec = build_dataset(dc.dataset, dc.root, **dc.options)
        records = spec.split_records(TEST_SPLIT[args.dataset])
        results = detector.predict_many([r.image_path for r in records], dc.name)
        pred = np.stack([r.points for r in results])
        truth = truth_points(records)
        e_px = radial_errors(pred, truth)
        entry = {"mre_px": float(np.nanmean(e_px)), "n_images": len(records)}
        all_px.append(e_px[np.isfinite(e_px)])
        if all(r.spacing for r in records):
            scale = np.array([r.spacing for r in records])[:, None, :]
            e_mm = radial_errors(pred, truth, scale)
            entry["mre_mm"] = float(np.nanmean(e_mm))
            entry["sdr_mm"] = {f"{t:.1f}": float(100 * np.mean(e_mm[np.isfinite(e_mm)] <= t))
                               for t in spec.thresholds}
            all_mm.append(e_mm[np.isfinite(e_mm)])
        per_domain[dc.name] = entry
        array, spacing = read_image(records[0].image_path)
        for i in range(6):
            t0 = time.perf_counter()
            detector.predict(array, dc.name, spacing=spacing)
            if i:
                ms.append(1000 * (time.perf_counter() - t0))
    px = np.concatenate(all_px)
    mm = np.concatenate(all_mm) if all_mm else None
    thresholds = (2.0, 2.5, 3.0, 4.0) if args.dataset == "isbi2015" else (1.0, 2.0, 4.0)
    if mm is not None and args.dataset == "isbi2015":
        sdr = {f"{t:.1f}mm": float(100 * np.mean(mm <= t)) for t in thresholds}
    else:
        sdr = {f"{t:.1f}px": float(100 * np.mean(px <= t)) for t in thresholds}
    params = count_parameters(detector.model)
    for refiner in detector.refiners:
        params += count_parameters(refiner.model)
    return {"mre_px": float(px.mean()), "mre_mm": float(mm.mean()) if mm is not None else None,
            "sdr": sdr, "params": params, "ms_per_image": float(np.median(ms)),
            "domains": per_domain, "threads": threads}


def train_family(model, a, work, data_root, threads, input_size=None, name=None):
    cfg = load_config(data={
        "name": f"compare-{name or model}", "out_dir": str(work / (name or model)),
        "domains": domains_for(a, data_root, input_size),
        "model": {"name": model, "width": a.width, "depth": a.depth,
                  "global_width": 2 * a.width},
        "optim": {"cycle_epochs": 3},
        "train": {"epochs": a.epochs, "batch_size": a.batch, "seed": 0, "threads": threads,
                  "cache_dir": None if a.dataset == "synthetic" else "cache"}})
    return cfg, fit(cfg, progress=False, log=lambda *_: None)


def train_cascade(a, work, data_root, threads):
    """Coarse-to-fine: ``heatmap`` on half the input, then a patch refiner at full scale."""
    half = (a.input[0] // 2, a.input[1] // 2)
    cfg, stage1 = train_family("heatmap", a, work, data_root, threads, half, "cascade-stage1")
    scale = 1.0 if a.dataset == "synthetic" else 2.0
    refine = load_config(data={
        "name": "compare-cascade", "out_dir": str(work / "cascade"),
        "stage": {"kind": "patch", "previous": str(stage1.best_path),
                  "patch_size": 24 if a.dataset == "synthetic" else 64, "scale": scale,
                  "sigma": a.sigma},
        "model": {"name": "heatmap", "width": a.width, "depth": a.depth},
        "optim": {"schedule": "constant", "lr": 1e-3},
        "train": {"epochs": a.epochs, "batch_size": 32, "seed": 0, "threads": threads,
                  "cache_dir": cfg.train.cache_dir}})
    return cfg, fit(refine, progress=False, log=lambda *_: None)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="synthetic phantoms, CPU minutes")
    p.add_argument("--dataset", default=None, help="synthetic (default) or isbi2015")
    p.add_argument("--root", default="../shared/data/isbi2015")
    p.add_argument("--families", default=None, help="comma-separated model names")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--batch", type=int, default=6)
    p.add_argument("--size", default=None, help="input WxH")
    p.add_argument("--sigma", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    a.dataset = a.dataset or "synthetic"
    a.epochs = a.epochs or (30 if a.quick or a.dataset == "synthetic" else 20)
    size = a.size or ("64x64" if a.dataset == "synthetic" else "208x256")
    a.input = tuple(int(v) for v in size.lower().split("x"))
    threads = a.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    chosen = [f for f in FAMILIES if not a.families or f[1] in a.families.split(",")]
    work = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="families-"))
    data_root = work / "phantoms"
    if a.dataset == "synthetic":
        make_synthetic(data_root, train=40, val=10, test=15, size=a.input, seed=11)
    rows = []
    for family, model in chosen:
        t0 = time.time()
        if model == "cascade":
            cfg, cascade = train_cascade(a, work, data_root, threads)
            best = cascade.best_path
        else:
            cfg, run = train_family(model, a, work, data_root, threads)
            best = run.best_path
        train_s = time.time() - t0
        detector = Detector.from_checkpoint(best)
        row = {"name": family, "model": model,
               "survey_family": (MODELS[model].family if model in MODELS
                                 else "coarse-to-fine multi-stage"),
               "train_s": round(train_s, 1), **evaluate_family(detector, cfg, a, threads)}
        rows.append(row)
        mm = f"{row['mre_mm']:.3f}" if row["mre_mm"] is not None else "-"
        print(f"{family:42s} MRE {row['mre_px']:7.3f} px  {mm:>7s} mm  "
              f"params {row['params']:>9,d}  train {train_s:6.1f} s  "
              f"{row['ms_per_image']:6.1f} ms/img", flush=True)
    payload = {"benchmark": "compare_families", "dataset": a.dataset, "epochs": a.epochs,
               "input": list(a.input), "width": a.width, "depth": a.depth,
               "machine": machine(), "families": rows}
    write_json(a.json, payload)
    return payload


if __name__ == "__main__":
    main()
