"""Per-landmark offsets between a prediction CSV and each ISBI 2015 annotator, and between
the two annotators, per split: where a model's error is a convention rather than a miss.

    python benchmarks/annotation_drift_isbi2015.py --predictions builtin.csv \\
        --json out/annotation_drift.json

Offsets are means over the split of (prediction - annotation) and (senior - junior) in mm
(0.1 mm per pixel), with each landmark's MRE. ``mre_offset_removed`` is the MRE once each
landmark's mean offset over that split is subtracted: a diagnosis, not a model (it uses
the split's own ground truth), of how much of an error is one constant shift per landmark,
the mark of an annotator placing a landmark by another convention.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402
from unilandmark import isbi2015
from unilandmark.predictions.table import read_predictions

MM_PER_PX = 0.1


def _offsets(a: np.ndarray, b: np.ndarray) -> dict:
    d = (a - b) * MM_PER_PX
    e = np.linalg.norm(d, axis=-1)
    shifted = np.linalg.norm(d - d.mean(0, keepdims=True), axis=-1)
    return {"mre": float(e.mean()), "mre_offset_removed": float(shifted.mean()),
            "per_landmark": [
        {"landmark": k + 1, "offset_mm": [float(v) for v in d[:, k].mean(0)],
         "mre": float(e[:, k].mean())} for k in range(d.shape[1])]}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data/isbi2015")
    p.add_argument("--predictions", nargs="+", default=None,
                   help="prediction CSVs (test1 + test2, and gu2net-val where given); a "
                        "split is scored where every one of its images is predicted")
    p.add_argument("--landmark", type=int, default=16, help="landmark to print (1-based)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    senior, junior = isbi2015(a.root, "senior"), isbi2015(a.root, "junior")
    points = {}
    for path in a.predictions or []:
        points.update(read_predictions(path).points)
    out = {"benchmark": "annotation_drift_isbi2015", "machine": machine(), "splits": {}}
    k = a.landmark - 1
    for split in ("train", "gu2net-val", "test1", "test2"):
        s_recs, j_recs = senior.split_records(split), junior.split_records(split)
        s = np.stack([r.points for r in s_recs])
        j = np.stack([r.points for r in j_recs])
        entry = {"senior_minus_junior": _offsets(s, j)}
        pred = np.array([[points.get((r.id, n + 1), (np.nan, np.nan))
                          for n in range(len(r.points))] for r in s_recs])
        predicted = np.isfinite(pred).all(axis=-1)
        if split != "train" and predicted.any() and not predicted.all():
            print(f"note: {split}: {int((~predicted).sum())} of {predicted.size} points not "
                  "predicted; the model is not scored on this split")
        if split != "train" and predicted.all():
            entry["model_minus_senior"] = _offsets(pred, s)
            entry["model_minus_junior"] = _offsets(pred, j)
        out["splits"][split] = entry
        for name, o in entry.items():
            lk = o["per_landmark"][k]
            print(f"{split:6s} {name:20s} MRE {o['mre']:.3f} mm (offsets removed "
                  f"{o['mre_offset_removed']:.3f}); L{a.landmark} offset "
                  f"({lk['offset_mm'][0]:+.2f}, {lk['offset_mm'][1]:+.2f}) mm, "
                  f"MRE {lk['mre']:.2f} mm")
    write_json(a.json, out)
    return out


if __name__ == "__main__":
    main()
