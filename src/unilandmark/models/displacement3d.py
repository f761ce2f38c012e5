"""3-D displacement maps: the survey's CBCT method (3 offset maps per landmark, voting).

The trunk is :class:`.gu2net3d.UNet3d`'s (a 3-D U-Net of 3x3x3 convs shared by all
domains, per-domain 1x1x1 input) with BatchNorm per domain, as the 2-D family backbone
(:class:`.families.FamilyNet`) has it (every batch holds one domain, so shared running
statistics would mix domains); the head per domain one 1x1x1 conv to ``4 K`` channels:
K mask logits (bias at the heatmap prior, so the mask starts near 0) and 3K offsets,
(dx, dy, dz) per landmark in units of the codec's radius
(:class:`..codecs.DisplacementCodec`, which decodes them by 3-D voting). Defaults
``width=16``, ``depth=3`` (small on purpose: 3-D memory).

``forward(x (B, C, Z, H, W), domain) -> {"mask": (B, K, Z, H, W) logits,
"offset": (B, 3K, Z, H, W)}``.
"""

from __future__ import annotations

import torch
from torch import nn

from .gu2net3d import DEPTH_3D, WIDTH_3D
from .layers import PRIOR_BIAS
from .layers3d import UNetTrunk3d


class Displacement3d(nn.Module):
    """Per-domain 1x1x1 in -> shared 3-D U-Net (BatchNorm per domain) -> per-domain 1x1x1
    out to K mask logits and 3K offsets. ``domains``: {domain name: number of landmarks}."""

    def __init__(self, domains: dict[str, int], in_channels: int = 1, width: int = WIDTH_3D,
                 depth: int = DEPTH_3D, **_unused):
        super().__init__()
        self.domains = list(domains)
        self.landmarks = dict(domains)
        self.inputs = nn.ModuleDict({d: nn.Conv3d(in_channels, width, 1) for d in domains})
        self.trunk = UNetTrunk3d(width, depth, self.domains, block="plain-domain-norm")
        self.outputs = nn.ModuleDict({d: nn.Conv3d(width, 4 * k, 1)
                                      for d, k in domains.items()})
        with torch.no_grad():
            for d, k in domains.items():
                self.outputs[d].bias[:k].fill_(PRIOR_BIAS)

    def forward(self, x: torch.Tensor, domain: str) -> dict[str, torch.Tensor]:
        out = self.outputs[domain](self.trunk(self.inputs[domain](x), domain))
        k = self.landmarks[domain]
        return {"mask": out[:, :k], "offset": out[:, k:]}
