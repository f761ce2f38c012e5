"""GU2Net in 3-D: one network for several volume domains, and a plain 3-D U-Net.

The counterparts of :mod:`.gu2net` for volumes ``(B, C, Z, H, W)``. Local network: a 3-D
U-Net whose 3x3x3 convolutions are separable (depthwise 3x3x3 per domain, pointwise
1x1x1 shared, BatchNorm per domain, LeakyReLU), with per-domain 1x1x1 input and output
layers. Global network, per domain: the volume and the local heatmap downsampled 4x
(antialiased trilinear), one 3x3x3 conv each to ``global_width / 2`` channels, five
dilated 3x3x3 convs (dilations 1, 2, 5, 2, 1), a 1x1x1 output, upsampled 4x (trilinear).
Final heatmap ``sigmoid(local) * sigmoid(global)``, returned as its logit
(:func:`.gu2net.product_logit`).

Widths are small by default because 3-D activations and 3x3x3 kernels cost far more than
their 2-D counterparts: ``width=16``, ``depth=3``, ``global_width=32`` (the 2-D models'
defaults are 64, 4 and 128).

``forward(x, domain) -> {"heatmap": (B, K_domain, Z, H, W) logits}``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import InputError
from .gu2net import product_logit
from .layers import init_prior_bias
from .layers3d import DilatedStack3d, UNetTrunk3d, downsample_3d, pad_to_multiple_3d

#: the 3-D models' default sizes (small: 3-D memory)
WIDTH_3D, DEPTH_3D, GLOBAL_WIDTH_3D = 16, 3, 32


class LocalNet3d(nn.Module):
    """Per-domain 1x1x1 in -> shared-trunk 3-D U-Net -> per-domain 1x1x1 out (logits).

    Default ``width=16``, ``depth=3`` (small on purpose: 3-D memory)."""

    def __init__(self, domains: dict[str, int], in_channels: int = 1, width: int = WIDTH_3D,
                 depth: int = DEPTH_3D, block: str = "separable"):
        super().__init__()
        names = list(domains)
        self.inputs = nn.ModuleDict({d: nn.Conv3d(in_channels, width, 1) for d in names})
        self.trunk = UNetTrunk3d(width, depth, names, block)
        self.outputs = nn.ModuleDict({d: init_prior_bias(nn.Conv3d(width, k, 1))
                                      for d, k in domains.items()})

    def forward(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        return self.outputs[domain](self.trunk(self.inputs[domain](x), domain))


class GlobalNet3d(nn.Module):
    """Per-domain dilated 3-D network at 1/``scale`` resolution (logits at full size).

    With ``use_local`` the downsampled local heatmap is a second input (GU2Net); without
    it the network sees the volume alone (the global-only ablation). Default
    ``width=32`` (small on purpose: 3-D memory).
    """

    def __init__(self, domains: dict[str, int], in_channels: int = 1,
                 width: int = GLOBAL_WIDTH_3D, dilations=(1, 2, 5, 2, 1), scale: int = 4,
                 use_local: bool = True):
        super().__init__()
        self.scale = scale
        self.use_local = use_local
        half = width // 2 if use_local else width
        self.image_in = nn.ModuleDict(
            {d: nn.Conv3d(in_channels, half, 3, padding=1) for d in domains})
        if use_local:
            self.local_in = nn.ModuleDict(
                {d: nn.Conv3d(k, width - half, 3, padding=1) for d, k in domains.items()})
        self.body = nn.ModuleDict({d: DilatedStack3d(width, dilations) for d in domains})
        self.outputs = nn.ModuleDict({d: nn.Conv3d(width, k, 1) for d, k in domains.items()})

    def forward(self, x: torch.Tensor, domain: str, local_prob: torch.Tensor | None = None):
        """x: (B, C, Z, H, W) volume, local_prob: (B, K, Z, H, W) -> (B, K, Z, H, W) logits.
        Any Z, H, W: inputs are zero-padded to multiples of ``scale`` and the logits
        cropped back, so the network always works at exactly 1/``scale``."""
        z, h, w = x.shape[-3:]
        x = pad_to_multiple_3d(x, self.scale)
        if local_prob is not None:
            local_prob = pad_to_multiple_3d(local_prob, self.scale)
        size = x.shape[-3:]
        # antialiased resizing in float32 (as in 2-D; the CPU has no bf16 kernels for it)
        feats = self.image_in[domain](downsample_3d(x.float(), self.scale))
        if self.use_local:
            heat = downsample_3d(local_prob.float(), self.scale)
            feats = torch.cat([feats, self.local_in[domain](heat)], dim=1)
        out = self.outputs[domain](self.body[domain](feats))
        out = F.interpolate(out, size=size, mode="trilinear", align_corners=False)
        return out[..., :z, :h, :w]


class GU2Net3d(nn.Module):
    """The universal volume model. ``domains``: {domain name: number of landmarks}.

    ``variant``: ``full`` (local x global), ``local`` (local network only) or ``global``
    (global network on the volume only). Defaults ``width=16``, ``depth=3``,
    ``global_width=32``: small on purpose (3-D memory).
    """

    def __init__(self, domains: dict[str, int], in_channels: int = 1, width: int = WIDTH_3D,
                 depth: int = DEPTH_3D, global_width: int = GLOBAL_WIDTH_3D,
                 dilations=(1, 2, 5, 2, 1), variant: str = "full"):
        super().__init__()
        if variant not in ("full", "local", "global"):
            raise InputError(f"unknown GU2Net3d variant {variant!r}")
        self.domains = list(domains)
        self.variant = variant
        self.local = (LocalNet3d(domains, in_channels, width, depth)
                      if variant != "global" else None)
        self.glob = (GlobalNet3d(domains, in_channels, global_width, dilations,
                                 use_local=variant == "full") if variant != "local" else None)

    def forward(self, x: torch.Tensor, domain: str) -> dict[str, torch.Tensor]:
        if self.variant == "global":
            return {"heatmap": self.glob(x, domain)}
        local = self.local(x, domain)
        if self.variant == "local":
            return {"heatmap": local}
        glob = self.glob(x, domain, torch.sigmoid(local))
        return {"heatmap": product_logit(local, glob)}


class UNet3d(nn.Module):
    """A plain 3-D U-Net shared by all domains (3x3x3 convs, shared BatchNorm), with
    per-domain 1x1x1 input and output layers. Defaults ``width=16``, ``depth=3`` (small on
    purpose: 3-D memory). ``forward(x, domain) -> {"heatmap": logits}``."""

    def __init__(self, domains: dict[str, int], in_channels: int = 1, width: int = WIDTH_3D,
                 depth: int = DEPTH_3D, **_unused):
        super().__init__()
        self.domains = list(domains)
        self.local = LocalNet3d(domains, in_channels, width, depth, block="plain")

    def forward(self, x: torch.Tensor, domain: str) -> dict[str, torch.Tensor]:
        return {"heatmap": self.local(x, domain)}
