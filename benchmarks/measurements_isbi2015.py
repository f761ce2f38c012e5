"""ISBI 2015 clinical measurements (ANB, SNB, SNA, ODI, APDI, FHI, FHA, MW): a model and
the junior annotator (the human baseline) scored on test1 and test2, and the ground
truth's class counts per split (senior annotator).

Per measurement: mean absolute error (degrees, mm or ratio), class accuracy and the
balanced SCR (mean per-class recall over the classes present in the ground truth). The
junior annotator is scored against the senior (the challenge's ground truth) and against
the mean of both; a model (``--checkpoint``, ``builtin`` for the built-in model, or a
prediction CSV from ``--predictions``) against the senior and the mean.

    python benchmarks/measurements_isbi2015.py --root ../shared/data/isbi2015 \\
        --json measurements_junior.json                       # human baseline only
    python benchmarks/measurements_isbi2015.py --checkpoint builtin \\
        --root ../shared/data/isbi2015 --csv builtin.csv --json measurements_builtin.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_json  # noqa: E402
from unilandmark import isbi2015
from unilandmark.evaluation.scoring import match_predictions
from unilandmark.measure import builtin_specs, classify_batch, measure_batch
from unilandmark.measure.evaluation import measurement_report
from unilandmark.measure.scoring import COORDINATES, evaluate_records
from unilandmark.predictions.table import read_predictions, write_predictions

SPLITS = ("test1", "test2")


def class_counts(spec, dataset, split: str, truncate: bool) -> dict:
    """{measurement: {class: count}} of the ground truth of ``split``."""
    records = dataset.split_records(split)
    points = np.stack([r.points for r in records])
    spacing = np.array([r.spacing for r in records], dtype=np.float64)
    values = measure_batch(spec, points, dataset.landmark_names, spacing, False, truncate)
    return {name: {int(c): int((cls == c).sum()) for c in np.unique(cls[cls > 0])}
            for name, cls in classify_batch(spec, values).items()}


def predict_csv(checkpoint: str, root: str, out: str) -> str:
    from unilandmark.inference.detector import Detector, result_rows

    senior = isbi2015(root, "senior")
    records = [r for s in SPLITS for r in senior.split_records(s)]
    detector = Detector.from_checkpoint(None if checkpoint == "builtin" else checkpoint)
    results = detector.predict_many([r.image_path for r in records], "head")
    write_predictions(out, result_rows(results))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data/isbi2015")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", default=None,
                     help="checkpoint to predict test1+test2 with ('builtin': the built-in "
                          "model)")
    src.add_argument("--predictions", default=None, help="prediction CSV of test1+test2")
    p.add_argument("--csv", default=None, help="where --checkpoint writes its predictions")
    p.add_argument("--truncate", action="store_true",
                   help="truncate coordinates to integers (the organisers' code)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    spec = builtin_specs()["isbi2015"]
    data = {who: isbi2015(a.root, who) for who in ("senior", "junior", "mean")}
    names = data["senior"].landmark_names

    predictions = a.predictions
    if a.checkpoint:
        predictions = predict_csv(a.checkpoint, a.root,
                                  a.csv or str(Path(tempfile.mkdtemp()) / "predictions.csv"))
    table = read_predictions(predictions) if predictions else None

    out = {"benchmark": "measurements_isbi2015", "spec": spec.name,
           "coordinates": COORDINATES[a.truncate], "model": a.checkpoint or a.predictions,
           "class_counts": {s: class_counts(spec, data["senior"], s, a.truncate)
                            for s in ("train", *SPLITS)},
           "splits": {}}
    for split in SPLITS:
        junior = np.stack([r.points for r in data["junior"].split_records(split)])
        scores = {}
        if table is not None:
            for who in ("senior", "mean"):
                records = data[who].split_records(split)
                pred = match_predictions(table, data[who], records)
                scores[f"model_vs_{who}"] = measurement_report(
                    predictions, data[who], records, pred, spec, a.truncate)
        for who in ("senior", "mean"):
            records = data[who].split_records(split)
            scores[f"junior_vs_{who}"] = evaluate_records(spec, records, junior, names,
                                                          False, a.truncate)
        out["splits"][split] = scores
    print_tables(spec, out)
    write_json(a.json, out)
    return out


def print_tables(spec, out: dict) -> None:
    print(f"ground-truth classes (senior annotator), coordinates {out['coordinates']}")
    print("| measurement | " + " | ".join(out["class_counts"]) + " |")
    print("|---|" + "---|" * len(out["class_counts"]))
    for name in spec.classified():
        cells = [" / ".join(f"{c}: {n}" for c, n in counts[name].items())
                 for counts in out["class_counts"].values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    for split, scores in out["splits"].items():
        print(f"\n{split}: MAE / accuracy % / balanced SCR %")
        print("| measurement | unit | " + " | ".join(s.replace("_", " ") for s in scores) + " |")
        print("|---|---|" + "---|" * len(scores))
        for i, name in enumerate(spec.names):
            cells = []
            for section in scores.values():
                r = section["measurements"][i]
                digits = ".4f" if r["unit"] == "ratio" else ".3f"
                cells.append(f"{r['mae']:{digits}} / {100 * r['accuracy']:.1f} / "
                             f"{100 * r['scr']:.1f}")
            print(f"| {name} | {spec.unit(name)} | " + " | ".join(cells) + " |")
        means = [f"{100 * s['mean_accuracy']:.1f} / {100 * s['mean_scr']:.1f}"
                 for s in scores.values()]
        print("| mean | | " + " | ".join(means) + " |")


if __name__ == "__main__":
    main()
