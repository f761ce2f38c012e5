"""Gaussian heatmap codec: render targets from float points, decode by argmax + sub-pixel.

``encode(points (B, K, 2), visible (B, K), size (W, H), sigma=None)`` renders
``{"heatmap": (B, K, H, W) in [0, 1], "weight": (B, K)}`` on the points' device, never
rounding the points. ``decode({"heatmap": (B, K, H, W) logits})`` returns a Prediction
with points (B, K, 2) in heatmap pixels and confidence (B, K) = the peak's probability,
both float32 whatever the logits' dtype: decoding runs in float32, so bf16 or float16
logits (autocast, a half-precision model) do not round a point at x = 300.37 to the
nearest value their dtype can hold (300.0 in bf16).

Sub-pixel refinement fits a parabola through the log-probabilities at the peak and its two
neighbours along each axis: the logarithm of a Gaussian is a parabola, so a rendered
Gaussian decodes to its exact centre.
"""

from __future__ import annotations

import torch

from ..core.errors import InputError
from ..core.types import Prediction


def render_gaussians(points: torch.Tensor, size: tuple[int, int],
                     sigma: float | torch.Tensor) -> torch.Tensor:
    """(B, K, 2) points -> (B, K, H, W) Gaussians with peak 1 (unnormalised).

    ``sigma``: a float or a tensor broadcastable to (B, K), in pixels. NaN points give 0.
    """
    w, h = size
    dtype = points.dtype if points.is_floating_point() else torch.float32
    xs = torch.arange(w, device=points.device, dtype=dtype)
    ys = torch.arange(h, device=points.device, dtype=dtype)
    sig = torch.as_tensor(sigma, device=points.device, dtype=dtype)
    sig = sig.expand(points.shape[:2]) if sig.dim() else sig.expand(points.shape[:2])
    pts = torch.nan_to_num(points, nan=-1e6)
    two_s2 = (2 * sig ** 2)[..., None]
    gx = torch.exp(-((xs - pts[..., 0:1]) ** 2) / two_s2)  # (B, K, W)
    gy = torch.exp(-((ys - pts[..., 1:2]) ** 2) / two_s2)  # (B, K, H)
    return gy[..., :, None] * gx[..., None, :]


class HeatmapCodec:
    """Gaussian heatmaps with a fixed sigma (pixels of the heatmap).

    ``loss``: ``bce`` (GU2Net; outputs are logits), ``mse`` (on sigmoid(logits)) or
    ``awing`` (adaptive wing loss of Wang et al. 2019 on sigmoid(logits)).
    """

    name = "heatmap"

    def __init__(self, sigma: float = 3.0, refine: bool = True, loss: str = "bce"):
        if sigma <= 0:
            raise InputError(f"sigma must be positive, got {sigma}")
        if loss not in ("bce", "mse", "awing"):
            raise InputError(f"unknown heatmap loss {loss!r}; expected bce, mse or awing")
        self.sigma = float(sigma)
        self.refine = refine
        self.loss_name = loss

    def encode(self, points: torch.Tensor, visible: torch.Tensor, size: tuple[int, int],
               sigma: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        heat = render_gaussians(points, size, self.sigma if sigma is None else sigma)
        weight = visible.to(heat.dtype)
        return {"heatmap": heat * weight[..., None, None], "weight": weight}

    def decode(self, outputs: dict[str, torch.Tensor]) -> Prediction:
        return decode_heatmap(outputs["heatmap"], self.refine)

    def loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]):
        from .losses import LOSSES

        return LOSSES[self.loss_name](outputs, targets)


def decode_heatmap(logits: torch.Tensor, refine: bool = True) -> Prediction:
    """Argmax (+ log-parabola refinement) of (B, K, H, W) logits; confidence sigmoid(peak).
    Points and confidence are float32 whatever the logits' dtype."""
    pts, peak = decode_peaks(logits, refine, to_log=torch.nn.functional.logsigmoid)
    return Prediction(points=pts, confidence=torch.exp(peak))


def decode_peaks(score: torch.Tensor, refine: bool = True, to_log=None):
    """Argmax of a (B, K, H, W) score map, refined by a parabola through the log-score at
    the peak and its neighbours along each axis. ``to_log`` maps score values to
    log-scores (None: ``score`` is a log-score already); it must be increasing, so the
    argmax of the score is the argmax of the log-score, and it is applied only to the
    peak and its four neighbours (for logits: ``logsigmoid`` of 5 values per map instead
    of the whole map). Returns (points (B, K, 2), peak log-score (B, K)), both float32
    whatever the score's dtype (the score is cast to float32 first: a float32 score gives
    exactly what it gave before, a bf16 or float16 one what its float32 copy gives)."""
    if score.dtype != torch.float32:
        score = score.float()
    b, k, h, w = score.shape
    peak, index = score.reshape(b, k, h * w).max(dim=-1)
    y = torch.div(index, w, rounding_mode="floor")
    x = index - y * w
    pts = torch.stack([x, y], dim=-1).to(torch.float32)
    to_log = to_log or (lambda v: v)
    if refine:
        pts = pts + torch.stack([_offset(score, x, y, 1, 0, w, x, to_log),
                                 _offset(score, x, y, 0, 1, h, y, to_log)], -1)
    return pts, to_log(peak)


def _offset(score, x, y, dx, dy, n, coord, to_log):
    """Vertex of the parabola through the log-scores of the (-1, 0, +1) neighbours along
    one axis, in [-0.5, 0.5]."""
    b, k, h, w = score.shape
    flat = score.reshape(b, k, h * w)

    def at(ox, oy):
        xi = (x + ox).clamp(0, w - 1)
        yi = (y + oy).clamp(0, h - 1)
        return to_log(flat.gather(-1, (yi * w + xi)[..., None])[..., 0])

    left, centre, right = at(-dx, -dy), at(0, 0), at(dx, dy)
    denom = left - 2 * centre + right
    inside = (coord > 0) & (coord < n - 1) & (denom < -1e-12)
    offset = 0.5 * (left - right) / torch.where(inside, denom, torch.full_like(denom, -1.0))
    return torch.where(inside, offset.clamp(-0.5, 0.5), torch.zeros_like(offset))
