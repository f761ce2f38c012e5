"""Gaussian heatmap codec: render targets from float points, decode by argmax + sub-pixel.

One N-dimensional contract for images and volumes; D = 2 or 3 is read from the points'
last axis (rendering) or the heatmap's rank (decoding). Shape legend: points (B, K, D) in
(x, y[, z]) order, x fastest (the array's last axis), the centre of the first pixel or
voxel at 0; ``size`` (W, H) or (W, H, Z), in the same order; heatmaps (B, K, H, W) or
(B, K, Z, H, W).

``encode(points (B, K, D), visible (B, K), size, sigma=None)`` renders
``{"heatmap": (B, K, H, W) or (B, K, Z, H, W) in [0, 1], "weight": (B, K)}`` on the
points' device, never rounding the points. ``decode({"heatmap": (B, K, H, W) or
(B, K, Z, H, W) logits})`` returns a Prediction with points (B, K, D) in heatmap pixels
(voxels) and confidence (B, K) = the peak's probability, both float32 whatever the logits'
dtype: decoding runs in float32, so bf16 or float16 logits (autocast, a half-precision
model) do not round a point at x = 300.37 to the nearest value their dtype can hold
(300.0 in bf16).

Sub-pixel refinement fits a parabola through the log-probabilities at the peak and its two
neighbours along each axis: the logarithm of a Gaussian is a parabola, so a rendered
Gaussian decodes to its exact centre.
"""

from __future__ import annotations

import torch

from ..core.errors import InputError
from ..core.types import Prediction

#: the spatial dimensions a codec handles: images (2) and volumes (3)
DIMENSIONS = (2, 3)


def render_gaussians(points: torch.Tensor, size: tuple[int, ...],
                     sigma: float | torch.Tensor) -> torch.Tensor:
    """(B, K, D) points -> (B, K, H, W) or (B, K, Z, H, W) Gaussians with peak 1
    (unnormalised), D = 2 or 3 with ``size`` (W, H) or (W, H, Z).

    ``sigma``: a float or a tensor broadcastable to (B, K), in pixels (voxels), the same
    along every axis. NaN points give 0.
    """
    d = points.shape[-1]
    if d not in DIMENSIONS or len(size) != d:
        raise InputError(f"points (B, K, D) with D = 2 or 3 and a size of D values "
                         f"((W, H) or (W, H, Z)) expected, got points of shape "
                         f"{tuple(points.shape)} and size {tuple(size)}")
    dtype = points.dtype if points.is_floating_point() else torch.float32
    sig = torch.as_tensor(sigma, device=points.device, dtype=dtype)
    sig = sig.expand(points.shape[:2])
    pts = torch.nan_to_num(points, nan=-1e6)
    two_s2 = (2 * sig ** 2)[..., None]
    # one 1-D Gaussian per axis, (B, K, n), in (x, y[, z]) order
    profiles = [torch.exp(-((torch.arange(n, device=points.device, dtype=dtype)
                              - pts[..., a:a + 1]) ** 2) / two_s2)
                for a, n in enumerate(size)]
    # their outer product, slowest axis first: z (volumes) or y, then ..., then x
    heat = profiles[-1]
    for a in range(d - 2, -1, -1):
        g = profiles[a]
        heat = heat[..., None] * g.reshape(g.shape[:2] + (1,) * (d - 1 - a) + g.shape[-1:])
    return heat


