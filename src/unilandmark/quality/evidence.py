"""Quality flags at prediction: a calibrated risk per landmark, a flag, a QC per image.

The evidence (docs/quality.md), per landmark, from a :class:`~..inference.results.LandmarkResult`:

- ``stage1``: how unsure stage 1 was, ``-log(peak probability)`` of its heatmap;
- ``final``: the same for the last patch stage that refined the point;
- ``shape``: ``log(1 + residual)``, the distance to the fitted training shape in training
  spreads (a configuration the training shapes make implausible);
- ``shift``: ``log(1 + d)``, how far the refinement stages moved the point from stage 1,
  d in stage-1 network pixels (unit-free: the same anatomy at any resolution);
- ``spread``: ``log(1 + s)``, how much the ``test_offsets`` crops of the last patch stage
  disagree (RMS distance of their decoded points), s in stage-1 network pixels;
- ``mirror``: ``log(1 + g)``, how far stage 1's answer on the image's left-right mirror
  (decoded to choose the orientation, brought back) lies from its answer on the image,
  g in stage-1 network pixels: a free test-time augmentation where the mirror was
  decoded (NaN for an image read confidently as it is, whose mirror is skipped);
- ``landmark``: how hard the landmark itself is, the mean log error (in radii) of that
  landmark on the calibration images, shrunk towards the mean of all landmarks (a table
  of K numbers stored with the calibration; some landmarks are ambiguous to annotate).

A domain's calibration (plain numbers in the checkpoint's domain metadata, written by
``unilandmark calibrate``) turns them into ``risk``, the probability that the point is
more than ``radius`` (the dataset's largest SDR threshold) from the truth, by a logistic
model fitted on the validation split; a point is flagged when its risk reaches the
calibration's ``threshold``. The hard rules flag with or without a calibration: a point
outside the image, or a configuration residual above ``IMPLAUSIBLE_SPREADS`` (without a
calibration they are the only rules). So a calibrated model never flags less than the
uncalibrated one: a calibration fitted on easy validation data (no misses to learn from)
knows nothing of inputs unlike its validation images (an all-black image, another anatomy),
and the rules that hold without it still send those to review.

QC per image: ``fail`` when at least ``fail_fraction`` of its landmarks are flagged (the
image as a whole was not understood: another anatomy, view or orientation), ``review``
when any landmark is flagged, else ``pass``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..core.geometry import fit_geometry
from ..core.modelmeta import CALIBRATION_FEATURES

#: the evidence a calibration may use, in this order (the names model files are checked
#: against, ``core.modelmeta.CALIBRATION_FEATURES``)
FEATURES = CALIBRATION_FEATURES
#: confidences below this are treated as this (the log stays finite)
MIN_CONFIDENCE = 1e-4
#: without a calibration: a shape residual above this many training spreads is flagged
IMPLAUSIBLE_SPREADS = 6.0
#: QC ``fail`` when at least this fraction of an image's landmarks is flagged
FAIL_FRACTION = 0.5
CALIBRATION_FORMAT = "unilandmark-quality/1"


def network_scale(image_size: tuple[int, int], meta: dict) -> float:
    """Original pixels per stage-1 network pixel for an image of ``image_size`` (W, H)."""
    g = fit_geometry(image_size, tuple(meta["input_size"]), meta.get("resize", "stretch"))
    return float(np.mean(np.diag(g.matrix)[:2]))


def evidence(result, meta: dict) -> dict[str, np.ndarray]:
    """The evidence of one result: name -> (K,) float64, NaN where a piece of evidence
    does not exist (no patch stage, no shape model, no test offsets, a landmark a gated
    stage left alone); ``index`` the landmark numbers from 0 (the ``landmark`` feature
    comes from the calibration's table, see :func:`with_landmark_prior`)."""
    k = len(result.points)
    nan = np.full(k, np.nan)
    sc = np.asarray(result.stage_confidence if result.stage_confidence is not None
                    else result.confidence[None], dtype=np.float64)
    scale = network_scale(result.image_size, meta) if result.image_size else 1.0
    out = {"stage1": _surprise(sc[0]), "final": _surprise(sc[-1]) if len(sc) > 1 else nan}
    res = result.shape_residual
    out["shape"] = np.log1p(np.asarray(res, dtype=np.float64)) if res is not None else nan
    shift = result.refinement_shift
    out["shift"] = (np.log1p(np.asarray(shift, dtype=np.float64) / scale)
                    if shift is not None and len(sc) > 1 else nan)
    spread = nan
    if result.crop_spread is not None:
        for row in np.asarray(result.crop_spread, dtype=np.float64)[::-1]:
            if np.isfinite(row).any():
                spread = np.log1p(row / scale)
                break
    out["spread"] = spread
    gap = getattr(result, "mirror_gap", None)
    out["mirror"] = np.log1p(np.asarray(gap, dtype=np.float64) / scale) if gap is not None \
        else nan
    out["index"] = np.arange(k, dtype=np.float64)
    return out


def with_landmark_prior(features: dict[str, np.ndarray], table) -> dict[str, np.ndarray]:
    """``features`` plus ``landmark``: the ``table`` (K,) value of each point's landmark
    (``features["index"]``); NaN for a landmark the table does not hold."""
    table = np.asarray(table, dtype=np.float64)
    index = np.asarray(features["index"]).astype(int)
    inside = (index >= 0) & (index < len(table))
    prior = np.where(inside, table[np.clip(index, 0, max(len(table) - 1, 0))], np.nan)
    return {**features, "landmark": prior}


def _surprise(confidence) -> np.ndarray:
    c = np.asarray(confidence, dtype=np.float64)
    return -np.log(np.clip(c, MIN_CONFIDENCE, 1.0))


def outside_image(points: np.ndarray, image_size: tuple[int, int] | None) -> np.ndarray:
    """(K,) bool: the point lies outside the image (beyond the border pixels' outer
    edges), or is not finite."""
    pts = np.asarray(points, dtype=np.float64)
    bad = ~np.isfinite(pts).all(1)
    if image_size is None:
        return bad
    w, h = image_size
    with np.errstate(invalid="ignore"):
        return bad | (pts[:, 0] < -0.5) | (pts[:, 0] > w - 0.5) | (pts[:, 1] < -0.5) | \
            (pts[:, 1] > h - 0.5)


def risk(features: dict[str, np.ndarray], calibration: dict) -> np.ndarray:
    """(K,) calibrated probability that each point's error exceeds the calibration's
    radius. A feature missing for a landmark counts as its validation mean."""
    names = calibration["features"]
    if "landmark" in names:
        features = with_landmark_prior(features, calibration["landmark_prior"])
    if not names:  # no usable evidence on validation: one risk for every point
        k = len(next(iter(features.values())))
        return np.full(k, 1.0 / (1.0 + np.exp(-np.clip(calibration["bias"], -60, 60))))
    mean = np.asarray(calibration["mean"], dtype=np.float64)
    scale = np.asarray(calibration["scale"], dtype=np.float64)
    x = np.stack([np.asarray(features[n], dtype=np.float64) for n in names], -1)
    z = np.where(np.isfinite(x), (x - mean) / scale, 0.0)
    logit = z @ np.asarray(calibration["weights"], dtype=np.float64) + calibration["bias"]
    return 1.0 / (1.0 + np.exp(-np.clip(logit, -60, 60)))


def qc_status(flags: np.ndarray, fail_fraction: float = FAIL_FRACTION) -> str:
    """``fail`` / ``review`` / ``pass`` from an image's flags (module docstring)."""
    flags = np.asarray(flags, bool)
    if flags.size and flags.mean() >= fail_fraction:
        return "fail"
    return "review" if flags.any() else "pass"


def assess(result, meta: dict, calibration: dict | None):
    """``result`` with ``risk`` (None without a calibration), ``flags`` and ``qc``."""
    flags = outside_image(result.points, result.image_size)
    res = result.shape_residual
    if res is not None:  # the hard rule holds with a calibration too (module docstring)
        with np.errstate(invalid="ignore"):
            flags = flags | (np.asarray(res) > IMPLAUSIBLE_SPREADS)
    p = None
    fail = FAIL_FRACTION
    if calibration:
        p = risk(evidence(result, meta), calibration).astype(np.float32)
        flags = flags | (p >= calibration["threshold"])
        fail = min(calibration.get("fail_fraction", FAIL_FRACTION), FAIL_FRACTION)
    return replace(result, risk=p, flags=flags, qc=qc_status(flags, fail))


def flag_scores(flags: np.ndarray, wrong: np.ndarray) -> dict:
    """Precision and recall of flags for wrong points, and the fraction flagged."""
    flags, wrong = np.asarray(flags, bool), np.asarray(wrong, bool)
    caught = int((flags & wrong).sum())
    return {"n_points": int(flags.size), "n_wrong": int(wrong.sum()),
            "n_flagged": int(flags.sum()),
            "precision": float(caught / flags.sum()) if flags.any() else float("nan"),
            "recall": float(caught / wrong.sum()) if wrong.any() else float("nan"),
            "flagged_fraction": float(flags.mean()) if flags.size else float("nan")}
