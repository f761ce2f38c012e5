"""Building blocks: conv-norm-act, domain-separable convs, the U-Net trunk, dilated stack.

Per-domain parts live in ``nn.ModuleDict`` keyed by domain name; every block's forward
takes ``(x, domain)`` so one trunk serves all domains.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: the convolution and the BatchNorm of each number of spatial dimensions: every block
#: and trunk here serves images (``dims=2``, (B, C, H, W)) and volumes (``dims=3``,
#: (B, C, Z, H, W)) with the same structure and parameter names
CONV = {2: nn.Conv2d, 3: nn.Conv3d}
NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


class DomainModule(nn.Module):
    """Base for blocks whose forward is ``(x, domain)``."""

    def forward(self, x: torch.Tensor, domain: str) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class SeparableConvBlock(DomainModule):
    """Depthwise 3x3 per domain -> pointwise 1x1 shared -> BatchNorm per domain -> LeakyReLU.

    GU2Net's universal convolution: the depthwise filters and the normalisation statistics
    are domain-specific, the channel-mixing pointwise weights are shared by all domains.
    """

    def __init__(self, in_ch: int, out_ch: int, domains: list[str], dims: int = 2):
        super().__init__()
        conv, norm = CONV[dims], NORM[dims]
        self.depthwise = nn.ModuleDict(
            {d: conv(in_ch, in_ch, 3, padding=1, groups=in_ch) for d in domains})
        self.pointwise = conv(in_ch, out_ch, 1)
        self.norm = nn.ModuleDict({d: norm(out_ch) for d in domains})
        self.act = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        return self.act(self.norm[domain](self.pointwise(self.depthwise[domain](x))))


class PlainConvBlock(DomainModule):
    """A shared 3x3 conv -> BatchNorm -> LeakyReLU (the plain U-Net's block)."""

    def __init__(self, in_ch: int, out_ch: int, domains: list[str], dims: int = 2):
        super().__init__()
        self.conv = CONV[dims](in_ch, out_ch, 3, padding=1, bias=False)
        self.norm = NORM[dims](out_ch)
        self.act = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class DomainNormConvBlock(DomainModule):
    """A shared 3x3 conv -> BatchNorm per domain -> LeakyReLU.

    Every batch holds one domain, so shared BatchNorm running statistics would average
    domains with different intensity statistics and mislead evaluation; per-domain
    normalisation (as in GU2Net) avoids it at a cost of 2 x channels per domain.
    """

    def __init__(self, in_ch: int, out_ch: int, domains: list[str], dims: int = 2):
        super().__init__()
        self.conv = CONV[dims](in_ch, out_ch, 3, padding=1, bias=False)
        self.norm = nn.ModuleDict({d: NORM[dims](out_ch) for d in domains})
        self.act = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        return self.act(self.norm[domain](self.conv(x)))


BLOCKS = {"separable": SeparableConvBlock, "plain": PlainConvBlock,
          "plain-domain-norm": DomainNormConvBlock}


class DoubleBlock(DomainModule):
    def __init__(self, in_ch, out_ch, domains, block, mid_ch=None, dims: int = 2):
        super().__init__()
        self.first = block(in_ch, mid_ch or out_ch, domains, dims=dims)
        self.second = block(mid_ch or out_ch, out_ch, domains, dims=dims)

    def forward(self, x, domain):
        return self.second(self.first(x, domain), domain)


class UNetTrunk(DomainModule):
    """A U-Net from ``width`` channels to ``width`` channels at full resolution.

    Channels double per level up to ``8 * width``; the deepest level has ``8 * width``
    (bilinear upsampling, as in the reference U-Net). Any input H and W: the input is
    zero-padded on the right and bottom to the next multiple of ``2 ** depth`` and the
    output cropped back, so every pooling halves exactly and a deep feature lands on its
    skip feature (without it, a width of 312 at depth 4 pools 312 -> 156 -> 78 -> 39 -> 19
    and the upsampled features drift up to 6.5 input pixels from their skips). The result
    on an H x W input equals the result on that input padded with zeros, cropped.

    x: (B, width, H, W) -> (B, width, H, W); with ``dims=3`` the same trunk for volumes,
    (B, width, Z, H, W), isotropic 2 x 2 x 2 pooling and trilinear upsampling.
    """

    def __init__(self, width: int, depth: int, domains: list[str], block: str = "separable",
                 dims: int = 2):
        super().__init__()
        self.dims = dims
        blk = BLOCKS[block]
        chans = [width * 2 ** min(i, 3) for i in range(depth + 1)]
        chans[-1] = chans[-2]  # bilinear U-Net: the bottom keeps the previous width
        self.stem = DoubleBlock(width, width, domains, blk, dims=dims)
        self.down = nn.ModuleList(DoubleBlock(chans[i], chans[i + 1], domains, blk, dims=dims)
                                  for i in range(depth))
        ups, x_ch = [], chans[depth]
        for i in reversed(range(depth)):
            in_ch = chans[i] + x_ch
            out = chans[i - 1] if i > 0 else width
            ups.append(DoubleBlock(in_ch, out, domains, blk, mid_ch=in_ch // 2, dims=dims))
            x_ch = out
        self.up = nn.ModuleList(ups)

    @property
    def multiple(self) -> int:
        """The side multiple that pools exactly: ``2 ** depth``."""
        return 2 ** len(self.down)

    def forward(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        dims = self.dims
        size = tuple(x.shape[-dims:])
        x = pad_to_multiple(x, self.multiple, dims)
        pool = F.max_pool2d if dims == 2 else F.max_pool3d
        mode = "bilinear" if dims == 2 else "trilinear"
        skips = [self.stem(x, domain)]
        for block in self.down:
            skips.append(block(pool(skips[-1], 2), domain))
        x = skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-dims:], mode=mode, align_corners=False)
            x = block(torch.cat([skip, x], dim=1), domain)
        return x[(..., *(slice(0, n) for n in size))]


def pad_to_multiple(x: torch.Tensor, multiple: int, dims: int = 2) -> torch.Tensor:
    """(..., H, W) (``dims=3``: (..., Z, H, W)) zero-padded at the far end of each spatial
    axis to multiples of ``multiple`` (unchanged when they are); crop with ``[..., :H,
    :W]`` to undo."""
    pads = [(-n) % multiple for n in x.shape[-dims:]]
    if not any(pads):
        return x
    flat: list[int] = []
    for p in reversed(pads):  # F.pad lists the last axis first
        flat += [0, p]
    return F.pad(x, flat)


class DilatedStack(nn.Module):
    """3x3 (``dims=3``: 3x3x3) convs with the given dilations, each followed by BatchNorm
    and ReLU."""

    def __init__(self, channels: int, dilations=(1, 2, 5, 2, 1), dims: int = 2):
        super().__init__()
        self.layers = nn.Sequential(*[
            nn.Sequential(CONV[dims](channels, channels, 3, padding=d, dilation=d),
                          NORM[dims](channels), nn.ReLU(inplace=True))
            for d in dilations])

    def forward(self, x):
        return self.layers(x)


def count_parameters(module: nn.Module, domains: list[str] | None = None) -> int:
    """Trainable parameters; with ``domains`` only those used by these domains."""
    if domains is None:
        return sum(p.numel() for p in module.parameters() if p.requires_grad)
    total = 0
    for name, p in module.named_parameters():
        parts = name.split(".")
        if any(part in getattr(module, "domains", []) and part not in domains for part in parts):
            continue
        total += p.numel()
    return total


#: initial bias of heatmap logits: sigmoid(-4.6) = 0.01, the background prior, so training
#: does not first spend its steps learning that almost every pixel is background
PRIOR_BIAS = -4.6


def init_prior_bias(conv: nn.Conv2d, value: float = PRIOR_BIAS) -> nn.Conv2d:
    with torch.no_grad():
        conv.bias.fill_(value)
    return conv
