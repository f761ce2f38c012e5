"""How well the quality flags of a model separate good from bad points on ISBI 2015
test1 + test2 (senior annotator, original pixels x 0.1 mm): precision and recall of the
flags for errors above 4 mm, the fraction of points flagged, QC counts and the
risk-coverage summary. The aim (issue 8): recall >= 80 % with at most 10 % flagged.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/flags_isbi2015.py \\
        --checkpoint calibrated.pt --json out/flags_isbi2015.json

The model must carry a calibration (``unilandmark calibrate``); ``--calibrate SPLIT``
fits one in memory first on that split of the same data (e.g. ``gu2net-val``, the
annotator of ``--calibration-annotator``), without writing any file.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, write_json  # noqa: E402
from unilandmark import isbi2015  # noqa: E402
from unilandmark.evaluate import PredictionTable  # noqa: E402
from unilandmark.predict import Detector  # noqa: E402
from unilandmark.protocols import PROTOCOLS  # noqa: E402
from unilandmark.quality_report import quality_lines, quality_report  # noqa: E402

RADIUS_MM = 4.0
AIM = {"recall": 0.80, "flagged_fraction": 0.10}


CONFIDENCE_BANDS = (0.0, 0.1, 0.3, 0.5, 0.7, 1.0001)
RISK_BANDS = (0.0, 0.05, 0.1, 0.2, 0.4, 1.0001)


def by_band(score: np.ndarray, errors: np.ndarray, edges) -> list[dict]:
    """Points grouped by ``score`` band: count, error rate (% > 4 mm), median error."""
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (score >= lo) & (score < hi) & np.isfinite(errors)
        e = errors[sel]
        rows.append({"band": [lo, min(hi, 1.0)], "n": int(sel.sum()),
                     "mean_score": float(score[sel].mean()) if sel.any() else None,
                     "error_rate": float(100 * (e > RADIUS_MM).mean()) if e.size else 0.0,
                     "median": float(np.median(e)) if e.size else 0.0})
    return rows


def _table(results) -> PredictionTable:
    """The quality columns of ``results`` as a prediction table (as the CSV reads back)."""
    points, conf, risk, flags, qc = {}, {}, {}, {}, {}
    for r in results:
        qc[r.id] = r.qc
        for k in range(len(r.points)):
            key = (r.id, k + 1)
            points[key] = tuple(float(v) for v in r.points[k])
            conf[key] = float(r.confidence[k])
            flags[key] = bool(r.flags[k])
            if r.risk is not None:
                risk[key] = float(r.risk[k])
    return PredictionTable("(in memory)", points, conf, risk, flags, qc)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="default: the built-in model")
    p.add_argument("--root", default="../shared/data/isbi2015")
    p.add_argument("--domain", default="head")
    p.add_argument("--calibrate", default=None, metavar="SPLIT",
                   help="fit a calibration in memory on this split first (e.g. gu2net-val)")
    p.add_argument("--calibration-annotator", default="senior")
    p.add_argument("--json", default=None, help="write the numbers here")
    p.add_argument("--limit", type=int, default=None, help="only the first N images of each "
                                                           "split (a quick check)")
    a = p.parse_args(argv)
    detector = Detector.from_checkpoint(a.checkpoint)
    if a.calibrate:
        from unilandmark.calibrate import ValidationSource, validation_points
        from unilandmark.calibration import fit_calibration

        source = ValidationSource("isbi2015", a.root, a.calibrate,
                                  {"annotator": a.calibration_annotator})
        feats, errors, groups, radius, unit = validation_points(detector, a.domain, source,
                                                                limit=a.limit)
        detector.calibrations[a.domain] = fit_calibration(feats, errors, groups, radius, unit,
                                                          source=source.describe())
    calibration = detector.calibrations.get(a.domain)
    if calibration is None:
        print("note: this model has no calibration; only the hard rules flag (outside the "
              "image, far off the training shapes). Calibrate it with `unilandmark "
              "calibrate` or pass --calibrate gu2net-val.")
    spec = isbi2015(a.root, "senior")
    records, errors = [], []
    t0 = time.time()
    results = []
    for split in ("test1", "test2"):
        recs = spec.split_records(split)[:a.limit]
        res = detector.predict_many([r.image_path for r in recs], a.domain)
        pred = np.stack([r.points for r in res]).astype(np.float64)
        errors.append(PROTOCOLS[f"isbi2015-{split}"].errors(spec, recs, pred))
        records += recs
        results += res
    seconds = time.time() - t0
    errors = np.concatenate(errors)
    q = quality_report(_table(results), records, errors, RADIUS_MM, "mm")
    for line in quality_lines(q):
        print(line)
    conf = np.concatenate([r.confidence for r in results])
    risks = np.concatenate([r.risk for r in results]) if calibration else None
    q["by_confidence"] = by_band(conf, errors.reshape(-1), CONFIDENCE_BANDS)
    print("raw confidence (peak probability) against the error:")
    for row in q["by_confidence"]:
        print(f"  confidence {row['band'][0]:.1f}-{row['band'][1]:.1f}: {row['n']:5d} points, "
              f"{row['error_rate']:5.1f} % > 4 mm, median error {row['median']:.2f} mm")
    if risks is not None:
        q["by_risk"] = by_band(risks, errors.reshape(-1), RISK_BANDS)
        print("calibrated risk against the observed error rate:")
        for row in q["by_risk"]:
            print(f"  risk {row['band'][0]:.2f}-{row['band'][1]:.2f}: {row['n']:5d} points, "
                  f"mean risk {row['mean_score']:.3f}, {row['error_rate']:5.1f} % > 4 mm")
    f = q["flags"]
    met = bool(f["recall"] >= AIM["recall"] and f["flagged_fraction"] <= AIM["flagged_fraction"])
    print(f"aim (recall >= 80 % of errors > 4 mm, at most 10 % flagged): "
          f"{'met' if met else 'NOT met'}; MRE {np.nanmean(errors):.3f} mm over "
          f"{len(records)} images")
    write_json(a.json, {"benchmark": "flags_isbi2015", "checkpoint": a.checkpoint or "built-in",
                        "calibration": calibration, "quality": q, "aim": AIM, "aim_met": met,
                        "mre_mm": float(np.nanmean(errors)), "predict_s": seconds,
                        "machine": machine()})
    return q


if __name__ == "__main__":
    main()
