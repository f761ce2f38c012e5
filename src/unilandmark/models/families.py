"""FamilyNet: one shared backbone, a per-domain head of any family.

The backbone is a U-Net trunk of plain 3x3 convs shared by all domains, with BatchNorm
and the 1x1 input per domain, so the families differ only in head, codec and loss and
compare on equal footing.
``forward(x, domain) -> dict`` of the head's outputs.
"""

from __future__ import annotations

from torch import nn

from ..core.errors import UnknownNameError
from .heads import HEADS
from .layers import UNetTrunk


class FamilyNet(nn.Module):
    def __init__(self, domains: dict[str, int], head: str, in_channels: int = 1,
                 width: int = 32, depth: int = 4, block: str = "plain-domain-norm",
                 **head_kwargs):
        super().__init__()
        if head not in HEADS:
            raise UnknownNameError(f"unknown head {head!r}; known: {', '.join(HEADS)}")
        self.domains = list(domains)
        self.inputs = nn.ModuleDict({d: nn.Conv2d(in_channels, width, 1) for d in domains})
        self.trunk = UNetTrunk(width, depth, self.domains, block)
        self.heads = nn.ModuleDict({d: HEADS[head](width, k, **head_kwargs)
                                    for d, k in domains.items()})

    def forward(self, x, domain: str):
        feats = self.trunk(self.inputs[domain](x), domain)
        return self.heads[domain](feats, x)
