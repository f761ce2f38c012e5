"""The 2.5-D tri-planar refiner (Li et al. 2022, fig. 7): three orthogonal slices through
a candidate, stacked as channels, one 2-D network.

Input: a cubic patch ``(B, C, P, P, P)`` in ``(Z, Y, X)`` axis order (a volume patch cut
around a coarse estimate, the candidate at its centre). The model takes the three central
orthogonal slices itself:

- axial: ``z = c`` -> a ``(Y, X)`` image (rows y, columns x);
- coronal: ``y = c`` -> a ``(Z, X)`` image (rows z, columns x);
- sagittal: ``x = c`` -> a ``(Z, Y)`` image (rows z, columns y);

where ``c = (P - 1) / 2`` is the patch centre in voxel coordinates (the centre of the
first voxel at 0). For odd P it is the middle voxel ``P // 2``; for even P it falls
between voxels ``P/2 - 1`` and ``P/2`` and the slice is the mean of those two
(:func:`central_slices`). The three slices are stacked plane-major as ``3C`` channels of
one ``(B, 3C, P, P)`` image (channels ``[axial c_0..c_{C-1}, coronal ..., sagittal
...]``), which a 2-D U-Net trunk (:class:`.layers.UNetTrunk`: separable 3x3 convolutions
with per-domain depthwise filters and BatchNorm by default, as GU2Net's local network)
maps to features, and a per-domain 1x1 head maps to ``3K`` channels, plane-major.

``forward(x, domain) -> {"planes": (B, 3, K, P, P) logits}``: plane 0 axial ``(Y, X)``,
1 coronal ``(Z, X)``, 2 sagittal ``(Z, Y)``; each plane's map has its slice's (rows,
columns). The codec is :class:`..codecs.triplanar.TriPlanarCodec`. Cubic patches only: any
other shape is refused with :class:`..core.errors.InputError`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.errors import InputError
from .layers import BLOCKS, UNetTrunk, init_prior_bias

#: the planes in output order: name, the (rows, columns) axes of its map
PLANES = (("axial", "yx"), ("coronal", "zx"), ("sagittal", "zy"))


def central_slices(x: torch.Tensor) -> torch.Tensor:
    """(B, C, P, P, P) cubic patch (Z, Y, X) -> (B, 3, C, P, P): its axial (Y, X),
    coronal (Z, X) and sagittal (Z, Y) slices through the centre ``(P - 1) / 2``; for even
    P each slice is the mean of the two middle slices ``P/2 - 1`` and ``P/2``."""
    check_cubic(x)
    p = x.shape[-1]
    lo, hi = (p - 1) // 2, p // 2

    def mid(axis: int) -> torch.Tensor:
        a, b = x.select(axis, lo), x.select(axis, hi)
        return a if lo == hi else 0.5 * (a + b)

    return torch.stack([mid(2), mid(3), mid(4)], dim=1)


def check_cubic(x: torch.Tensor) -> None:
    """Refuse anything but a (B, C, P, P, P) cubic patch, naming the shape."""
    if x.dim() != 5 or not (x.shape[-1] == x.shape[-2] == x.shape[-3]):
        raise InputError(f"the tri-planar model takes cubic patches (B, C, P, P, P), got "
                         f"shape {tuple(x.shape)}")


class TriPlanarNet(nn.Module):
    """The 2.5-D refiner. ``domains``: {domain name: number of landmarks}.

    Per-domain 1x1 input (``3 * in_channels`` -> ``width``), a shared-trunk 2-D U-Net
    (``width``, ``depth`` poolings, ``block`` of :data:`.layers.BLOCKS`; ``separable`` has
    GU2Net's per-domain depthwise filters and BatchNorm), a per-domain 1x1 output to ``3K``
    logits initialised at the background prior. Defaults ``width=16``, ``depth=3`` (the
    3-D models' sizes, so one config sizes both stages alike).
    ``forward(x (B, C, P, P, P), domain) -> {"planes": (B, 3, K, P, P) logits}``.
    """

    def __init__(self, domains: dict[str, int], in_channels: int = 1, width: int = 16,
                 depth: int = 3, block: str = "separable", **_unused):
        super().__init__()
        if block not in BLOCKS:
            raise InputError(f"unknown block {block!r}; known: {', '.join(BLOCKS)}")
        names = list(domains)
        self.domains = names
        self.in_channels = in_channels
        self.landmarks = dict(domains)
        self.inputs = nn.ModuleDict({d: nn.Conv2d(3 * in_channels, width, 1) for d in names})
        self.trunk = UNetTrunk(width, depth, names, block)
        self.outputs = nn.ModuleDict({d: init_prior_bias(nn.Conv2d(width, 3 * k, 1))
                                      for d, k in domains.items()})

    def forward(self, x: torch.Tensor, domain: str) -> dict[str, torch.Tensor]:
        check_cubic(x)
        if x.shape[1] != self.in_channels:
            raise InputError(f"the tri-planar model takes {self.in_channels} channel(s), "
                             f"got shape {tuple(x.shape)}")
        b, _, p = x.shape[:3]
        image = central_slices(x).flatten(1, 2)  # (B, 3C, P, P), plane-major
        logits = self.outputs[domain](self.trunk(self.inputs[domain](image), domain))
        return {"planes": logits.reshape(b, 3, self.landmarks[domain], p, p)}
