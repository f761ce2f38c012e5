"""How well the quality flags of a model separate good from bad points on ISBI 2015
test1 + test2 (senior annotator by default, original pixels x 0.1 mm): precision and
recall of the flags for errors above 4 mm, the fraction of points flagged, QC counts and
the risk-coverage summary. The aim (issue 8): recall >= 80 % with at most 10 % flagged.

It also prints what any flag could reach within that budget: with a fraction ``w`` of
the points wrong, flagging at most 10 % catches at most ``0.10 / w`` of them, and the
aim needs a precision of at least ``0.8 w / 0.10``; and how well the risk ranks the
points (AUROC for "error above 4 mm", 0.5 = chance). ``--second-opinion C`` also scores
a second model's disagreement as evidence: the distance between the two models' points,
after the mean offset between the two ground truths on the training split (a model
trained on the other annotator marks a convention apart).

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
from unilandmark import isbi2015
from unilandmark.evaluation.protocols import PROTOCOLS
from unilandmark.evaluation.quality import quality_lines, quality_report
from unilandmark.inference.detector import Detector
from unilandmark.predictions.table import PredictionTable

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


def flag_bound(errors: np.ndarray, score: np.ndarray) -> dict:
    """What any flag could do within issue 8's budget, and how well ``score`` ranks.

    errors : (P,) point errors in mm (NaN = not scored); score : (P,) higher = riskier.
    Returns the wrong fraction w, the best recall at 10 % flagged (``min(1, 0.1 / w)``),
    the precision the aim needs (``0.8 w / 0.1``) and the AUROC of ``score`` for
    "error above 4 mm" (ties count half).
    """
    ok = np.isfinite(errors) & np.isfinite(score)
    if not ok.any():
        raise ValueError("no point has both an error and a score to rank")
    wrong, score = errors[ok] > RADIUS_MM, score[ok]
    w = float(wrong.mean())
    ranks = np.empty(len(score))
    order = np.argsort(score, kind="stable")
    ranks[order] = np.arange(1, len(score) + 1)
    for value in np.unique(score):  # average ranks over ties
        tie = score == value
        ranks[tie] = ranks[tie].mean()
    n_pos, n_neg = int(wrong.sum()), int((~wrong).sum())
    auroc = ((ranks[wrong].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
             if n_pos and n_neg else float("nan"))
    budget = AIM["flagged_fraction"]
    return {"wrong_fraction": w, "best_recall": min(1.0, budget / w) if w else 1.0,
            "precision_needed": AIM["recall"] * w / budget, "auroc": float(auroc)}


def second_opinion(a, results, errors: np.ndarray) -> dict:
    """AUROC of the distance to a second model's points, less the mean offset between the
    two models' training ground truths on the training split (and of it combined with the
    risk); ``median_gap_px`` the median of those distances."""
    other = Detector.from_checkpoint(a.second_opinion)
    mine = isbi2015(a.root, a.model_annotator)
    theirs = isbi2015(a.root, a.second_opinion_annotator)
    train = zip(mine.split_records("gu2net-train"), theirs.split_records("gu2net-train"),
                strict=True)
    convention = np.mean([r.points - t.points for r, t in train], axis=0)  # (K, 2) px
    second = []
    for split in ("test1", "test2"):
        recs = mine.split_records(split)[:a.limit]
        second += other.predict_many([r.image_path for r in recs], a.domain)
    gap = np.concatenate([np.linalg.norm(r.points - s.points - convention, axis=1)
                          for r, s in zip(results, second, strict=True)])
    out = {"checkpoint": a.second_opinion, "annotator": a.second_opinion_annotator,
           "model_annotator": a.model_annotator, "median_gap_px": float(np.median(gap)),
           "auroc": flag_bound(errors, gap)["auroc"]}
    if results[0].risk is not None:
        risk = np.concatenate([r.risk for r in results])
        out["auroc_with_risk"] = flag_bound(errors, np.log(risk) + np.log1p(gap))["auroc"]
    print(f"second opinion ({a.second_opinion}): its distance ranks the wrong points with "
          f"AUROC {out['auroc']:.3f}" + (f"; with the risk {out['auroc_with_risk']:.3f}"
                                         if "auroc_with_risk" in out else ""))
    return out


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
    p.add_argument("--annotator", default="senior", choices=("senior", "mean"),
                   help="ground truth the points are scored against (isbi2015-test1/2 or "
                        "isbi2015-mean-test1/2)")
    p.add_argument("--json", default=None, help="write the numbers here")
    p.add_argument("--limit", type=int, default=None, help="only the first N images of each "
                                                           "split (a quick check)")
    p.add_argument("--second-opinion", default=None, metavar="CHECKPOINT",
                   help="also rank the points by their distance to this model's points")
    p.add_argument("--second-opinion-annotator", default="mean", choices=("senior", "mean"),
                   help="the ground truth the second model was trained on")
    p.add_argument("--model-annotator", default="senior", choices=("senior", "mean"),
                   help="the ground truth the model itself was trained on (for the offset "
                        "between the two models' conventions)")
    a = p.parse_args(argv)
    detector = Detector.from_checkpoint(a.checkpoint)
    if a.calibrate:
        from unilandmark.quality.calibration import fit_calibration
        from unilandmark.workflows.calibrate import ValidationSource, validation_points

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
    spec = isbi2015(a.root, a.annotator)
    prefix = "isbi2015-" if a.annotator == "senior" else "isbi2015-mean-"
    records, errors = [], []
    t0 = time.time()
    results = []
    for split in ("test1", "test2"):
        recs = spec.split_records(split)[:a.limit]
        res = detector.predict_many([r.image_path for r in recs], a.domain)
        pred = np.stack([r.points for r in res]).astype(np.float64)
        errors.append(PROTOCOLS[f"{prefix}{split}"].errors(spec, recs, pred))
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
            head = f"  risk {row['band'][0]:.2f}-{row['band'][1]:.2f}: {row['n']:5d} points"
            if row["mean_score"] is None:  # an empty band has no mean risk
                print(head)
                continue
            print(f"{head}, mean risk {row['mean_score']:.3f}, {row['error_rate']:5.1f} % > 4 mm")
    q["bound"] = flag_bound(errors.reshape(-1), risks if risks is not None else -conf)
    b = q["bound"]
    print(f"{100 * b['wrong_fraction']:.1f} % of the points are wrong: within a 10 % budget any "
          f"flag catches at most {100 * b['best_recall']:.0f} % of them, and 80 % needs a "
          f"precision of at least {100 * b['precision_needed']:.0f} %; the "
          f"{'risk' if risks is not None else 'confidence'} ranks them with AUROC "
          f"{b['auroc']:.3f}")
    if a.second_opinion:
        q["second_opinion"] = second_opinion(a, results, errors.reshape(-1))
    f = q["flags"]
    met = bool(f["recall"] >= AIM["recall"] and f["flagged_fraction"] <= AIM["flagged_fraction"])
    print(f"aim (recall >= 80 % of errors > 4 mm, at most 10 % flagged): "
          f"{'met' if met else 'NOT met'}; MRE {np.nanmean(errors):.3f} mm over "
          f"{len(records)} images")
    write_json(a.json, {"benchmark": "flags_isbi2015", "checkpoint": a.checkpoint or "built-in",
                        "annotator": a.annotator,
                        "calibration": calibration, "quality": q, "aim": AIM, "aim_met": met,
                        "mre_mm": float(np.nanmean(errors)), "predict_s": seconds,
                        "machine": machine()})
    return q


if __name__ == "__main__":
    main()
