"""A new anatomy from a handful of labelled images: scratch vs adapted vs universal.

On the real hand set (9 images, header spacing, errors in mm) and chest set (11 images,
errors in pixels of the stored images) in ``../shared/data``, k-fold cross-validation:
every image is predicted once by a model that never saw it (folds: the sorted ids, every
k-th to a fold; no validation split: the checkpoint is the last epoch). Three arms, all
with the built-in model's architecture, the same input size, augmentation, optimiser and
number of passes over the new domain's images:

- ``scratch``: the new domain alone, from random weights;
- ``adapted``: the built-in head model with the new domain added
  (``init: {checkpoint: builtin, domains: {NEW: head}}``, the ``unilandmark adapt``
  defaults: shared parts fine-tuned at 0.1 x the learning rate, no replay);
- ``universal``: the ISBI 2015 head training set and the new domain in one model from
  random weights; every epoch interleaves as many head batches as new-domain batches, so
  it takes twice the steps of the other arms (its ``train_s`` shows it).

Plus a learning curve on the phantoms: a phantom-head model, then the phantom hand with
1, 2, 4, 8 and 16 training images, scratch vs adapted (same steps for every size), scored
on 16 test phantoms in pixels.

    python benchmarks/few_shot.py --json out/few_shot.json        # the full run (~30 min)
    python benchmarks/few_shot.py --seeds 3 --arms scratch,adapted --no-curve \
        --json out/few_shot_seeds.json                             # the spread over seeds
    python benchmarks/few_shot.py --quick --json out/quick.json   # a smoke run (minutes)

Output: ``{"arms": [{"domain": "hand" | "chest", "arm": "scratch" | "adapted" |
"universal", "mre", "unit": "mm" | "px", "median", "sdr": {threshold: %}, "train_s"},
...], "curve": [{"n_train", "arm", "mre", "unit", "median", "train_s"}, ...],
"settings": {...}, "machine": {...}}``.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402
from unilandmark.checkpoints.checkpoint import load_checkpoint, stage_chain
from unilandmark.core.metrics import radial_errors, summarise
from unilandmark.data.adapters.catalog import build_dataset
from unilandmark.data.synthetic import make_synthetic
from unilandmark.inference.detector import PRETRAINED_DIR, PRETRAINED_NAME, Detector
from unilandmark.training.config import load_config
from unilandmark.training.fit import fit
from unilandmark.workflows.adapt import ADAPT_OPTIM, FEW_SHOT_AUGMENT

ROOT = Path(__file__).resolve().parents[1]
#: the real new domains: adapter, folder under the data root, network input (W, H)
NEW_DOMAINS = {
    "hand": {"dataset": "dha_hand", "folder": "hand_xray", "input": (128, 192)},
    "chest": {"dataset": "shenzhen_chest", "folder": "chest_shenzhen", "input": (160, 160)},
}
#: the head set of the universal arm (ISBI 2015, GU2Net's training split)
HEAD = {"dataset": "isbi2015", "folder": "isbi2015", "options": {"annotator": "mean"},
        "train_split": "gu2net-train", "input": (160, 192)}
ARMS = ("scratch", "adapted", "universal")
CURVE_SIZES = (1, 2, 4, 8, 16)


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"),
                   help="folder holding hand_xray/, chest_shenzhen/ and isbi2015/")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--work", help="working folder (default: a temporary one)")
    p.add_argument("--checkpoint", help="model to adapt (default: the built-in model)")
    p.add_argument("--domains", default="hand,chest")
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--only-fold", type=int, help="run this fold only (development)")
    p.add_argument("--steps", type=int, default=150,
                   help="optimisation steps on the new domain per fold and arm")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seeds", type=int, default=1,
                   help="repeat every arm with this many seeds: seed s trains with seed s "
                        "and (s > 0) draws the folds at random; the JSON's 'spread' gives "
                        "each arm's mean, SD, min and max over seeds and each pair of arms' "
                        "difference per seed")
    p.add_argument("--curve-steps", type=int, default=120)
    p.add_argument("--no-curve", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--optim", action="append", default=[], metavar="KEY=VALUE",
                   help="override an optimiser setting of every arm (repeatable)")
    p.add_argument("--init", action="append", default=[], metavar="KEY=VALUE",
                   help="override an init: setting of the adapted arm, e.g. shared=frozen")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 2 folds, a few steps, a tiny curve")
    args = p.parse_args(argv)
    if args.quick:
        args.folds, args.steps, args.curve_steps = 2, 4, 4
    args.optim = {**ADAPT_OPTIM, **_pairs(args.optim, "--optim")}
    args.init = _pairs(args.init, "--init")
    return args


def _pairs(items: list[str], option: str) -> dict:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{option} {item!r}: expected KEY=VALUE")
        out[key] = yaml.safe_load(value)
    return out


# -- folds --------------------------------------------------------------------------
def fold_ids(ids: list[str], folds: int, seed: int = 0) -> list[list[str]]:
    """Sorted ids, every ``folds``-th to a fold; ``seed`` > 0 shuffles them first (another
    draw of the folds)."""
    ids = sorted(ids)
    if seed:
        ids = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    return [ids[i::folds] for i in range(folds)]


def write_fold_table(spec, test_ids: set[str], path: Path) -> Path:
    """A wide CSV of ``spec``'s records with ``split`` train/test (and each record's
    spacing), read by the csv adapter: a fold without touching the dataset's files. A
    single training image is listed twice (a training batch needs two samples; each
    copy is augmented on its own), the same for every arm."""
    k = spec.num_landmarks
    header = ["id", "image", "split", "spacing_x", "spacing_y"] + \
        [c for i in range(1, k + 1) for c in (f"x{i}", f"y{i}")]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        train = [r for r in spec.records if r.id not in test_ids]
        copies = [(r, f"{r.id}-copy") for r in train] if len(train) == 1 else []
        for r, rid in [(r, r.id) for r in spec.records] + copies:
            sp = r.spacing or ("", "")
            w.writerow([rid, str(Path(r.image_path).resolve()),
                        "test" if r.id in test_ids else "train", sp[0], sp[1]] +
                       [repr(float(v)) for v in r.points.ravel()])
    return path


def steps_to_epochs(steps: int, n_train: int, batch_size: int) -> int:
    batches = max(1, math.ceil(max(2, n_train) / batch_size))
    return max(1, math.ceil(steps / batches))


# -- one training -------------------------------------------------------------------
def domain_entry(name, dataset, root, input_size, options=None, train_split="train",
                 val_split=None):
    return {"name": name, "dataset": dataset, "root": str(root), "options": options or {},
            "train_split": train_split, "val_split": val_split,
            "input_size": list(input_size), "sigma": 2.0}


def train_arm(arm: str, new: dict, head: dict | None, model: dict, epochs: int, args,
              out: Path, checkpoint: str, batches_new: int, seed: int = 0):
    domains = [new]
    data = {"name": f"few-shot-{arm}", "out_dir": str(out), "domains": domains,
            "optim": dict(args.optim),
            "train": {"epochs": epochs, "batch_size": args.batch_size, "seed": seed,
                      "cache_dir": str(Path(args.work) / "cache"), "threads": args.threads,
                      "augment": FEW_SHOT_AUGMENT}}
    if arm == "adapted":
        data["init"] = {"checkpoint": checkpoint, "domains": {new["name"]: "head"},
                        **args.init}
    else:
        data["model"] = model
    if arm == "universal":
        domains.append(head)
        data["train"]["max_steps_per_epoch"] = 2 * batches_new  # new, head, new, head, ...
    config = load_config(data=data)
    t0 = time.perf_counter()
    result = fit(config, overwrite=True, progress=False, log=lambda *_: None)
    return result.best_path, time.perf_counter() - t0


def scores(pred: np.ndarray, records, thresholds) -> dict:
    truth = np.stack([r.points for r in records])
    if all(r.spacing for r in records):
        scale, unit = np.array([r.spacing for r in records])[:, None, :], "mm"
    else:
        scale, unit = None, "px"
    s = summarise(radial_errors(pred, truth, scale), thresholds)
    return {"mre": s["mre"], "unit": unit, "median": s["median"], "sdr": s["sdr"]}


def run_domain(name: str, args, model: dict, checkpoint: str, seed: int = 0) -> list[dict]:
    info = NEW_DOMAINS[name]
    data = Path(args.data)
    spec = build_dataset(info["dataset"], data / info["folder"])
    head = domain_entry("head", HEAD["dataset"], data / HEAD["folder"], HEAD["input"],
                        HEAD["options"], HEAD["train_split"])
    folds = fold_ids([r.id for r in spec.records], args.folds, seed)
    arms = [a for a in args.arms.split(",") if a]
    by_id = spec.record_map()
    predictions = {a: {} for a in arms}
    train_s = dict.fromkeys(arms, 0.0)
    for i, test in enumerate(folds):
        if args.only_fold is not None and i != args.only_fold:
            continue
        table = write_fold_table(spec, set(test), Path(args.work) / "folds" / name /
                                 f"seed{seed}_fold{i}.csv")
        n_train = len(spec.records) - len(test)
        new = domain_entry(name, "csv", table, info["input"],
                           {"domain": name, "thresholds": list(spec.thresholds)})
        epochs = steps_to_epochs(args.steps, n_train, args.batch_size)
        batches = math.ceil(max(2, n_train) / args.batch_size)
        for arm in arms:
            out = Path(args.work) / "runs" / name / arm / f"seed{seed}_fold{i}"
            best, seconds = train_arm(arm, new, head, model, epochs, args, out, checkpoint,
                                      batches, seed)
            train_s[arm] += seconds
            detector = Detector.from_checkpoint(best)
            results = detector.predict_many([by_id[t].image_path for t in test], name,
                                            orientation="original")
            for t, r in zip(test, results, strict=True):
                predictions[arm][t] = r.points
            print(f"{name} seed {seed} fold {i + 1}/{len(folds)} {arm}: {seconds:.0f} s",
                  flush=True)
    rows = []
    for arm in arms:
        ids = sorted(predictions[arm])
        if not ids:
            continue
        records = [by_id[t] for t in ids]
        pred = np.stack([predictions[arm][t] for t in ids])
        rows.append({"domain": name, "arm": arm, "seed": seed,
                     **scores(pred, records, spec.thresholds),
                     "train_s": round(train_s[arm], 1)})
    return rows


def spread(rows: list[dict]) -> dict:
    """Over seeds: each (domain, arm)'s MRE mean, SD, min and max; each pair of arms'
    difference (first minus second) per seed, its mean, min and max, and ``consistent``:
    the same sign in every seed (with one seed: not judged)."""
    out = {"arms": {}, "differences": {}}
    by = {}
    for r in rows:
        by.setdefault(r["domain"], {}).setdefault(r["arm"], {})[r["seed"]] = r["mre"]
    for domain, arms in by.items():
        for arm, per_seed in arms.items():
            v = np.array(list(per_seed.values()))
            out["arms"][f"{domain} {arm}"] = {
                "mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else None,
                "min": float(v.min()), "max": float(v.max()), "seeds": len(v)}
        names = sorted(arms)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                seeds = sorted(set(arms[a]) & set(arms[b]))
                d = np.array([arms[a][s] - arms[b][s] for s in seeds])
                if not len(d):
                    continue
                out["differences"][f"{domain} {a} - {b}"] = {
                    "per_seed": d.tolist(), "mean": float(d.mean()), "min": float(d.min()),
                    "max": float(d.max()),
                    "consistent": bool(len(d) > 1 and (np.all(d > 0) or np.all(d < 0)))}
    return out


# -- the learning curve on the phantoms -----------------------------------------------
PHANTOM_MODEL = {"name": "gu2net", "width": 16, "depth": 3, "global_width": 32}


def run_curve(args) -> list[dict]:
    work = Path(args.work) / "curve"
    quick = args.quick
    make_synthetic(work / "head", domains=("head",), train=8 if quick else 60,
                   val=4 if quick else 10, test=0, size=(64, 64), seed=5)
    make_synthetic(work / "hand", domains=("hand",), train=max(CURVE_SIZES), val=0,
                   test=4 if quick else 16, size=(64, 64), seed=7)
    head_dom = domain_entry("head", "synthetic", work / "head", (64, 64), {"domain": "head"},
                            "train", "val")
    head_cfg = load_config(data={
        "out_dir": str(work / "head_model"), "domains": [head_dom], "model": PHANTOM_MODEL,
        "optim": {"cycle_epochs": 3},
        "train": {"epochs": 2 if quick else 40, "batch_size": 6, "cache_dir": None,
                  "threads": args.threads}})
    head_model = fit(head_cfg, overwrite=True, progress=False, log=lambda *_: None).best_path
    spec = build_dataset("synthetic", work / "hand", domain="hand")
    train, test = spec.split_records("train"), spec.split_records("test")
    rows = []
    for n in CURVE_SIZES:
        table = write_fold_table(
            _subset(spec, {r.id for r in train[:n]} | {r.id for r in test}),
            {r.id for r in test}, work / f"hand_{n}.csv")
        new = domain_entry("hand", "csv", table, (64, 64), {"domain": "hand"})
        epochs = steps_to_epochs(args.curve_steps, n, args.batch_size)
        for arm in ("scratch", "adapted"):
            data = {"out_dir": str(work / f"{arm}_{n}"), "domains": [new],
                    "optim": dict(args.optim),
                    "train": {"epochs": epochs, "batch_size": args.batch_size,
                              "cache_dir": None, "threads": args.threads,
                              "augment": FEW_SHOT_AUGMENT}}
            if arm == "adapted":
                data["init"] = {"checkpoint": str(head_model), "domains": {"hand": "head"},
                                **args.init}
            else:
                data["model"] = PHANTOM_MODEL
            t0 = time.perf_counter()
            best = fit(load_config(data=data), overwrite=True, progress=False,
                       log=lambda *_: None).best_path
            seconds = time.perf_counter() - t0
            results = Detector.from_checkpoint(best).predict_many(
                [r.image_path for r in test], "hand", orientation="original")
            pred = np.stack([r.points for r in results])
            s = summarise(radial_errors(pred, np.stack([r.points for r in test])), [2.0])
            rows.append({"n_train": n, "arm": arm, "mre": s["mre"], "unit": "px",
                         "median": s["median"], "train_s": round(seconds, 1)})
            print(f"curve n={n} {arm}: {s['mre']:.2f} px ({seconds:.0f} s)", flush=True)
    return rows


def _subset(spec, ids: set[str]):
    from dataclasses import replace

    return replace(spec, records=tuple(r for r in spec.records if r.id in ids))


def main(argv=None) -> dict:
    args = parse(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="few_shot_")
        args.work = tmp.name
    checkpoint = args.checkpoint or str(PRETRAINED_DIR / PRETRAINED_NAME)
    model = stage_chain(load_checkpoint(checkpoint))[0]["config"]["model"]
    t0 = time.perf_counter()
    rows = []
    for name in [d for d in args.domains.split(",") if d]:
        if not (Path(args.data) / NEW_DOMAINS[name]["folder"]).is_dir():
            print(f"skipping {name}: no data at {Path(args.data) / NEW_DOMAINS[name]['folder']}")
            continue
        for seed in range(args.seeds):
            rows += run_domain(name, args, model, checkpoint, seed)
    curve = [] if args.no_curve else run_curve(args)
    payload = {"arms": rows, "spread": spread(rows), "curve": curve,
               "settings": {"folds": args.folds, "steps": args.steps,
                            "batch_size": args.batch_size, "curve_steps": args.curve_steps,
                            "seeds": args.seeds,
                            "inputs": {n: list(v["input"]) for n, v in NEW_DOMAINS.items()},
                            "head_input": list(HEAD["input"]), "model": model,
                            "optim": args.optim, "init": args.init,
                            "augment": FEW_SHOT_AUGMENT,
                            "checkpoint": checkpoint, "quick": args.quick,
                            "total_s": round(time.perf_counter() - t0, 1)},
               "machine": machine()}
    print_table(rows, curve)
    write_json(args.json, payload)
    if tmp is not None:
        tmp.cleanup()
    return payload


def print_table(rows: list[dict], curve: list[dict]) -> None:
    print(f"{'domain':6s} {'arm':9s} {'seed':>4s} {'MRE':>8s} {'median':>8s} {'unit':4s}  SDR"
          f"{'':20s} {'train s':>8s}")
    for r in rows:
        sdr = " ".join(f"{k}:{v:.0f}%" for k, v in r["sdr"].items())
        print(f"{r['domain']:6s} {r['arm']:9s} {r.get('seed', 0):4d} {r['mre']:8.2f} "
              f"{r['median']:8.2f} {r['unit']:4s}  {sdr:22s} {r['train_s']:8.0f}")
    for key, d in spread(rows)["differences"].items():
        per_seed = ", ".join(f"{v:+.2f}" for v in d["per_seed"])
        print(f"{key}: mean {d['mean']:+.2f} (per seed {per_seed})"
              f"{'; consistent' if d['consistent'] else ''}")
    for r in curve:
        print(f"phantom hand n={r['n_train']:<3d} {r['arm']:8s} {r['mre']:6.2f} px")


if __name__ == "__main__":
    main()
