"""Per-family heads on the shared backbone's full-resolution features.

Each head maps ``(features (B, width, H, W), image (B, C, H, W))`` to the outputs its
codec expects (see ``codecs``). One head per domain (different landmark counts).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import PRIOR_BIAS, init_prior_bias


class HeatmapHead(nn.Module):
    """1x1 conv -> ``{"heatmap": (B, K, H, W)}`` (logits, or values for regression)."""

    def __init__(self, width: int, k: int, prior: bool = True, **_):
        super().__init__()
        self.out = nn.Conv2d(width, k, 1)
        if prior:
            init_prior_bias(self.out)

    def forward(self, feats, image):
        return {"heatmap": self.out(feats)}


class SigmaHeatmapHead(HeatmapHead):
    """Heatmap values plus a learnable sigma per landmark (initialised at ``sigma``)."""

    def __init__(self, width: int, k: int, sigma: float = 3.0, **_):
        super().__init__(width, k, prior=False)  # regressed values start near 0 anyway
        self.log_sigma = nn.Parameter(torch.full((k,), math.log(sigma)))

    def forward(self, feats, image):
        return {"heatmap": self.out(feats), "sigma": self.log_sigma.exp()}


class PixelClassHead(nn.Module):
    """1x1 conv -> ``{"classes": (B, K + 1, H, W)}`` (background first)."""

    def __init__(self, width: int, k: int, **_):
        super().__init__()
        self.out = nn.Conv2d(width, k + 1, 1)
        with torch.no_grad():  # background first: p(background) ~ 0.99 at the start
            self.out.bias.zero_()
            self.out.bias[0] = -PRIOR_BIAS + math.log(k)

    def forward(self, feats, image):
        return {"classes": self.out(feats)}


class PatchHead(nn.Module):
    """Average-pool to ``stride``-px patches -> 3x3 conv -> patch logits and offsets."""

    def __init__(self, width: int, k: int, stride: int = 8, **_):
        super().__init__()
        self.stride = stride
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.01))
        self.out = nn.Conv2d(width, 3 * k, 1)
        self.k = k

    def forward(self, feats, image):
        pooled = F.avg_pool2d(feats, self.stride, ceil_mode=True)
        out = self.out(self.body(pooled))
        return {"patch": out[:, :self.k], "offset": out[:, self.k:]}


class DirectRegressionHead(nn.Module):
    """Adaptive-pool to 4x4 -> MLP -> sigmoid -> 2K coordinates in input pixels."""

    def __init__(self, width: int, k: int, **_):
        super().__init__()
        self.k = k
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(16 * width, 256), nn.LeakyReLU(0.01),
                                 nn.Linear(256, 2 * k))

    def forward(self, feats, image):
        h, w = feats.shape[-2:]
        unit = torch.sigmoid(self.mlp(F.adaptive_avg_pool2d(feats, 4))).view(-1, self.k, 2)
        size = torch.tensor([w, h], device=feats.device, dtype=unit.dtype)
        return {"coords": unit * size - 0.5}


class DisplacementHead(nn.Module):
    """1x1 conv -> ``{"mask": (B, K, H, W) logits, "offset": (B, 2K, H, W)}``."""

    def __init__(self, width: int, k: int, **_):
        super().__init__()
        self.k = k
        self.out = nn.Conv2d(width, 3 * k, 1)
        with torch.no_grad():
            self.out.bias[:k].fill_(PRIOR_BIAS)

    def forward(self, feats, image):
        out = self.out(feats)
        return {"mask": out[:, :self.k], "offset": out[:, self.k:]}


class SpatialConfigurationHead(nn.Module):
    """SCN (Payer et al., MedIA 2019): local appearance heatmaps x spatial configuration.

    H_LA = a 1x1 conv of the backbone features (linear). H_SC = H_LA downsampled by
    ``down``, four 7x7 convs (LeakyReLU, the last with tanh), upsampled back. Output
    ``H_LA * H_SC`` as regressed heatmap values, with a learnable sigma per landmark.
    """

    def __init__(self, width: int, k: int, sigma: float = 3.0, down: int = 4,
                 sc_width: int = 64, **_):
        super().__init__()
        self.down = down
        self.local = nn.Conv2d(width, k, 1)
        layers = []
        chans = [k, sc_width, sc_width, sc_width]
        for a, b in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.Conv2d(a, b, 7, padding=3), nn.LeakyReLU(0.1)]
        last = nn.Conv2d(sc_width, k, 7, padding=3)
        with torch.no_grad():  # start with H_SC = tanh(1) ~ 0.76, not 0: the product
            last.bias.fill_(1.0)  # H_LA x H_SC would otherwise hide H_LA's gradient
        layers += [last, nn.Tanh()]
        self.spatial = nn.Sequential(*layers)
        self.log_sigma = nn.Parameter(torch.full((k,), math.log(sigma)))

    def forward(self, feats, image):
        local = self.local(feats)
        h, w = local.shape[-2:]
        small = F.avg_pool2d(local, self.down, ceil_mode=True)
        spatial = F.interpolate(self.spatial(small), size=(h, w), mode="bilinear",
                                align_corners=False)
        return {"heatmap": local * spatial, "sigma": self.log_sigma.exp(),
                "local": local, "spatial": spatial}


HEADS = {
    "heatmap": HeatmapHead,
    "heatmap-sigma": SigmaHeatmapHead,
    "pixel-class": PixelClassHead,
    "patch-class": PatchHead,
    "direct-regression": DirectRegressionHead,
    "displacement": DisplacementHead,
    "scn": SpatialConfigurationHead,
}
