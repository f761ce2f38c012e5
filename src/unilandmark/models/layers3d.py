"""3-D building blocks for volumes: the counterparts of :mod:`.layers`.

The blocks and the trunk are those of :mod:`.layers` built with ``dims=3`` (inputs
``(B, C, Z, H, W)``, the same structure and parameter names); the names here fix
``dims=3``. What is 3-D only: :func:`downsample_3d` (antialiased trilinear).

3-D activations cost ``Z`` times their 2-D counterparts, so the 3-D models default to
small widths (see :mod:`.gu2net3d`: width 16, depth 3, global width 32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .layers import (
    DilatedStack,
    DomainNormConvBlock,
    DoubleBlock,
    PlainConvBlock,
    SeparableConvBlock,
    UNetTrunk,
    pad_to_multiple,
)


class SeparableConvBlock3d(SeparableConvBlock):
    """:class:`.layers.SeparableConvBlock` in 3-D: depthwise 3x3x3 per domain -> pointwise
    1x1x1 shared -> BatchNorm per domain -> LeakyReLU."""

    def __init__(self, in_ch: int, out_ch: int, domains: list[str], dims: int = 3):
        super().__init__(in_ch, out_ch, domains, dims=3)


class PlainConvBlock3d(PlainConvBlock):
    """:class:`.layers.PlainConvBlock` in 3-D (a shared 3x3x3 conv)."""

    def __init__(self, in_ch: int, out_ch: int, domains: list[str], dims: int = 3):
        super().__init__(in_ch, out_ch, domains, dims=3)


class DomainNormConvBlock3d(DomainNormConvBlock):
    """:class:`.layers.DomainNormConvBlock` in 3-D (see it for why per-domain norms)."""

    def __init__(self, in_ch: int, out_ch: int, domains: list[str], dims: int = 3):
        super().__init__(in_ch, out_ch, domains, dims=3)


BLOCKS3D = {"separable": SeparableConvBlock3d, "plain": PlainConvBlock3d,
            "plain-domain-norm": DomainNormConvBlock3d}


class DoubleBlock3d(DoubleBlock):
    def __init__(self, in_ch, out_ch, domains, block, mid_ch=None):
        super().__init__(in_ch, out_ch, domains, block, mid_ch, dims=3)


class UNetTrunk3d(UNetTrunk):
    """:class:`.layers.UNetTrunk` in 3-D: (B, width, Z, H, W) -> (B, width, Z, H, W),
    isotropic 2 x 2 x 2 pooling, trilinear upsampling, any Z, H, W (zero-padded at the far
    end of each axis to the next multiple of ``2 ** depth``, cropped back). Keep ``width``
    small (16 is the 3-D models' default): a level's activations are ``Z`` times those of a
    2-D level of the same width."""

    def __init__(self, width: int, depth: int, domains: list[str], block: str = "separable"):
        super().__init__(width, depth, domains, block, dims=3)


def pad_to_multiple_3d(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """(..., Z, H, W) zero-padded at the far end of each axis to multiples of ``multiple``
    (unchanged when they are); crop with ``[..., :Z, :H, :W]`` to undo."""
    return pad_to_multiple(x, multiple, dims=3)


class DilatedStack3d(DilatedStack):
    """:class:`.layers.DilatedStack` in 3-D (3x3x3 dilated convs)."""

    def __init__(self, channels: int, dilations=(1, 2, 5, 2, 1)):
        super().__init__(channels, dilations, dims=3)


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
