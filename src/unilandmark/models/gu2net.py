"""GU2Net (Zhu et al., MICCAI 2021): one network for several anatomies.

Local network: a U-Net whose 3x3 convolutions are separable (depthwise 3x3 per domain,
pointwise 1x1 shared, BatchNorm per domain, LeakyReLU), with per-domain 1x1 input and
output layers. Global network, per domain: the image and the local heatmap downsampled
4x, one 3x3 conv each to ``global_width / 2`` channels, five dilated 3x3 convs (dilations
1, 2, 5, 2, 1), a 1x1 output, upsampled 4x. Final heatmap
``sigmoid(local) * sigmoid(global)``, returned as its logit.

``forward(x, domain) -> {"heatmap": (B, K_domain, H, W) logits}``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import InputError
from .layers import DilatedStack, UNetTrunk, init_prior_bias, pad_to_multiple


def product_logit(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """logit(sigmoid(a) * sigmoid(b)), computed in log space.

    log p = -softplus(-a) - softplus(-b); logit = log p - log(1 - p).
    """
    log_p = (-F.softplus(-a) - F.softplus(-b)).clamp(max=-1e-7)
    return log_p - torch.log(-torch.expm1(log_p))


class LocalNet(nn.Module):
    """Per-domain 1x1 in -> shared-trunk U-Net -> per-domain 1x1 out (logits)."""

    def __init__(self, domains: dict[str, int], in_channels: int = 1, width: int = 64,
                 depth: int = 4, block: str = "separable"):
        super().__init__()
        names = list(domains)
        self.inputs = nn.ModuleDict({d: nn.Conv2d(in_channels, width, 1) for d in names})
        self.trunk = UNetTrunk(width, depth, names, block)
        self.outputs = nn.ModuleDict({d: init_prior_bias(nn.Conv2d(width, k, 1))
                                      for d, k in domains.items()})

    def forward(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        return self.outputs[domain](self.trunk(self.inputs[domain](x), domain))


class GlobalNet(nn.Module):
    """Per-domain dilated network at 1/``scale`` resolution (logits at full size).

    With ``use_local`` the downsampled local heatmap is a second input (GU2Net); without
    it the network sees the image alone (the paper's global-only ablation).
    """

    def __init__(self, domains: dict[str, int], in_channels: int = 1, width: int = 128,
                 dilations=(1, 2, 5, 2, 1), scale: int = 4, use_local: bool = True):
        super().__init__()
        self.scale = scale
        self.use_local = use_local
        half = width // 2 if use_local else width
        self.image_in = nn.ModuleDict(
            {d: nn.Conv2d(in_channels, half, 3, padding=1) for d in domains})
        if use_local:
            self.local_in = nn.ModuleDict(
                {d: nn.Conv2d(k, width - half, 3, padding=1) for d, k in domains.items()})
        self.body = nn.ModuleDict({d: DilatedStack(width, dilations) for d in domains})
        self.outputs = nn.ModuleDict({d: nn.Conv2d(width, k, 1) for d, k in domains.items()})

    def forward(self, x: torch.Tensor, domain: str, local_prob: torch.Tensor | None = None):
        """x: (B, C, H, W) image, local_prob: (B, K, H, W) -> (B, K, H, W) logits. Any H, W:
        inputs are zero-padded to multiples of ``scale`` and the logits cropped back, so
        the network always works at exactly 1/``scale`` (as :class:`UNetTrunk` does)."""
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.scale)
        if local_prob is not None:
            local_prob = pad_to_multiple(local_prob, self.scale)
        size = x.shape[-2:]
        small = (size[0] // self.scale, size[1] // self.scale)
        # anti-aliased resizing in float32 (it has no bf16 kernel on the CPU)
        feats = self.image_in[domain](F.interpolate(x.float(), size=small, mode="bilinear",
                                                    align_corners=False, antialias=True))
        if self.use_local:
            heat = F.interpolate(local_prob.float(), size=small, mode="bilinear",
                                 align_corners=False, antialias=True)
            feats = torch.cat([feats, self.local_in[domain](heat)], dim=1)
        out = self.outputs[domain](self.body[domain](feats))
        return F.interpolate(out, size=size, mode="bilinear", align_corners=False)[..., :h, :w]


class GU2Net(nn.Module):
    """The universal model. ``domains``: {domain name: number of landmarks}.

    ``variant``: ``full`` (local x global), ``local`` (local network only) or ``global``
    (global network on the image only) — the paper's ablations.
    """

    def __init__(self, domains: dict[str, int], in_channels: int = 1, width: int = 64,
                 depth: int = 4, global_width: int = 128, dilations=(1, 2, 5, 2, 1),
                 variant: str = "full"):
        super().__init__()
        if variant not in ("full", "local", "global"):
            raise InputError(f"unknown GU2Net variant {variant!r}")
        self.domains = list(domains)
        self.variant = variant
        self.local = LocalNet(domains, in_channels, width, depth) if variant != "global" else None
        self.glob = (GlobalNet(domains, in_channels, global_width, dilations,
                               use_local=variant == "full") if variant != "local" else None)

    def forward(self, x: torch.Tensor, domain: str) -> dict[str, torch.Tensor]:
        if self.variant == "global":
            return {"heatmap": self.glob(x, domain)}
        local = self.local(x, domain)
        if self.variant == "local":
            return {"heatmap": local}
        glob = self.glob(x, domain, torch.sigmoid(local))
        return {"heatmap": product_logit(local, glob)}


class UNet(nn.Module):
    """A plain U-Net shared by all domains (3x3 convs, shared BatchNorm), with per-domain
    1x1 input and output layers. ``forward(x, domain) -> {"heatmap": logits}``."""

    def __init__(self, domains: dict[str, int], in_channels: int = 1, width: int = 64,
                 depth: int = 4, **_unused):
        super().__init__()
        self.domains = list(domains)
        self.local = LocalNet(domains, in_channels, width, depth, block="plain")

    def forward(self, x: torch.Tensor, domain: str) -> dict[str, torch.Tensor]:
        return {"heatmap": self.local(x, domain)}
