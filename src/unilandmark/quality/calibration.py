"""Fitting a quality calibration: the risk model and the flag threshold (docs/quality.md).

Input: per validation point, the evidence of :func:`unilandmark.quality.evidence`, its
error and its image. Output: plain numbers (a dict) that :func:`unilandmark.quality.risk`
reads back.

The model is a logistic regression of ``error > radius`` on the standardised evidence,
made well-behaved for validation sets of a few hundred points with a handful of bad ones:

- a ridge penalty (``RIDGE``) on the weights; the intercept is free;
- one pseudo-point at the mean evidence, half wrong and half right, so that a validation
  set without any bad point (or with only bad ones) still gives finite numbers;
- every weight non-negative: more surprise, residual, shift or spread never lowers the
  risk. A feature whose fitted weight would be negative is dropped and the rest refitted
  (a negative weight on a few hundred points is noise, and would not transfer);
- evidence that is missing or constant on the validation points is not used;
- the ``landmark`` evidence (how hard each landmark is) is each landmark's mean log error
  in radii on the calibration points, shrunk towards the mean over all landmarks with
  ``PRIOR_WEIGHT`` pseudo-points (20 images give 20 errors per landmark: enough for a
  typical error, not for a rate of rare misses).

The threshold is chosen on out-of-fold risks (``FOLDS`` folds by image: each image's risks
come from a model fitted without it, so the threshold is not tuned on points the model
has already seen): the highest threshold at which the flags still catch ``target_recall``
of the validation points with error above the radius, then raised, if needed, until at
most ``max_flagged`` of the validation points are flagged (a flag that fires on every
third point is no help). The recall and flagged fraction reached are stored with it.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import InputError
from .evidence import (
    CALIBRATION_FORMAT,
    FAIL_FRACTION,
    FEATURES,
    flag_scores,
    risk,
    with_landmark_prior,
)

RIDGE = 1.0
FOLDS = 5
TARGET_RECALL = 0.8
MAX_FLAGGED = 0.10
PRIOR_WEIGHT = 5.0
#: the fewest validation images a calibration is fitted on: the threshold is chosen out of
#: fold by image, so one image leaves no image to fit the other fold on
MIN_IMAGES = 2
#: below this many validation images, or this many wrong points, a calibration is fitted
#: but carries a warning (``validation.warnings``; ``calibrate`` prints it): with a
#: handful of misses the risk model cannot learn what a miss looks like, and its recall
#: and precision are estimated on too few points to mean much
FEW_IMAGES = 10
FEW_WRONG = 5


def fit_logistic(x: np.ndarray, y: np.ndarray, ridge: float = RIDGE,
                 iterations: int = 50) -> tuple[np.ndarray, float]:
    """Ridge logistic regression by Newton's method: weights (F,) and bias.

    x (N, F) standardised features (no NaN), y (N,) 0/1. One pseudo-point at x = 0 with
    y = 1/2 (weight 1) keeps the bias finite when every y is equal.
    """
    x = np.vstack([np.asarray(x, dtype=np.float64), np.zeros((1, x.shape[1]))])
    y = np.append(np.asarray(y, dtype=np.float64), 0.5)
    a = np.hstack([x, np.ones((len(x), 1))])
    penalty = np.diag([ridge] * x.shape[1] + [0.0])
    beta = np.zeros(a.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ beta, -60, 60)))
        gradient = a.T @ (p - y) + penalty @ beta
        hessian = (a * (p * (1 - p))[:, None]).T @ a + penalty + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return beta[:-1], float(beta[-1])


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = np.nanmean(x, axis=0)
    scale = np.nanstd(x, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = np.where(np.isfinite(x), (x - mean) / scale, 0.0)
    return z, mean, scale


def landmark_prior(index: np.ndarray, errors: np.ndarray, radius: float,
                   weight: float = PRIOR_WEIGHT) -> list[float]:
    """(K,) per landmark (``index`` from 0): the mean of ``log(error / radius)`` over its
    points, shrunk towards the mean of all points with ``weight`` pseudo-points."""
    index = np.asarray(index).astype(int)
    logs = np.log(np.maximum(np.asarray(errors, dtype=np.float64), 1e-3 * radius) / radius)
    overall = float(logs.mean())
    table = []
    for k in range(int(index.max()) + 1):
        mine = logs[index == k]
        table.append(float((mine.sum() + weight * overall) / (len(mine) + weight)))
    return table


def fit_risk_model(features: dict[str, np.ndarray], wrong: np.ndarray,
                   names: tuple[str, ...] = FEATURES, ridge: float = RIDGE,
                   errors: np.ndarray | None = None, radius: float | None = None) -> dict:
    """The risk model on these points: {features, mean, scale, weights, bias} (and
    ``landmark_prior`` when the landmark evidence is used).

    ``features``: name -> (N,) evidence (NaN = missing), with ``index`` for the landmark
    evidence, which also needs the ``errors`` and the ``radius``; ``wrong`` (N,) bool.
    """
    table = None
    if "landmark" in names and "index" in features and errors is not None and radius:
        table = landmark_prior(features["index"], errors, radius)
        features = with_landmark_prior(features, table)
    usable = []
    for n in names:
        v = np.asarray(features.get(n, []), dtype=np.float64)
        if v.size and np.isfinite(v).sum() >= 2 and np.nanstd(v) > 1e-9:
            usable.append(n)
    while True:
        if usable:
            x = np.stack([np.asarray(features[n], dtype=np.float64) for n in usable], -1)
            z, mean, scale = _standardise(x)
        else:
            z, mean, scale = np.zeros((len(wrong), 0)), np.zeros(0), np.zeros(0)
        weights, bias = fit_logistic(z, wrong, ridge)
        if not (weights < 0).any():
            break
        usable.pop(int(np.argmin(weights)))
    model = {"features": list(usable), "mean": mean.tolist(), "scale": scale.tolist(),
             "weights": weights.tolist(), "bias": bias}
    if "landmark" in usable:
        model["landmark_prior"] = table
    return model


def out_of_fold_risk(features: dict[str, np.ndarray], wrong: np.ndarray, groups: np.ndarray,
                     folds: int = FOLDS, ridge: float = RIDGE, errors: np.ndarray | None = None,
                     radius: float | None = None) -> np.ndarray:
    """(N,) risks, each from a model fitted without its group (image); ``folds`` folds of
    whole groups (fewer when there are fewer groups)."""
    groups = np.asarray(groups)
    unique = np.unique(groups)
    folds = max(2, min(folds, len(unique)))
    fold_of = {g: i % folds for i, g in enumerate(unique)}
    fold = np.array([fold_of[g] for g in groups])
    out = np.zeros(len(wrong))
    for f in range(folds):
        test = fold == f
        train = {n: np.asarray(v)[~test] for n, v in features.items()}
        model = fit_risk_model(train, wrong[~test], ridge=ridge,
                               errors=None if errors is None else errors[~test], radius=radius)
        out[test] = risk({n: np.asarray(v)[test] for n, v in features.items()}, model)
    return out


def choose_threshold(risks: np.ndarray, wrong: np.ndarray, target_recall: float = TARGET_RECALL,
                     max_flagged: float | None = MAX_FLAGGED) -> float:
    """The flag threshold (module docstring): the highest risk threshold whose flags
    (risk >= threshold) catch ``target_recall`` of the wrong points, raised until at most
    ``max_flagged`` of all points are flagged."""
    risks = np.asarray(risks, dtype=np.float64)
    wrong = np.asarray(wrong, bool)
    candidates = np.unique(risks)[::-1]  # high to low: flags grow as the threshold falls
    threshold = float(candidates[-1]) if len(candidates) else 0.5
    if wrong.any():
        for t in candidates:
            if (risks[wrong] >= t).mean() >= target_recall:
                threshold = float(t)
                break
    else:  # nothing to catch on validation: flag only what is more likely wrong than not
        threshold = 0.5
    if max_flagged is not None and (risks >= threshold).mean() > max_flagged:
        allowed = [t for t in candidates if (risks >= t).mean() <= max_flagged]
        threshold = float(min(allowed)) if allowed else float(np.nextafter(risks.max(), 2))
    return threshold


def fit_calibration(features: dict[str, np.ndarray], errors: np.ndarray, groups: np.ndarray,
                    radius: float, unit: str, target_recall: float = TARGET_RECALL,
                    max_flagged: float | None = MAX_FLAGGED, ridge: float = RIDGE,
                    source: dict | None = None) -> dict:
    """A domain's calibration from its validation points (module docstring).

    features: name -> (N,) evidence; errors (N,) in ``unit`` (NaN: not visible, left
    out); groups (N,) image ids; radius: an error above it is wrong.
    """
    errors = np.asarray(errors, dtype=np.float64)
    keep = np.isfinite(errors)
    feats = {n: np.asarray(v, dtype=np.float64)[keep] for n, v in features.items()}
    wrong = errors[keep] > radius
    groups = np.asarray(groups)[keep]
    if not keep.any():
        raise InputError("calibration needs validation points with ground truth; none given")
    if len(np.unique(groups)) < MIN_IMAGES:
        raise InputError(f"calibration needs validation points of at least {MIN_IMAGES} "
                         f"images (the threshold is chosen out of fold, by image); got "
                         f"{len(np.unique(groups))}")
    errors = errors[keep]
    model = fit_risk_model(feats, wrong, ridge=ridge, errors=errors, radius=radius)
    oof = out_of_fold_risk(feats, wrong, groups, ridge=ridge, errors=errors, radius=radius)
    threshold = choose_threshold(oof, wrong, target_recall, max_flagged)
    n_images = int(len(np.unique(groups)))
    return {"format": CALIBRATION_FORMAT, "radius": float(radius), "unit": unit,
            **model, "threshold": threshold, "fail_fraction": FAIL_FRACTION,
            "rule": {"target_recall": target_recall, "max_flagged": max_flagged,
                     "ridge": ridge, "folds": FOLDS},
            "validation": {**(source or {}), "n_images": n_images,
                           **_plain(flag_scores(oof >= threshold, wrong)),
                           "warnings": calibration_warnings(n_images, int(wrong.sum()),
                                                            len(wrong), radius, unit)}}


def calibration_warnings(n_images: int, n_wrong: int, n_points: int, radius: float,
                         unit: str) -> list[str]:
    """Why a calibration fitted on this validation data is weak (empty when it is not):
    fewer than ``FEW_WRONG`` wrong points or ``FEW_IMAGES`` images."""
    out = []
    if n_wrong < FEW_WRONG:
        out.append(f"only {n_wrong} of the {n_points} validation points are wrong (error "
                   f"above {radius:g} {unit}); with fewer than {FEW_WRONG} misses the risk "
                   "model cannot learn what a miss looks like, so its flags add little to "
                   "the rules that hold without calibration (a point outside the image, an "
                   "implausible shape), which still apply; calibrate on a larger or harder "
                   "validation split (--split, --root) for useful flags")
    if n_images < FEW_IMAGES:
        out.append(f"only {n_images} validation images: the recall and precision of the "
                   f"flags are estimated on too few images to be trusted (at least "
                   f"{FEW_IMAGES} recommended)")
    return out


def _plain(stats: dict) -> dict:
    """NaN (no flagged or no wrong point) stored as None: the metadata stays JSON."""
    return {k: None if isinstance(v, float) and v != v else v for k, v in stats.items()}
