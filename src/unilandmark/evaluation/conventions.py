"""A site's conventions: the per-landmark systematic offset of a model from its annotations.

Two experts put porion or gonion a millimetre or two apart, consistently: that part of a
model's error at a new site is a habit (a convention), not noise, and it is what adapting
the domain to the site removes (docs/adapt.md). :func:`convention_offsets` splits each
landmark's errors over a set of images into the mean offset (the convention) and the
spread around it; :func:`convention_table` says which offsets exceed their own
uncertainty.
"""

from __future__ import annotations

import numpy as np

#: an offset counts as a convention (not chance) when it exceeds this many standard
#: errors of its mean
SIGNIFICANT_SE = 2.0


def convention_offsets(pred: np.ndarray, truth: np.ndarray,
                       scale: np.ndarray | float | None = None) -> dict[str, np.ndarray]:
    """Per-landmark offsets of ``pred`` from ``truth``.

    pred, truth : (N, K, D) points in the same pixel frame (NaN: not visible, left out).
    scale : None (offsets in pixels), a scalar or per-image per-axis factors broadcastable
    to (N, K, D), e.g. spacing (N, 1, D) for millimetres.

    Returns ``mean`` (K, D) the mean offset pred - truth (scaled), ``mean_px`` (K, D) the
    same in pixels (to subtract from predictions), ``magnitude`` (K,) its length, ``sd``
    (K,) the RMS distance of the per-image offsets from the mean (the spread that is not
    convention), ``se`` (K,) the standard error of the mean offset's length (sd / sqrt n),
    ``n`` (K,) images where both points are given.
    """
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape or pred.ndim != 3:
        raise ValueError(f"pred {pred.shape} and truth {truth.shape}: expected two (N, K, D)")
    diff_px = pred - truth
    diff = diff_px * (1.0 if scale is None else np.asarray(scale, dtype=np.float64))
    valid = np.isfinite(diff).all(-1)
    n = valid.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n[:, None] > 0, np.nansum(np.where(valid[..., None], diff, 0), 0)
                        / np.maximum(n, 1)[:, None], np.nan)
        mean_px = np.where(n[:, None] > 0, np.nansum(np.where(valid[..., None], diff_px, 0),
                                                     0) / np.maximum(n, 1)[:, None], np.nan)
        resid = np.where(valid[..., None], diff - mean[None], np.nan)
        sd = np.sqrt(np.nansum((resid ** 2).sum(-1), 0) / np.maximum(n - 1, 1))
        sd = np.where(n > 1, sd, np.nan)
        se = sd / np.sqrt(np.maximum(n, 1))
    return {"mean": mean, "mean_px": np.nan_to_num(mean_px), "magnitude":
            np.sqrt((mean ** 2).sum(-1)), "sd": sd, "se": se, "n": n}


def convention_table(offsets: dict[str, np.ndarray], names, unit: str) -> list[dict]:
    """One row per landmark (largest offset first): name, dx, dy (dz), offset, spread,
    standard error, n, and ``significant`` (offset > ``SIGNIFICANT_SE`` standard errors)."""
    rows = []
    axes = "xyz"[:offsets["mean"].shape[1]]
    for k, name in enumerate(names):
        mag, se = float(offsets["magnitude"][k]), float(offsets["se"][k])
        row = {"landmark": name, "unit": unit, "n": int(offsets["n"][k]),
               **{f"d{a}": float(offsets["mean"][k, i]) for i, a in enumerate(axes)},
               "offset": mag, "spread": float(offsets["sd"][k]), "se": se,
               "significant": bool(np.isfinite(se) and mag > SIGNIFICANT_SE * se)}
        rows.append(row)
    return sorted(rows, key=lambda r: -np.nan_to_num(r["offset"], nan=-1.0))
