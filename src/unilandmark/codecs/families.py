"""Codecs of the survey's detector families (Li et al. 2022), on one contract.

Each codec has ``encode(points (B, K, 2), visible (B, K), size (W, H)) -> targets``,
``decode(outputs) -> Prediction(points (B, K, 2) in input pixels, confidence (B, K))`` and
``loss(outputs, targets) -> scalar``; every loss is masked by the visibility weight.
Outputs are the raw model outputs (logits or regressed values) named by the keys below.
Every ``decode`` computes in float32 and returns float32 points and confidence whatever
the outputs' dtype (bf16 under autocast, float16 from a half-precision model).
:class:`DisplacementCodec` also takes volumes: points (B, K, 3), size (W, H, Z), maps
(B, K, Z, H, W), as :mod:`.heatmap` does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..core.errors import InputError
from ..core.types import Prediction
from .heatmap import DIMENSIONS, decode_peaks, render_gaussians


def _grid(h: int, w: int, device, dtype=torch.float32):
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=dtype),
                            torch.arange(w, device=device, dtype=dtype), indexing="ij")
    return xs, ys


def _region_centroid(prob: torch.Tensor, radius: float) -> Prediction:
    """Weighted centroid of (B, K, H, W) ``prob`` within ``radius`` of each map's peak."""
    b, k, h, w = prob.shape
    peak, index = prob.reshape(b, k, -1).max(-1)
    py = torch.div(index, w, rounding_mode="floor").float()
    px = index.float() - py * w
    xs, ys = _grid(h, w, prob.device)
    near = (xs - px[..., None, None]) ** 2 + (ys - py[..., None, None]) ** 2 <= radius ** 2
    wgt = prob * near
    total = wgt.sum((-2, -1)).clamp(min=1e-12)
    pts = torch.stack([(wgt * xs).sum((-2, -1)) / total, (wgt * ys).sum((-2, -1)) / total], -1)
    return Prediction(points=pts, confidence=peak)


