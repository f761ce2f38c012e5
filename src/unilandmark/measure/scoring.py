"""Score predicted measurements against ground-truth ones: error, accuracy, balanced SCR.

Per measurement:

- ``mae``: mean absolute error over images where both values are defined, in the
  measurement's unit (degrees, mm, px or ratio); ``sd`` its population SD.
- ``accuracy``: the fraction of images (with a ground-truth class) whose predicted class
  equals it; an undefined prediction counts as wrong.
- ``scr``: the balanced successful classification rate: the mean over the classes present
  in the ground truth of each class's recall (correct / ground-truth count). With very
  unbalanced classes it differs a lot from plain accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..core.types import truth_points
from .classes import classify_batch
from .compute import measure_batch
from .spec import MeasurementSpec

COORDINATES = {False: "float", True: "truncated to integers"}


def score_values(spec: MeasurementSpec, predicted: Mapping[str, np.ndarray],
                 truth: Mapping[str, np.ndarray]) -> dict:
    """Compare (N,) measurement arrays; see the module doc for the figures."""
    pred_cls = classify_batch(spec, predicted)
    true_cls = classify_batch(spec, truth)
    rows = []
    for m in spec.measurements:
        p = np.asarray(predicted[m.name], dtype=np.float64)
        t = np.asarray(truth[m.name], dtype=np.float64)
        both = np.isfinite(p) & np.isfinite(t)
        err = np.abs(p[both] - t[both])
        row = {"name": m.name, "unit": spec.unit(m.name), "n_images": int(p.size),
               "n_compared": int(both.sum()),
               "undefined_prediction": int((np.isfinite(t) & ~np.isfinite(p)).sum()),
               "undefined_truth": int((~np.isfinite(t)).sum()),
               "mae": float(err.mean()) if err.size else float("nan"),
               "sd": float(err.std()) if err.size else float("nan")}
        if m.classes:
            row.update(class_agreement(pred_cls[m.name], true_cls[m.name]))
        rows.append(row)
    classified = [r for r in rows if "accuracy" in r and np.isfinite(r["accuracy"])]
    return {
        "measurements": rows,
        "mean_accuracy": _mean([r["accuracy"] for r in classified]),
        "mean_scr": _mean([r["scr"] for r in classified]),
    }


def class_agreement(predicted: np.ndarray, truth: np.ndarray) -> dict:
    """Accuracy, balanced SCR, per-class recall and counts for (N,) class arrays (0 = no
    class; images without a ground-truth class are left out)."""
    predicted = np.asarray(predicted)
    truth = np.asarray(truth)
    has = truth > 0
    classes = sorted(int(c) for c in np.unique(truth[has]))
    recall = {c: float(np.mean(predicted[truth == c] == c)) for c in classes}
    counts = {c: int(np.sum(truth == c)) for c in classes}
    predicted_counts = {int(c): int(np.sum(predicted[has] == c))
                        for c in np.unique(predicted[has])}
    confusion = {c: {int(q): int(np.sum(predicted[truth == c] == q))
                     for q in np.unique(predicted[truth == c])} for c in classes}
    return {
        "n_classified": int(has.sum()),
        "accuracy": float(np.mean(predicted[has] == truth[has])) if has.any() else float("nan"),
        "scr": _mean(list(recall.values())),
        "recall": recall,
        "truth_counts": counts,
        "predicted_counts": predicted_counts,
        "confusion": confusion,
    }


def evaluate_measurements(spec: MeasurementSpec, predicted_points, truth_points,
                          landmark_names: Sequence[str], spacing=None,
                          predicted_mirrored=False, truth_mirrored=False,
                          truncate: bool = False) -> dict:
    """Measure predictions and ground truth (both (N, K, 2) original pixels of the same
    images, ``spacing`` (N, 2) or one pair) and score them; the report says which
    coordinates (float or truncated) and how many mirrored images it used."""
    pred = measure_batch(spec, predicted_points, landmark_names, spacing,
                         predicted_mirrored, truncate)
    true = measure_batch(spec, truth_points, landmark_names, spacing, truth_mirrored,
                         truncate)
    n = int(np.asarray(predicted_points).shape[0])
    mirrored = np.broadcast_to(np.asarray(predicted_mirrored, dtype=bool), (n,))
    return {
        "spec": spec.name,
        "coordinates": COORDINATES[bool(truncate)],
        "n_images": n,
        "mirrored_predictions": int(mirrored.sum()),
        **score_values(spec, pred, true),
    }


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def evaluate_records(spec: MeasurementSpec, records, predicted_points, landmark_names,
                     predicted_mirrored=False, truncate: bool = False) -> dict:
    """:func:`evaluate_measurements` against dataset records (the ground truth): their
    points (NaN where not visible), spacing, and orientation (``record.meta
    ['orientation']``, default original)."""
    truth = truth_points(records)
    spacing = np.array([r.spacing if r.spacing else (np.nan, np.nan) for r in records],
                       dtype=np.float64)
    truth_mirrored = np.array([r.meta.get("orientation") == "mirrored" for r in records])
    return evaluate_measurements(spec, predicted_points, truth, landmark_names, spacing,
                                 predicted_mirrored, truth_mirrored, truncate)
