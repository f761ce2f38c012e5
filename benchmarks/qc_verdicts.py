"""How often each QC verdict is given, and how often it was right (issue 23, "QC a person can
act on"; docs/quality.md).

A built-in head model predicts ISBI 2015 test1 + test2 (in scope: lateral cephalograms)
and the hand and chest X-rays of ``../shared/data`` (out of scope for a head model). Each
image gets a verdict (:func:`unilandmark.quality.verdict.verdict`): ``pass`` (every
landmark as confident as on the validation images), ``review`` ("check these N
landmarks") or ``fail`` (out of scope). Right means:

- a cephalogram: ``pass`` when none of its landmarks is wrong (error above 4 mm);
  ``review`` when every wrong landmark is among those named (nothing wrong left unnamed);
  ``fail`` is never right for a cephalogram the model reads to the millimetre;
- a hand or chest image: ``fail`` (out of scope), whatever the points.

Also: the verdicts of the cephalograms whose every landmark is within 2 mm (they should
not be told to check everything), how many landmarks a ``review`` names (mean, and the
fraction of them that were wrong), and which landmarks are named most.

    OMP_NUM_THREADS=2 python benchmarks/qc_verdicts.py --json docs/results/qc_verdicts.json
    OMP_NUM_THREADS=2 python benchmarks/qc_verdicts.py --checkpoint head-mean --annotator mean \\
        --json docs/results/qc_verdicts_mean.json
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402
from unilandmark import isbi2015
from unilandmark.data.adapters.catalog import build_dataset
from unilandmark.evaluation.protocols import PROTOCOLS
from unilandmark.inference.detector import Detector
from unilandmark.quality.verdict import habitual, verdict

RADIUS_MM = 4.0
GOOD_MM = 2.0
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def in_scope(results, errors: np.ndarray, always: np.ndarray) -> dict:
    """Verdict counts and rightness on cephalograms; errors (N, K) mm; ``always`` (K,) the
    model's habitual landmarks (flagged at typical evidence)."""
    counts, right = Counter(), Counter()
    named, named_wrong, names = 0, 0, Counter()
    good_counts, fine_counts, fine_named = Counter(), Counter(), []
    for r, e in zip(results, errors, strict=True):
        v = verdict(r, always=always)
        wrong = {n for n, err in zip(r.names, e, strict=True) if err > RADIUS_MM}
        counts[v.qc] += 1
        if v.qc == "pass":
            right[v.qc] += not wrong
        elif v.qc == "review":
            right[v.qc] += wrong <= set(v.to_check)
            named += len(v.to_check)
            named_wrong += len(wrong & set(v.to_check))
            names.update(v.to_check)
        if np.nanmax(e) <= GOOD_MM:
            good_counts[v.qc] += 1
        if np.nanmax(e) <= RADIUS_MM:
            fine_counts[v.qc] += 1
            fine_named.append(len(v.to_check))
    n = len(results)
    return {
        "n_images": n,
        "verdicts": {q: {"images": counts[q], "fraction": counts[q] / n,
                         "right": right[q] if q != "fail" else 0,
                         "right_fraction": (right[q] / counts[q]) if counts[q] and q != "fail"
                         else (0.0 if counts[q] else None)}
                     for q in ("pass", "review", "fail")},
        "all_within_2mm": {"images": sum(good_counts.values()),
                           "verdicts": {q: good_counts[q] for q in ("pass", "review", "fail")}},
        "all_within_4mm": {"images": sum(fine_counts.values()),
                           "verdicts": {q: fine_counts[q] for q in ("pass", "review", "fail")},
                           "named_mean": float(np.mean(fine_named)) if fine_named else None,
                           "named_max": int(max(fine_named)) if fine_named else None},
        "review_named_mean": named / counts["review"] if counts["review"] else None,
        "review_named_wrong_fraction": named_wrong / named if named else None,
        "most_named": names.most_common(6),
    }


def out_of_scope(results) -> dict:
    counts = Counter(verdict(r).qc for r in results)
    n = len(results)
    return {"n_images": n, "verdicts": {q: counts[q] for q in ("pass", "review", "fail")},
            "right_fraction": counts["fail"] / n if n else None}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="default: the built-in head model")
    p.add_argument("--annotator", default="senior", choices=("senior", "mean"))
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--limit", type=int, default=None, help="first N images per split (smoke)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    data = Path(a.data)
    t0 = time.time()
    detector = Detector.from_checkpoint(a.checkpoint)
    spec = isbi2015(data / "isbi2015", a.annotator)
    prefix = "isbi2015-" if a.annotator == "senior" else "isbi2015-mean-"
    results, errors = [], []
    for split in ("test1", "test2"):
        recs = spec.split_records(split)[:a.limit]
        res = detector.predict_many([r.image_path for r in recs], "head")
        pred = np.stack([r.points for r in res]).astype(np.float64)
        errors.append(PROTOCOLS[f"{prefix}{split}"].errors(spec, recs, pred))
        results += res
    always = habitual(detector.calibrations.get("head"), len(results[0].names))
    ceph = in_scope(results, np.concatenate(errors), always)
    ceph["always_flagged"] = [n for n, a in zip(results[0].names, always, strict=True) if a]
    other = {}
    for name, adapter in (("hand_xray", "dha_hand"), ("chest_shenzhen", "shenzhen_chest")):
        recs = build_dataset(adapter, data / name).split_records("all")[:a.limit]
        other[name] = out_of_scope(detector.predict_many([r.image_path for r in recs],
                                                         "head"))
    out = {"benchmark": "qc_verdicts", "command": "python benchmarks/qc_verdicts.py "
           + " ".join(argv if argv is not None else sys.argv[1:]),
           "checkpoint": a.checkpoint or "built-in head", "annotator": a.annotator,
           "radius_mm": RADIUS_MM, "calibrated": results[0].risk is not None,
           "cephalograms": ceph, "out_of_scope": other, "seconds": time.time() - t0,
           "machine": machine()}
    v = ceph["verdicts"]
    print(f"ISBI test1+test2 ({ceph['n_images']} images, {a.annotator}): "
          + ", ".join(f"{q} {v[q]['images']} ({100 * v[q]['fraction']:.1f} %)" for q in v))
    for q in ("pass", "review"):
        if v[q]["images"]:
            print(f"  {q} right: {v[q]['right']} of {v[q]['images']} "
                  f"({100 * v[q]['right_fraction']:.1f} %)")
    g = ceph["all_within_2mm"]
    print(f"  every landmark within 2 mm: {g['images']} images: {g['verdicts']}")
    g4 = ceph["all_within_4mm"]
    print(f"  every landmark within 4 mm: {g4['images']} images: {g4['verdicts']}, naming "
          f"{g4['named_mean']} landmarks on average (at most {g4['named_max']})")
    print(f"  always flagged by this model (at typical evidence): {ceph['always_flagged']}")
    if ceph["review_named_mean"] is not None:
        print(f"  a review names {ceph['review_named_mean']:.2f} landmarks on average, "
              f"{100 * ceph['review_named_wrong_fraction']:.1f} % of them wrong; most named: "
              f"{ceph['most_named']}")
    for name, o in other.items():
        print(f"{name} ({o['n_images']} images, out of scope): {o['verdicts']}")
    if a.json:
        write_json(a.json, out)
    return out


if __name__ == "__main__":
    main()
