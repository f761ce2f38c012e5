"""3-D building blocks for volumes: the counterparts of :mod:`.layers`.

Same structure and conventions as the 2-D blocks: inputs ``(B, C, Z, H, W)``, every
block's forward takes ``(x, domain)``, per-domain parts live in ``nn.ModuleDict`` keyed by
domain name so that one trunk serves all volume domains. The 2-D module is left as it is
(2-D models stay bit-identical); the prior bias and parameter counting are shared from it.

3-D activations cost ``Z`` times their 2-D counterparts, so the 3-D models default to
small widths (see :mod:`.gu2net3d`: width 16, depth 3, global width 32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import DomainModule


class SeparableConvBlock3d(DomainModule):
    """Depthwise 3x3x3 per domain -> pointwise 1x1x1 shared -> BatchNorm per domain ->
    LeakyReLU: GU2Net's universal convolution in 3-D.

    The depthwise filters and the normalisation statistics are domain-specific, the
    channel-mixing pointwise weights are shared by all domains.
    """

    def __init__(self, in_ch: int, out_ch: int, domains: list[str]):
        super().__init__()
        self.depthwise = nn.ModuleDict(
            {d: nn.Conv3d(in_ch, in_ch, 3, padding=1, groups=in_ch) for d in domains})
        self.pointwise = nn.Conv3d(in_ch, out_ch, 1)
        self.norm = nn.ModuleDict({d: nn.BatchNorm3d(out_ch) for d in domains})
        self.act = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        return self.act(self.norm[domain](self.pointwise(self.depthwise[domain](x))))


class PlainConvBlock3d(DomainModule):
    """A shared 3x3x3 conv -> BatchNorm -> LeakyReLU (the plain 3-D U-Net's block)."""

    def __init__(self, in_ch: int, out_ch: int, domains: list[str]):
        super().__init__()
        self.conv = nn.Conv3d(in_ch, out_ch, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm3d(out_ch)
        self.act = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class DomainNormConvBlock3d(DomainModule):
    """A shared 3x3x3 conv -> BatchNorm per domain -> LeakyReLU (see
    :class:`.layers.DomainNormConvBlock` for why per-domain normalisation)."""

    def __init__(self, in_ch: int, out_ch: int, domains: list[str]):
        super().__init__()
        self.conv = nn.Conv3d(in_ch, out_ch, 3, padding=1, bias=False)
        self.norm = nn.ModuleDict({d: nn.BatchNorm3d(out_ch) for d in domains})
        self.act = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        return self.act(self.norm[domain](self.conv(x)))


BLOCKS3D = {"separable": SeparableConvBlock3d, "plain": PlainConvBlock3d,
            "plain-domain-norm": DomainNormConvBlock3d}


class DoubleBlock3d(DomainModule):
    def __init__(self, in_ch, out_ch, domains, block, mid_ch=None):
        super().__init__()
        self.first = block(in_ch, mid_ch or out_ch, domains)
        self.second = block(mid_ch or out_ch, out_ch, domains)

    def forward(self, x, domain):
        return self.second(self.first(x, domain), domain)


class UNetTrunk3d(DomainModule):
    """A 3-D U-Net from ``width`` channels to ``width`` channels at full resolution.

    As :class:`.layers.UNetTrunk`: channels double per level up to ``8 * width``, the
    deepest level keeps the previous width (trilinear upsampling). Pooling is isotropic
    (2 x 2 x 2). Any Z, H and W: the input is zero-padded at the far end of each axis to the
    next multiple of ``2 ** depth`` and the output cropped back, so every pooling halves
    exactly and a deep feature lands on its skip feature. The result on a Z x H x W input
    equals the result on that input padded with zeros, cropped.

    Keep ``width`` small (16 is the 3-D models' default): a level's activations are
    ``Z`` times those of a 2-D level of the same width.

    x: (B, width, Z, H, W) -> (B, width, Z, H, W)
    """

    def __init__(self, width: int, depth: int, domains: list[str], block: str = "separable"):
        super().__init__()
        blk = BLOCKS3D[block]
        chans = [width * 2 ** min(i, 3) for i in range(depth + 1)]
        chans[-1] = chans[-2]  # trilinear U-Net: the bottom keeps the previous width
        self.stem = DoubleBlock3d(width, width, domains, blk)
        self.down = nn.ModuleList(DoubleBlock3d(chans[i], chans[i + 1], domains, blk)
                                  for i in range(depth))
        ups, x_ch = [], chans[depth]
        for i in reversed(range(depth)):
            in_ch = chans[i] + x_ch
            out = chans[i - 1] if i > 0 else width
            ups.append(DoubleBlock3d(in_ch, out, domains, blk, mid_ch=in_ch // 2))
            x_ch = out
        self.up = nn.ModuleList(ups)

    @property
    def multiple(self) -> int:
        """The side multiple that pools exactly: ``2 ** depth``."""
        return 2 ** len(self.down)

    def forward(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        z, h, w = x.shape[-3:]
        x = pad_to_multiple_3d(x, self.multiple)
        skips = [self.stem(x, domain)]
        for block in self.down:
            skips.append(block(F.max_pool3d(skips[-1], 2), domain))
        x = skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-3:], mode="trilinear", align_corners=False)
            x = block(torch.cat([skip, x], dim=1), domain)
        return x[..., :z, :h, :w]


def pad_to_multiple_3d(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """(..., Z, H, W) zero-padded at the far end of each axis to multiples of ``multiple``
    (unchanged when they are); crop with ``[..., :Z, :H, :W]`` to undo."""
    z, h, w = x.shape[-3:]
    pz, ph, pw = (-z) % multiple, (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph, 0, pz)) if pz or ph or pw else x


class DilatedStack3d(nn.Module):
    """3x3x3 convs with the given dilations, each followed by BatchNorm and ReLU."""

    def __init__(self, channels: int, dilations=(1, 2, 5, 2, 1)):
        super().__init__()
        self.layers = nn.Sequential(*[
            nn.Sequential(nn.Conv3d(channels, channels, 3, padding=d, dilation=d),
                          nn.BatchNorm3d(channels), nn.ReLU(inplace=True))
            for d in dilations])

    def forward(self, x):
        return self.layers(x)


def downsample_3d(x: torch.Tensor, scale: int) -> torch.Tensor:
    """(..., Z, H, W) with sides multiples of ``scale`` -> (..., Z/scale, H/scale, W/scale),
    antialiased trilinear.

    ``F.interpolate`` has no ``antialias`` for trilinear, and plain trilinear at 1/4 reads
    only 2 of every 4 voxels per axis (a narrow heatmap peak can fall between them). This
    applies, per axis, the triangle filter that 2-D bilinear with ``antialias=True`` uses
    (support ``scale`` on either side, renormalised at the borders): on a 2-D input it
    equals ``F.interpolate(..., mode="bilinear", antialias=True)`` to rounding.
    """
    for axis in (-3, -2, -1):
        x = _downsample_last(x.transpose(axis, -1), scale).transpose(axis, -1)
    return x


def _downsample_last(x: torch.Tensor, scale: int) -> torch.Tensor:
    n = x.shape[-1]
    centre = (scale - 1) / 2
    taps = [j for j in range(-scale, 2 * scale) if abs(j - centre) < scale]
    weight = torch.tensor([1 - abs(j - centre) / scale for j in taps], dtype=x.dtype,
                          device=x.device).view(1, 1, -1)
    pad = (-taps[0], taps[-1] - (scale - 1))
    out = F.conv1d(F.pad(x.reshape(-1, 1, n), pad), weight, stride=scale)
    ones = F.pad(torch.ones(1, 1, n, dtype=x.dtype, device=x.device), pad)
    out = out / F.conv1d(ones, weight, stride=scale)
    return out.reshape(*x.shape[:-1], n // scale)