class HeatmapCodec:
    """Gaussian heatmaps with a fixed sigma (pixels, or voxels, of the heatmap); heatmaps
    (B, K, H, W) or (B, K, Z, H, W), points (B, K, 2) or (B, K, 3).

    ``loss``: ``bce`` (GU2Net; outputs are logits), ``mse`` (on sigmoid(logits)) or
    ``awing`` (adaptive wing loss of Wang et al. 2019 on sigmoid(logits); images only).
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

    def encode(self, points: torch.Tensor, visible: torch.Tensor, size: tuple[int, ...],
               sigma: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """(B, K, D) points, (B, K) visibility, size (W, H) or (W, H, Z) ->
        ``{"heatmap": (B, K, H, W) or (B, K, Z, H, W), "weight": (B, K)}``."""
        heat = render_gaussians(points, size, self.sigma if sigma is None else sigma)
        weight = visible.to(heat.dtype)
        spatial = (None,) * (heat.dim() - 2)
        return {"heatmap": heat * weight[(..., *spatial)], "weight": weight}

    def decode(self, outputs: dict[str, torch.Tensor]) -> Prediction:
        """``{"heatmap": (B, K, H, W) or (B, K, Z, H, W) logits}`` -> points (B, K, D),
        confidence (B, K), float32."""
        return decode_heatmap(outputs["heatmap"], self.refine)

    def loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]):
        """The loss over visible landmarks (``targets["weight"]``); a volume's (Z, H, W)
        maps are averaged over all their voxels (the losses average the last two axes, so
        Z and H are folded into one)."""
        from .losses import LOSSES

        logits = outputs["heatmap"]
        if logits.dim() == 5:
            if self.loss_name == "awing":
                raise InputError("the awing heatmap loss dilates its foreground in 2-D: "
                                 "it does not take volumes yet; use bce or mse")
            outputs = {**outputs, "heatmap": logits.flatten(2, 3)}
            targets = {**targets, "heatmap": targets["heatmap"].flatten(2, 3)}
        return LOSSES[self.loss_name](outputs, targets)


def decode_heatmap(logits: torch.Tensor, refine: bool = True) -> Prediction:
    """Argmax (+ log-parabola refinement) of (B, K, H, W) or (B, K, Z, H, W) logits;
    points (B, K, D), confidence sigmoid(peak). Points and confidence are float32 whatever
    the logits' dtype."""
    pts, peak = decode_peaks(logits, refine, to_log=torch.nn.functional.logsigmoid)
    return Prediction(points=pts, confidence=torch.exp(peak))


def decode_peaks(score: torch.Tensor, refine: bool = True, to_log=None):
    """Argmax of a (B, K, H, W) or (B, K, Z, H, W) score map, refined by a parabola through
    the log-score at the peak and its two neighbours along each axis. ``to_log`` maps score
    values to log-scores (None: ``score`` is a log-score already); it must be increasing,
    so the argmax of the score is the argmax of the log-score, and it is applied only to
    the peak and its 2D neighbours (for logits: ``logsigmoid`` of 5 values per map instead
    of the whole map, 7 in a volume). Returns (points (B, K, D) in (x, y[, z]) order, peak
    log-score (B, K)), both float32 whatever the score's dtype (the score is cast to float32
    first: a float32 score gives exactly what it gave before, a bf16 or float16 one what its
    float32 copy gives). Branches only on the rank, never on values: traceable."""
    if score.dim() - 2 not in DIMENSIONS:
        raise InputError(f"a (B, K, H, W) or (B, K, Z, H, W) score map expected, got shape "
                         f"{tuple(score.shape)}")
    if score.dtype != torch.float32:
        score = score.float()
    b, k = score.shape[:2]
    extents = score.shape[2:]  # ([Z,] H, W): slowest axis first
    strides = [1] * len(extents)
    for a in range(len(extents) - 2, -1, -1):
        strides[a] = strides[a + 1] * extents[a + 1]
    flat = score.reshape(b, k, strides[0] * extents[0])
    peak, index = flat.max(dim=-1)
    coords, rest = [], index  # unravelled, slowest axis first
    for stride in strides[:-1]:
        c = torch.div(rest, stride, rounding_mode="floor")
        coords.append(c)
        rest = rest - c * stride
    coords.append(rest)
    # (x, y[, z]) order: the array's axes reversed
    coords, extents, strides = coords[::-1], extents[::-1], strides[::-1]
    pts = torch.stack(coords, dim=-1).to(torch.float32)
    to_log = to_log or (lambda v: v)
    if refine:
        centre = to_log(flat.gather(-1, index[..., None])[..., 0])
        pts = pts + torch.stack([_offset(flat, index, c, s, n, centre, to_log)
                                 for c, s, n in zip(coords, strides, extents, strict=True)],
                                -1)
    return pts, to_log(peak)


def _offset(flat, index, coord, stride, n, centre, to_log):
    """Vertex of the parabola through the log-scores of the (-1, 0, +1) neighbours along
    one axis (``coord`` on it, of ``n`` cells, ``stride`` apart in the flattened (B, K, N)
    map ``flat``; ``centre``: the log-score at ``index``), in [-0.5, 0.5]; 0 at the map's
    border or where the log-scores do not curve down."""

    def at(step):
        shifted = index + ((coord + step).clamp(0, n - 1) - coord) * stride
        return to_log(flat.gather(-1, shifted[..., None])[..., 0])

    left, right = at(-1), at(1)
    denom = left - 2 * centre + right
    inside = (coord > 0) & (coord < n - 1) & (denom < -1e-12)
    offset = 0.5 * (left - right) / torch.where(inside, denom, torch.full_like(denom, -1.0))
    return torch.where(inside, offset.clamp(-0.5, 0.5), torch.zeros_like(offset))