def _masked_mean(per_landmark: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return (per_landmark * weight).sum() / weight.sum().clamp(min=1.0)


class PixelClassCodec:
    """Pixel classification: each pixel is one of K landmark classes or background.

    Targets: a class map (B, H, W) with a disc of ``radius`` px per visible landmark
    (class k + 1; the nearer landmark wins where discs overlap). Outputs:
    ``{"classes": (B, K + 1, H, W) logits}``. Loss: softmax cross-entropy, landmark classes
    weighted by ``fg_weight`` against the abundant background. Decode: per class, the
    probability-weighted centroid of the pixels within ``2 * radius`` of its most
    probable pixel (a classifier's region is flat, so its centroid, not its argmax, is the point);
    confidence = the peak probability.
    """

    name = "pixel-class"

    def __init__(self, radius: float = 3.0, fg_weight: float = 10.0, **_):
        self.radius, self.fg_weight = float(radius), float(fg_weight)

    def encode(self, points, visible, size, sigma=None):
        w, h = size
        xs, ys = _grid(h, w, points.device)
        pts = torch.nan_to_num(points.float(), nan=-1e6)
        d2 = (xs - pts[..., 0, None, None]) ** 2 + (ys - pts[..., 1, None, None]) ** 2
        d2 = torch.where(visible[..., None, None], d2, torch.full_like(d2, float("inf")))
        nearest, k = d2.min(dim=1)  # (B, H, W)
        classes = torch.where(nearest <= self.radius ** 2, k + 1, torch.zeros_like(k))
        return {"classes": classes, "weight": visible.float()}

    def decode(self, outputs):
        prob = torch.softmax(outputs["classes"].float(), dim=1)[:, 1:]
        # the peak may be any pixel of a flat disc: a window of twice the radius covers it
        return _region_centroid(prob, 2 * self.radius)

    def loss(self, outputs, targets):
        """Weighted softmax cross-entropy; a landmark not visible in an image is left out
        of that image's softmax (its class logit gets no gradient there), so the model is
        never taught that the landmark is background where it is merely unannotated."""
        logits = outputs["classes"].float()
        visible = targets["weight"] > 0  # (B, K)
        hidden = torch.cat([torch.zeros_like(visible[:, :1]), ~visible], dim=1)  # (B, K + 1)
        if hidden.any():
            logits = logits.masked_fill(hidden[..., None, None], float("-inf"))
        weights = torch.full((logits.shape[1],), self.fg_weight, device=logits.device)
        weights[0] = 1.0
        return F.cross_entropy(logits, targets["classes"], weight=weights)


class PatchClassCodec:
    """Patch classification: a coarse grid of patches (``stride`` px) scored for containing
    each landmark, plus an offset regressed inside the patch.

    Outputs: ``{"patch": (B, K, H/s, W/s) logits, "offset": (B, 2K, H/s, W/s)}``. Labels by
    distance: a softmax over patches per landmark against soft labels
    ``exp(-d^2 / 2 stride^2)`` (d: patch centre to landmark), and an L1 loss on the offset
    (in patch units) of the patch that holds the landmark. Decode: the best patch, refined
    by its predicted offset; confidence = that patch's softmax probability.
    """

    name = "patch-class"

    def __init__(self, stride: int = 8, **_):
        self.stride = int(stride)

    def _centres(self, size, device):
        w, h = size
        gw, gh = math.ceil(w / self.stride), math.ceil(h / self.stride)
        xs, ys = _grid(gh, gw, device)
        s = self.stride
        return xs * s + (s - 1) / 2, ys * s + (s - 1) / 2

    def encode(self, points, visible, size, sigma=None):
        cx, cy = self._centres(size, points.device)
        pts = torch.nan_to_num(points.float(), nan=-1e6)
        d2 = (cx - pts[..., 0, None, None]) ** 2 + (cy - pts[..., 1, None, None]) ** 2
        soft = torch.exp(-d2 / (2 * self.stride ** 2))
        soft = soft / soft.sum(dim=(-2, -1), keepdim=True).clamp(min=1e-12)
        gw = cx.shape[1]
        # patch c covers pixels c*s .. c*s + s - 1, i.e. [c*s - 0.5, (c+1)*s - 0.5)
        col = ((pts[..., 0] + 0.5) / self.stride).floor().clamp(0, gw - 1)
        row = ((pts[..., 1] + 0.5) / self.stride).floor().clamp(0, cx.shape[0] - 1)
        centre = torch.stack([col * self.stride + (self.stride - 1) / 2,
                              row * self.stride + (self.stride - 1) / 2], -1)
        offset = (pts - centre) / self.stride
        return {"patch": soft, "cell": (row * gw + col).long(), "offset": offset,
                "weight": visible.float()}

    def decode(self, outputs):
        logits = outputs["patch"].float()
        b, k, gh, gw = logits.shape
        prob = torch.softmax(logits.reshape(b, k, -1), dim=-1)
        conf, cell = prob.max(dim=-1)
        off = outputs["offset"].float().reshape(b, k, 2, gh * gw)
        chosen = off.gather(-1, cell[:, :, None, None].expand(b, k, 2, 1))[..., 0]
        row = torch.div(cell, gw, rounding_mode="floor")
        col = cell - row * gw
        s = self.stride
        centre = torch.stack([col * s + (s - 1) / 2, row * s + (s - 1) / 2], -1).float()
        return Prediction(points=centre + chosen.clamp(-1, 1) * s, confidence=conf)

    def loss(self, outputs, targets):
        logits = outputs["patch"].float()
        b, k, gh, gw = logits.shape
        logp = torch.log_softmax(logits.reshape(b, k, -1), dim=-1)
        ce = -(targets["patch"].reshape(b, k, -1) * logp).sum(-1)
        off = outputs["offset"].float().reshape(b, k, 2, gh * gw)
        cell = targets["cell"].clamp(0, gh * gw - 1)
        chosen = off.gather(-1, cell[:, :, None, None].expand(b, k, 2, 1))[..., 0]
        l1 = (chosen - torch.nan_to_num(targets["offset"])).abs().sum(-1)
        return _masked_mean(ce + l1, targets["weight"])


class DirectRegressionCodec:
    """Direct coordinate regression: pooled features to 2K numbers.

    Outputs: ``{"coords": (B, K, 2)}`` in input pixels (the head maps its sigmoid outputs
    onto the input). Loss: L1 in normalised units (fractions of width and height). No
    heatmap, so no natural confidence: it is 1.
    """

    name = "direct-regression"

    def __init__(self, **_):
        pass

    def encode(self, points, visible, size, sigma=None):
        return {"points": points.float(), "weight": visible.float(), "size": size}

    def decode(self, outputs):
        coords = outputs["coords"].float()
        return Prediction(points=coords, confidence=torch.ones(
            coords.shape[:2], device=coords.device, dtype=torch.float32))

    def loss(self, outputs, targets):
        w, h = targets["size"]
        scale = torch.tensor([w, h], device=outputs["coords"].device, dtype=torch.float32)
        l1 = ((outputs["coords"].float() - torch.nan_to_num(targets["points"])) / scale)
        return _masked_mean(l1.abs().sum(-1), targets["weight"])


class DSNTCodec:
    """Integral regression / DSNT (Nibali et al. 2018): a differentiable soft-argmax.

    Outputs: ``{"heatmap": (B, K, H, W) logits}``; a spatial softmax gives a probability
    map whose expectation is the point. Loss: the Euclidean error of the expectation (in
    normalised units) plus ``reg`` x the Jensen-Shannon divergence between the map and a
    Gaussian of ``sigma`` px at the target (the DSNT regulariser). Confidence: the
    probability mass within 2 sigma of the expectation.
    """

    name = "dsnt"

    def __init__(self, sigma: float = 2.0, reg: float = 1.0, **_):
        self.sigma, self.reg = float(sigma), float(reg)

    def encode(self, points, visible, size, sigma=None):
        return {"points": points.float(), "weight": visible.float(), "size": size}

    @staticmethod
    def _soft(logits):
        b, k, h, w = logits.shape
        prob = torch.softmax(logits.float().reshape(b, k, -1), -1).reshape(b, k, h, w)
        xs, ys = _grid(h, w, logits.device)
        mean = torch.stack([(prob * xs).sum((-2, -1)), (prob * ys).sum((-2, -1))], -1)
        return prob, mean, xs, ys

    def decode(self, outputs):
        prob, mean, xs, ys = self._soft(outputs["heatmap"])
        d2 = (xs - mean[..., 0, None, None]) ** 2 + (ys - mean[..., 1, None, None]) ** 2
        conf = (prob * (d2 <= (2 * self.sigma) ** 2)).sum((-2, -1))
        return Prediction(points=mean, confidence=conf.clamp(0, 1))

    def loss(self, outputs, targets):
        prob, mean, _, _ = self._soft(outputs["heatmap"])
        b, k, h, w = prob.shape
        pts = torch.nan_to_num(targets["points"])
        scale = torch.tensor([w, h], device=prob.device, dtype=torch.float32)
        euclid = ((mean - pts) / scale).norm(dim=-1)
        gauss = render_gaussians(pts, (w, h), self.sigma)
        gauss = gauss / gauss.sum((-2, -1), keepdim=True).clamp(min=1e-12)
        mix = 0.5 * (prob + gauss)
        eps = 1e-12
        js = 0.5 * ((prob * ((prob + eps) / (mix + eps)).log()).sum((-2, -1)) +
                    (gauss * ((gauss + eps) / (mix + eps)).log()).sum((-2, -1)))
        return _masked_mean(euclid + self.reg * js, targets["weight"])


class LearnedSigmaHeatmapCodec:
    """Heatmap regression with a learnable sigma per landmark, after Payer et al. (2019).

    Outputs: ``{"heatmap": (B, K, H, W) values, "sigma": (K,) px}``. Target
    ``gamma * G_sigma(point)`` rendered with the model's current sigma, where ``G_sigma``
    peaks at 1 whatever sigma; loss ``mean((h - target)^2) + alpha * mean(sigma^2)`` (the
    penalty keeps sigma from growing). This is not Payer et al.'s exact formulation: their
    target is a normalised Gaussian, whose peak falls as sigma grows, so the data term itself
    also pulls sigma down; here only the penalty does.
    Decode: argmax of the values with a parabola through their logarithm; confidence =
    peak / gamma clamped to [0, 1].
    """

    name = "heatmap-sigma"

    def __init__(self, gamma: float = 10.0, alpha: float = 0.05, **_):
        self.gamma, self.alpha = float(gamma), float(alpha)

    def encode(self, points, visible, size, sigma=None):
        return {"points": points.float(), "weight": visible.float(), "size": size}

    def decode(self, outputs):
        heat = outputs["heatmap"].float()
        pts, peak = decode_peaks(torch.log(heat.clamp(min=1e-6)))
        return Prediction(points=pts, confidence=(torch.exp(peak) / self.gamma).clamp(0, 1))

    def loss(self, outputs, targets):
        heat = outputs["heatmap"].float()
        sigma = outputs["sigma"].float()
        b, k, h, w = heat.shape
        target = self.gamma * render_gaussians(torch.nan_to_num(targets["points"]), (w, h),
                                               sigma.expand(b, k))
        mse = ((heat - target) ** 2).mean((-2, -1))
        return _masked_mean(mse, targets["weight"]) + self.alpha * (sigma ** 2).mean()


class DisplacementCodec:
    """Displacement-map regression: per-pixel (per-voxel) offsets to each landmark plus a
    mask of where the offsets are trusted (pixels or voxels within ``radius``); images and
    volumes on one contract, D = 2 or 3 read from the points' last axis (encoding) or the
    mask's rank (decoding), as in :mod:`.heatmap`.

    Outputs: ``{"mask": (B, K, H, W) logits, "offset": (B, 2K, H, W)}`` for images,
    ``{"mask": (B, K, Z, H, W) logits, "offset": (B, 3K, Z, H, W)}`` for volumes, offsets
    in units of ``radius`` in (x, y[, z]) order per landmark (channels ``D k .. D k + D -
    1``). Targets: the mask is the disc (ball) of ``radius`` around each visible landmark,
    the offsets (point - pixel) / radius everywhere. Loss: BCE on the mask (its foreground
    weighted 10x) + L1 on the offsets inside it, averaged over visible landmarks. Decode by
    weighted voting: every pixel (voxel) votes for itself + its offset with weight
    sigmoid(mask) into a Hough accumulator; the point is the weighted mean of the votes
    within 2.5 px (voxels) of the peak of the accumulator smoothed by a 3x3 (3x3x3) mean;
    confidence = the mask's peak probability.
    """

    name = "displacement"

    def __init__(self, radius: float = 6.0, **_):
        self.radius = float(radius)

    def encode(self, points, visible, size, sigma=None):
        """(B, K, D) points, (B, K) visibility, size (W, H) or (W, H, Z) ->
        ``{"mask": (B, K, [Z,] H, W), "offset": (B, D K, [Z,] H, W), "weight": (B, K)}``;
        ``sigma`` is not used (the radius is the codec's)."""
        d = points.shape[-1]
        if d not in DIMENSIONS or len(size) != d:
            raise InputError(f"points (B, K, D) with D = 2 or 3 and a size of D values "
                             f"((W, H) or (W, H, Z)) expected, got points of shape "
                             f"{tuple(points.shape)} and size {tuple(size)}")
        spatial = tuple(size)[::-1]  # ([Z,] H, W)
        grids = _coordinates(spatial, points.device)
        pts = torch.nan_to_num(points.float(), nan=-1e6)
        at = _unit_axes(d)
        deltas = [(pts[..., a][at] - grids[a]) / self.radius for a in range(d)]
        d2 = deltas[0] ** 2
        for delta in deltas[1:]:
            d2 = d2 + delta ** 2
        mask = (d2 <= 1.0) & visible[at]
        b, k = points.shape[:2]
        offset = torch.stack(deltas, 2).reshape(b, d * k, *spatial)
        return {"mask": mask.float(), "offset": offset, "weight": visible.float()}

    def decode(self, outputs):
        """Mask logits (B, K, [Z,] H, W) and offsets (B, D K, [Z,] H, W) -> points
        (B, K, D) in (x, y[, z]) order, confidence (B, K), both float32."""
        logits = outputs["mask"].float()
        d = logits.dim() - 2
        if d not in DIMENSIONS:
            raise InputError(f"a (B, K, H, W) or (B, K, Z, H, W) mask expected, got shape "
                             f"{tuple(logits.shape)}")
        b, k = logits.shape[:2]
        spatial = logits.shape[2:]
        extents = spatial[::-1]  # (W, H[, Z]): the (x, y[, z]) order
        dims = tuple(range(-d, 0))
        prob = torch.sigmoid(logits)
        off = outputs["offset"].float().reshape(b, k, d, *spatial) * self.radius
        grids = _coordinates(spatial, logits.device)
        votes = [grids[a] + off[:, :, a] for a in range(d)]  # every pixel's (voxel's) vote
        # Hough accumulator: votes splatted to their nearest cell, weighted by trust
        index = [votes[a].round().clamp(0, extents[a] - 1).long() for a in range(d)]
        flat = index[d - 1]
        for a in range(d - 2, -1, -1):
            flat = flat * extents[a] + index[a]
        acc = torch.zeros(b, k, math.prod(spatial), device=logits.device)
        acc.scatter_add_(2, flat.reshape(b, k, -1), prob.reshape(b, k, -1))
        pool = F.avg_pool2d if d == 2 else F.avg_pool3d
        smooth = pool(acc.reshape(b * k, 1, *spatial), 3, 1, 1).reshape(b, k, -1)
        best = (smooth + 1e-3 * acc).argmax(-1)  # the raw count breaks ties
        peak = []  # unravelled, (x, y[, z]) order
        for n in extents[:-1]:
            rest = torch.div(best, n, rounding_mode="floor")
            peak.append((best - rest * n).float())
            best = rest
        peak.append(best.float())
        at = _unit_axes(d)
        near = (votes[0] - peak[0][at]) ** 2
        for a in range(1, d):
            near = near + (votes[a] - peak[a][at]) ** 2
        wgt = prob * (near <= 2.5 ** 2)
        total = wgt.sum(dims).clamp(min=1e-12)
        pts = torch.stack([(votes[a] * wgt).sum(dims) / total for a in range(d)], -1)
        return Prediction(points=pts, confidence=prob.reshape(b, k, -1).max(-1).values)

    def loss(self, outputs, targets):
        """BCE on the mask + L1 on the offsets inside it, per landmark, averaged over the
        visible ones (``targets["weight"]``); a volume's maps averaged over all voxels."""
        logits = outputs["mask"].float()
        b, k = logits.shape[:2]
        spatial = logits.shape[2:]
        d = len(spatial)
        dims = tuple(range(-d, 0))
        bce = F.binary_cross_entropy_with_logits(logits, targets["mask"], reduction="none")
        pos = targets["mask"]
        bce = (bce * (1 + 9 * pos)).mean(dims)
        off = outputs["offset"].float().reshape(b, k, d, *spatial)
        tgt = targets["offset"].reshape(b, k, d, *spatial)
        l1 = ((off - tgt).abs().sum(2) * pos).sum(dims) / pos.sum(dims).clamp(min=1)
        return _masked_mean(bce + l1, targets["weight"])


def _unit_axes(d: int) -> tuple:
    """The index that appends ``d`` unit axes: (B, K) -> (B, K, 1, ..., 1)."""
    return (...,) + (None,) * d


def _coordinates(spatial, device) -> list[torch.Tensor]:
    """The (x, y[, z]) coordinate of every cell of a ([Z,] H, W) grid, each ([Z,] H, W)
    float32 (the centre of the first cell at 0)."""
    axes = torch.meshgrid(*[torch.arange(n, device=device, dtype=torch.float32)
                            for n in spatial], indexing="ij")
    return list(axes[::-1])
