"""How many corrected images a new site needs: the learning curve of site adaptation.

The site shift that the project's data holds: ISBI 2015's two annotators. The built-in
``head`` model learned the senior annotator; the "site" is the junior annotator, whose
conventions differ by 2.36 mm on test1. For every N (default 5, 10, 20, 40) and draw (N
images drawn at random from the 150 training images 1-150, a new draw per seed), the
senior model is adapted to the junior's labels of those N images with ``unilandmark adapt``
(``workflows.adapt``, the site defaults: same landmarks, replacing the domain), then
scored against the junior on test1 (151-300) and test2 (301-400). Beside it:

- ``unadapted``: the senior and the mean-annotator models as they are, against the junior
  (the new site) and the senior;
- ``ceiling``: the senior model adapted with all 150 junior-labelled images (the same
  recipe with ``CEILING_EPOCHS``: about four times the steps, each image seen about as
  often as at N=40);
- ``mean->senior``: the mean-annotator model (``head-mean``) adapted to the senior (the
  challenge's protocol), scored against the senior.

Each arm also reports the convention report of its model on the test images: the
per-landmark mean offset from the site's annotations (``evaluation.conventions``) and
what remains of it after the offset is removed.

    python benchmarks/site_adaptation.py --json docs/results/site_adaptation.json
    python benchmarks/site_adaptation.py --sizes 20 --draws 1 --json /tmp/pilot.json

Output: ``{"arms": [{"arm", "n", "draw", "source", "target", "test1": {...},
"test2": {...}, "adapt_s"}, ...], "summary": {...}, "settings": {...}, "machine": {...}}``.
Each test entry: mre, median, sdr, offset_mm (the mean per-landmark offset magnitude),
mre_offset_removed.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402
from unilandmark import isbi2015
from unilandmark.core.metrics import radial_errors
from unilandmark.core.types import truth_points
from unilandmark.evaluation.conventions import convention_offsets
from unilandmark.inference.detector import Detector
from unilandmark.workflows import adapt as adapt_workflow
from unilandmark.workflows.adapt import (
    FEW_SHOT_RECIPE,
    SITE_RECIPE,
    AdaptRequest,
    run_adaptation,
)

ROOT = Path(__file__).resolve().parents[1]
SIZES = (5, 10, 20, 40)
#: the ceiling's epochs (whole image, patch): about 560 and 360 steps on 150 images, about
#: four times the site recipe's (its images are seen about as often as N=40's)
CEILING_EPOCHS = (15, 4)
#: the recipes compared at one N (``--recipe``): what site mode trains with
RECIPES = {"site": SITE_RECIPE, "few-shot": FEW_SHOT_RECIPE,
           "site-half": {**SITE_RECIPE, "image_steps": 75, "patch_steps": 75},
           "site-double": {**SITE_RECIPE, "image_steps": 300, "patch_steps": 300}}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=str(ROOT.parent / "shared" / "data" / "isbi2015"))
    p.add_argument("--json", help="write the results here")
    p.add_argument("--work", help="working folder (default: a temporary one)")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--draws", type=int, default=3, help="draws of images per size")
    p.add_argument("--arms", default="unadapted,curve,ceiling,mean-senior")
    p.add_argument("--mean-senior-sizes", default="20")
    p.add_argument("--epochs", type=int, help="whole-image stage epochs (default: adapt's)")
    p.add_argument("--patch-epochs", type=int, help="patch stage epochs (default: adapt's)")
    p.add_argument("--recipe", default="site", choices=sorted(RECIPES),
                   help="adaptation recipe: the site default (SITE_RECIPE), the few-shot "
                        "anatomy recipe, or the site recipe with half or double the steps")
    p.add_argument("--shared", default="finetune", choices=("finetune", "frozen"),
                   help="adapt's --shared: which parts train (frozen: the domain's own only)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    return p.parse_args(argv)


def write_table(path: Path, records, names) -> None:
    """A wide ``csv`` dataset table of ``records`` (image paths absolute, spacing)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "image", "spacing_x", "spacing_y"] +
                   [f"{n}_{a}" for n in names for a in "xy"])
        for r in records:
            w.writerow([r.id, str(Path(r.image_path).resolve()), *r.spacing] +
                       [f"{v:.3f}" for v in r.points.reshape(-1)])


def score(detector: Detector, domain: str, records, truth_spec_records) -> dict:
    """The model's errors on ``records`` against ``truth_spec_records`` (same ids)."""
    results = detector.predict_many([r.image_path for r in records], domain)
    pred = np.stack([r.points for r in results])
    truth = truth_points(truth_spec_records)
    spacing = np.array([r.spacing for r in truth_spec_records])[:, None, :]
    err = radial_errors(pred, truth, spacing)
    conv = convention_offsets(pred, truth, spacing)
    removed = radial_errors(pred - conv["mean_px"][None], truth, spacing)
    return {"mre": float(np.nanmean(err)), "median": float(np.nanmedian(err)),
            "sdr": {str(t): float(100 * np.mean(err <= t)) for t in (2.0, 2.5, 3.0, 4.0)},
            "offset_mm": float(np.mean(conv["magnitude"])),
            "mre_offset_removed": float(np.nanmean(removed)),
            "per_landmark_offset_mm": [float(v) for v in conv["magnitude"]],
            "n_images": len(records)}


def evaluate(model, domain, target: str, tests: dict) -> dict:
    detector = Detector.from_checkpoint(model)
    return {name: score(detector, domain, recs[0], recs[1 if target == "junior" else 2])
            for name, recs in tests.items()}


