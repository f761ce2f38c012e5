"""Whether a landmark is in a volume at all: a presence threshold on the heatmap peak.

A landmark can be absent from a scan (a missing tooth, a structure outside the field of
view). Training masks the loss of landmarks not annotated in a volume, so a channel learns
"high at its structure, low elsewhere"; where the structure is missing the peak stays
lower. A landmark whose peak probability (``confidence`` of the last stage that placed it:
a volume-patch stage's where it applies, else the coarse stage's) is below that stage's
``presence_threshold`` is reported absent rather than forced to the best-looking voxel.
The full-resolution patch sees the structure itself and separates present from absent far
better than the coarse stage, whose smooth heatmaps fire on the surrounding context
(docs/volumes.md, "Absent landmarks", has the measured peaks).

Landmarks differ in how high their peaks reach (a sharp structure against a smooth one),
so the rule works on each peak relative to its landmark's typical peak (the median over
the validation landmarks annotated present), and a stage stores one threshold per
landmark (:func:`landmark_presence_thresholds`). Each stage chooses its thresholds on the
validation split when it is trained
(:func:`choose_presence_threshold`), unless the config fixes it
(``stage.presence_threshold``); ``predict --presence-threshold`` overrides it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["choose_presence_threshold", "landmark_presence_thresholds", "presence_counts",
           "thresholds_of"]


def choose_presence_threshold(confidence: np.ndarray, present: np.ndarray) -> float:
    """The presence threshold from validation peaks ``confidence`` (N, K) and whether each
    landmark is annotated ``present`` (N, K) bool.

    With absent landmarks in the split: the threshold (midway between two sorted peaks)
    that maximises the F1 score of "absent" (``2 TP / (2 TP + FP + FN)``: absent landmarks
    are rare, and a rule that weighed their recall as much as all present landmarks
    together would call many present ones absent), the lower one on ties. Without: half the
    lowest peak of a present landmark, so that no validation landmark would be called
    absent. With no present landmark at all: 0 (everything present)."""
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    annotated = np.asarray(present, dtype=bool).ravel()
    finite = np.isfinite(conf)
    here, gone = annotated & finite, ~annotated & finite
    if not here.any():
        return 0.0
    if not gone.any():
        return float(0.5 * conf[here].min())
    values = np.unique(conf[finite])
    candidates = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2,
                                 [values[-1] + 1e-6]])
    best, best_score = 0.0, -1.0
    for t in candidates:
        called = conf < t
        hits = (called & gone).sum()
        score = 2 * hits / (2 * hits + (called & here).sum() + (~called & gone).sum())
        if score > best_score + 1e-12:
            best, best_score = float(max(t, 0.0)), score
    return best


def landmark_presence_thresholds(confidence: np.ndarray, present: np.ndarray,
                                 fixed: float | None = None) -> list[float]:
    """(K,) presence thresholds of peaks from validation peaks ``confidence`` (N, K) and
    annotations ``present`` (N, K): ``fixed`` for every landmark when given; else each
    landmark's typical peak ``m_k`` (the median of its present peaks; the median over all
    landmarks where it has none) times one relative threshold chosen on ``peak / m_k`` by
    :func:`choose_presence_threshold`."""
    conf = np.asarray(confidence, dtype=np.float64)
    here = np.asarray(present, dtype=bool) & np.isfinite(conf)
    k = conf.shape[1]
    if fixed is not None:
        return [float(fixed)] * k
    if not here.any():
        return [0.0] * k
    overall = float(np.median(conf[here]))
    typical = np.array([float(np.median(conf[here[:, j], j])) if here[:, j].any()
                        else overall for j in range(k)])
    typical = np.maximum(typical, 1e-6)
    relative = choose_presence_threshold(conf / typical, present)
    return [float(v) for v in relative * typical]


def thresholds_of(value, k: int) -> np.ndarray:
    """(K,) float thresholds from a stored value: a list of K, one number for every
    landmark, or None (0: every landmark present, models trained before presence)."""
    if value is None:
        return np.zeros(k)
    values = np.asarray(value, dtype=np.float64).reshape(-1)
    return np.full(k, float(values[0])) if values.size == 1 else values[:k]


def presence_counts(truth_present: np.ndarray, predicted_present: np.ndarray) -> dict:
    """Absent-landmark detection as a report: counts and the precision and recall of
    "absent" (None where undefined). ``truth_present`` and ``predicted_present``: (N, K)
    bool."""
    truth = np.asarray(truth_present, dtype=bool)
    pred = np.asarray(predicted_present, dtype=bool)
    truth_absent, pred_absent = ~truth, ~pred
    hits = int((truth_absent & pred_absent).sum())
    n_pred, n_truth = int(pred_absent.sum()), int(truth_absent.sum())
    return {"truth_absent": n_truth, "predicted_absent": n_pred, "correctly_absent": hits,
            "present_called_absent": int((truth & pred_absent).sum()),
            "precision": hits / n_pred if n_pred else None,
            "recall": hits / n_truth if n_truth else None}
