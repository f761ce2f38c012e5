"""A point distribution model of a domain's landmark configurations.

Built from the training shapes: generalised Procrustes alignment (similarity: rotation,
isotropic scale, translation; no reflection) to a mean shape of unit RMS size, then PCA
of the aligned shapes. A predicted configuration is fitted robustly (similarity + the
modes, coefficients bounded at +-3 SD, weights from the confidences and a Tukey
re-weighting of the residuals), and each landmark's residual is expressed in units of its
own spread over the training shapes: a landmark whose residual is large is implausible
given where the others are.

Shapes are ``(K, 2)`` arrays of ``(x, y)`` points in any one frame (original pixels); the
model is unit-free (Procrustes removes position, rotation and size).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import InputError

#: fraction of the shape variance the retained modes explain
VARIANCE_KEPT = 0.90
#: at most this many modes: more would let the fit bend towards a gross miss
MAX_MODES = 8
#: modes are bounded at this many standard deviations when fitting
MODE_BOUND = 3.0


@dataclass(frozen=True)
class ShapeModel:
    """mean (K, 2) unit RMS size, centred; modes (M, 2K) orthonormal; sd (M,) mode SDs;
    spread (K,) RMS residual of each landmark over the training shapes (unit size)."""

    mean: np.ndarray
    modes: np.ndarray
    sd: np.ndarray
    spread: np.ndarray

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "modes": self.modes.tolist(),
                "sd": self.sd.tolist(), "spread": self.spread.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> ShapeModel:
        k = len(data["mean"])
        modes = np.asarray(data["modes"], dtype=np.float64).reshape(-1, 2 * k)
        return cls(np.asarray(data["mean"], dtype=np.float64), modes,
                   np.asarray(data["sd"], dtype=np.float64),
                   np.asarray(data["spread"], dtype=np.float64))


def similarity(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None):
    """Weighted least-squares similarity ``dst ~ s R src + t`` for (K, 2) point sets.

    Returns (scale s, rotation R (2, 2), translation t (2,)); no reflection (Umeyama).
    """
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / max(w.sum(), 1e-12)
    mu_s, mu_d = w @ src, w @ dst
    a, b = src - mu_s, dst - mu_d
    cov = (b * w[:, None]).T @ a
    u, sing, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    fix = np.diag([1.0, d])
    rot = u @ fix @ vt
    var = float((w * (a ** 2).sum(1)).sum())
    scale = float((sing * np.diag(fix)).sum() / max(var, 1e-12))
    return scale, rot, mu_d - scale * rot @ mu_s


def _apply(scale, rot, shift, points):
    return scale * points @ rot.T + shift


def _normalise(shape: np.ndarray) -> np.ndarray:
    centred = shape - shape.mean(0)
    return centred / max(np.sqrt((centred ** 2).sum(1).mean()), 1e-12)


def build_shape_model(shapes: np.ndarray, visible: np.ndarray | None = None,
                      iterations: int = 10, folds: int = 5) -> ShapeModel:
    """Fit a ShapeModel to training shapes (N, K, 2); ``visible`` (N, K) bool.

    Invisible points are filled from the current mean in the aligned frame. Needs at
    least 3 shapes and 3 landmarks. With at least ``2 * folds`` shapes, each landmark's
    spread is measured out of sample (``folds``-fold: each shape fitted by a model built
    without it), which is what a new configuration will show; else in sample.
    """
    shapes = np.asarray(shapes, dtype=np.float64)
    n, k, _ = shapes.shape
    if n < 3 or k < 3:
        raise InputError(f"a shape model needs at least 3 shapes of 3 landmarks, got {n} of {k}")
    vis = np.ones((n, k), bool) if visible is None else np.asarray(visible, bool)
    vis = vis & np.isfinite(shapes).all(-1)
    full = vis.all(1)
    mean = _normalise(shapes[np.argmax(vis.sum(1))].copy())
    if full.any():
        mean = _normalise(shapes[full].mean(0))
    aligned = np.zeros_like(shapes)
    for _ in range(iterations):
        for i in range(n):
            m = vis[i]
            s, r, t = similarity(shapes[i][m], mean[m])
            aligned[i] = np.where(m[:, None], _apply(s, r, t, np.nan_to_num(shapes[i])), mean)
        new = _normalise(aligned.mean(0))
        s, r, t = similarity(new, mean)  # keep the mean's orientation fixed
        new = _normalise(_apply(s, r, t, new))
        converged = np.abs(new - mean).max() < 1e-9
        mean = new
        if converged:
            break
    flat = (aligned - mean).reshape(n, 2 * k)
    _, sing, vt = np.linalg.svd(flat, full_matrices=False)
    var = sing ** 2 / max(n - 1, 1)
    keep = int(np.searchsorted(np.cumsum(var) / max(var.sum(), 1e-12), VARIANCE_KEPT) + 1)
    keep = max(1, min(keep, MAX_MODES, n - 1, 2 * k - 4, len(var)))
    modes, sd = vt[:keep], np.sqrt(var[:keep])
    recon = flat @ modes.T @ modes
    resid = np.linalg.norm((flat - recon).reshape(n, k, 2), axis=-1)
    resid = np.where(vis, resid, np.nan)
    spread = np.sqrt(np.nanmean(resid ** 2, axis=0))
    spread = np.maximum(np.nan_to_num(spread, nan=0.0), 0.25 * np.nanmedian(spread) + 1e-6)
    model = ShapeModel(mean, modes, sd, spread)
    if folds > 1 and n >= 2 * folds:
        held_out = np.full((n, k), np.nan)
        for f in range(folds):
            hold = np.arange(n) % folds == f
            sub = build_shape_model(shapes[~hold], vis[~hold], iterations, folds=0)
            for i in np.flatnonzero(hold):
                fit = fit_shape(sub, np.where(vis[i][:, None], shapes[i], np.nan))
                held_out[i] = fit.residual * sub.spread
        cv = np.sqrt(np.nanmean(held_out ** 2, axis=0))
        cv = np.where(np.isfinite(cv), cv, spread)
        model = ShapeModel(mean, modes, sd, np.maximum(cv, spread))
    return model


@dataclass(frozen=True)
class ShapeFit:
    """fitted (K, 2) model points in the input frame; residual (K,) distance between
    each input point and its fitted position, in units of that landmark's training
    spread; size: the fitted shape's RMS size in the input frame's units."""

    fitted: np.ndarray
    residual: np.ndarray
    size: float


def fit_shape(model: ShapeModel, points: np.ndarray, weights: np.ndarray | None = None,
              iterations: int = 12) -> ShapeFit:
    """Robustly fit the model to one configuration ``points`` (K, 2).

    ``weights`` (K,) >= 0 (e.g. confidences; 0 or NaN points are ignored). Tukey
    re-weighting of the residuals (cut-off 4 spreads) keeps a few gross misses from
    pulling the fit.
    """
    pts = np.asarray(points, dtype=np.float64)
    k = len(pts)
    base = np.ones(k) if weights is None else np.nan_to_num(np.asarray(weights, float))
    base = np.where(np.isfinite(pts).all(1), np.clip(base, 0, None), 0.0)
    if (base > 0).sum() < 3:
        nan = np.full(k, np.nan)
        return ShapeFit(np.full((k, 2), np.nan), nan, float("nan"))
    filled = np.nan_to_num(pts)
    b = np.zeros(len(model.sd))
    w = base.copy()
    for _ in range(iterations):
        shape = model.mean + (b @ model.modes).reshape(k, 2)
        s, r, t = similarity(shape, filled, w)
        inverse = (filled - t) @ r / max(s, 1e-12)  # the points in the model frame
        # weighted ridge projection of the residual onto the modes, bounded
        diff = (inverse - model.mean).reshape(-1)
        wv = np.repeat(w, 2)
        a = (model.modes * wv) @ model.modes.T + np.diag(1.0 / np.maximum(model.sd, 1e-9) ** 2
                                                         * 1e-3)
        b = np.linalg.solve(a, (model.modes * wv) @ diff)
        b = np.clip(b, -MODE_BOUND * model.sd, MODE_BOUND * model.sd)
        shape = model.mean + (b @ model.modes).reshape(k, 2)
        resid = np.linalg.norm(inverse - shape, axis=-1) / model.spread
        u = np.clip(resid / 4.0, 0, 1)
        w = base * (1 - u ** 2) ** 2 + 1e-6 * base
    s, r, t = similarity(shape, filled, w)
    fitted = _apply(s, r, t, shape)
    resid = np.linalg.norm(filled - fitted, axis=-1) / max(s, 1e-12) / model.spread
    resid = np.where(np.isfinite(pts).all(1), resid, np.nan)
    return ShapeFit(fitted, resid, float(s))