def adapt(source: str, train_records, names, out: Path, seed: int, a,
          epochs: tuple[int | None, int | None] = (None, None)) -> tuple[Path, float]:
    table = out / "site.csv"
    out.mkdir(parents=True, exist_ok=True)
    write_table(table, train_records, names)
    req = AdaptRequest(data=str(table), domain="head", out=str(out / "adapt"),
                       dataset="csv", checkpoint=source, epochs=a.epochs or epochs[0],
                       patch_epochs=a.patch_epochs or epochs[1], seed=seed, device=a.device,
                       threads=a.threads, cache_dir=str(out / "cache"), shared=a.shared)
    t0 = time.time()
    result = run_adaptation(req, overwrite=True, progress=False, log=lambda s: None)
    return result.model_path, time.time() - t0


def main(argv=None):
    a = parse(argv)
    import torch

    torch.set_num_threads(a.threads)
    adapt_workflow.SITE_RECIPE = RECIPES[a.recipe]  # the recipe site mode trains with
    senior, junior = isbi2015(a.root, "senior"), isbi2015(a.root, "junior")
    names = list(senior.landmark_names)
    by_id = {"senior": {r.id: r for r in senior.records},
             "junior": {r.id: r for r in junior.records}}
    train_ids = [i for i in senior.splits["gu2net-train"] + senior.splits["gu2net-val"]]
    tests = {}
    for split in ("test1", "test2"):
        ids = senior.splits[split]
        tests[split] = ([by_id["senior"][i] for i in ids], [by_id["junior"][i] for i in ids],
                        [by_id["senior"][i] for i in ids])
    arms = set(a.arms.split(","))
    work = Path(a.work or tempfile.mkdtemp(prefix="site_adapt_"))
    rows = []

    def record(row):
        rows.append(row)
        t1, t2 = row["test1"], row["test2"]
        print(f"{row['arm']:>12} N={row['n']:>3} draw={row['draw']} {row['target']}: "
              f"test1 {t1['mre']:.3f} mm (offset {t1['offset_mm']:.2f}), test2 "
              f"{t2['mre']:.3f} mm (offset {t2['offset_mm']:.2f}) "
              f"adapt {row.get('adapt_s', 0):.0f} s", flush=True)
        write_json(a.json, payload())

    def payload():
        return {"arms": rows, "summary": summarise(rows),
                "settings": {"sizes": a.sizes, "draws": a.draws, "epochs": a.epochs,
                             "recipe": {"name": a.recipe, **RECIPES[a.recipe]},
                             "patch_epochs": a.patch_epochs, "threads": a.threads},
                "machine": machine()}

    if "unadapted" in arms:
        for source, target in (("head", "junior"), ("head-mean", "junior"),
                               ("head-mean", "senior"), ("head", "senior")):
            record({"arm": "unadapted", "n": 0, "draw": 0, "source": source,
                    "target": target, **evaluate(source, "head", target, tests)})
    plan = []
    if "curve" in arms:
        plan += [("curve", "head", "junior", int(n), d) for n in a.sizes.split(",")
                 for d in range(a.draws)]
    if "mean-senior" in arms:
        plan += [("mean->senior", "head-mean", "senior", int(n), d)
                 for n in a.mean_senior_sizes.split(",") for d in range(a.draws)]
    if "ceiling" in arms:
        plan.append(("ceiling", "head", "junior", len(train_ids), 0))
    for arm, source, target, n, draw in plan:
        rng = np.random.default_rng(1000 * n + draw)
        ids = sorted(rng.choice(train_ids, size=n, replace=False)) if n < len(train_ids) \
            else list(train_ids)
        model, seconds = adapt(source, [by_id[target][i] for i in ids], names,
                               work / f"{arm.replace('>', '')}_{n}_{draw}", draw, a,
                               CEILING_EPOCHS if arm == "ceiling" else (None, None))
        record({"arm": arm, "recipe": a.recipe, "shared": a.shared, "n": n, "draw": draw,
                "source": source,
                "target": target,
                "ids": ids, "adapt_s": seconds, **evaluate(model, "head", target, tests)})
    print(f"results in {a.json or '(no --json)'}; work folder {work}")


def summarise(rows) -> dict:
    """Per (arm, n, target): mean and spread (min, max, SD over draws) of each test MRE,
    and for the curve the fraction of the unadapted-to-ceiling gap closed."""
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["arm"], r["source"], r["target"], r["n"]), []).append(r)
    out = {}
    base = {g[1:3]: rs[0] for g, rs in groups.items() if g[0] == "unadapted"}
    ceiling = next((rs[0] for g, rs in groups.items() if g[0] == "ceiling"), None)
    for (arm, source, target, n), rs in groups.items():
        entry = {"arm": arm, "source": source, "target": target, "n": n, "draws": len(rs)}
        for test in ("test1", "test2"):
            v = np.array([r[test]["mre"] for r in rs])
            entry[test] = {"mre_mean": float(v.mean()), "mre_min": float(v.min()),
                           "mre_max": float(v.max()),
                           "mre_sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
            b = base.get((source, target))
            if arm == "curve" and b and ceiling:
                gap = b[test]["mre"] - ceiling[test]["mre"]
                closed = (b[test]["mre"] - v) / gap if gap > 0 else v * np.nan
                entry[test]["gap_closed_mean"] = float(np.mean(closed))
                entry[test]["gap_closed_min"] = float(np.min(closed))
        out[f"{arm} {source}->{target} N={n}"] = entry
    return out


if __name__ == "__main__":
    main()
