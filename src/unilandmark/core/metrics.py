"""Radial errors, MRE/SD/median, SDR and per-landmark tables (docs/protocols.md, "Metrics")."""

from __future__ import annotations

import numpy as np


def radial_errors(pred: np.ndarray, truth: np.ndarray,
                  scale: np.ndarray | float | None = None) -> np.ndarray:
    """Euclidean errors ``|| s * (p - g) ||`` per point.

    pred, truth : (N, K, 2) in the same pixel frame. scale : None (pixels), a scalar, or
    per-image per-axis factors broadcastable to (N, K, 2), e.g. spacing (N, 1, 2) in mm.
    Returns (N, K) float64; NaN where either point is NaN.
    """
    diff = np.asarray(pred, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    if scale is not None:
        diff = diff * np.asarray(scale, dtype=np.float64)
    return np.sqrt((diff ** 2).sum(-1))


#: relative tolerance of the SDR comparison: errors that equal the threshold up to
#: floating-point noise (e.g. 25 px x 0.1 mm) count as within it
SDR_RTOL = 1e-9


def sdr(errors: np.ndarray, threshold: float) -> float:
    """Successful detection rate: percentage of errors <= threshold (NaN ignored).

    Ties are common (integer annotations, e.g. a 15-20-25 px triangle at 0.1 mm), so the
    comparison allows a relative floating-point tolerance of ``SDR_RTOL``.
    """
    e = errors[np.isfinite(errors)]
    if not e.size:
        return float("nan")
    return float(100.0 * np.mean(e <= threshold * (1.0 + SDR_RTOL)))


def summarise(errors: np.ndarray, thresholds, landmark_names=None) -> dict:
    """Summary of (N, K) errors, NaN entries (not visible) left out.

    Returns mre, sd (population SD, ddof=0), median, sdr {threshold: %}, n_points and
    per_landmark [{landmark (1-based), name, mre, sd, median, sdr, n}].
    """
    errors = np.asarray(errors, dtype=np.float64)
    flat = errors[np.isfinite(errors)]
    out = _stats(flat, thresholds)
    out["n_points"] = int(flat.size)
    per = []
    for k in range(errors.shape[1]):
        col = errors[:, k]
        col = col[np.isfinite(col)]
        entry = {"landmark": k + 1}
        if landmark_names is not None:
            entry["name"] = landmark_names[k]
        entry.update(_stats(col, thresholds))
        entry["n"] = int(col.size)
        per.append(entry)
    out["per_landmark"] = per
    return out


def _stats(values: np.ndarray, thresholds) -> dict:
    if values.size == 0:
        nan = float("nan")
        return {"mre": nan, "sd": nan, "median": nan, "sdr": {_key(t): nan for t in thresholds}}
    return {
        "mre": float(values.mean()),
        "sd": float(values.std()),
        "median": float(np.median(values)),
        "sdr": {_key(t): sdr(values, t) for t in thresholds},
    }


def _key(t: float) -> str:
    return f"{float(t):.1f}"
