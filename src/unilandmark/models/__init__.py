"""Model registry: ``MODELS`` maps a name to a constructor ``(domains, **kwargs)``.

``domains`` is ``{domain name: number of landmarks}``; every model's forward is
``(x (B, C, H, W), domain) -> dict`` of raw outputs whose keys match its codec.
``CODEC_FOR`` maps a model name to the codec that encodes its targets, decodes its
outputs and holds its loss; ``FAMILY`` names the survey family (Li et al. 2022).
"""

from __future__ import annotations

from functools import partial

from torch import nn

from ..codecs import (
    DirectRegressionCodec,
    DisplacementCodec,
    DSNTCodec,
    HeatmapCodec,
    LearnedSigmaHeatmapCodec,
    PatchClassCodec,
    PixelClassCodec,
)
from .families import FamilyNet
from .gu2net import GU2Net, UNet
from .layers import count_parameters

MODELS = {
    "gu2net": partial(GU2Net, variant="full"),
    "gu2net-local": partial(GU2Net, variant="local"),
    "gu2net-global": partial(GU2Net, variant="global"),
    "unet": UNet,
    "heatmap": partial(FamilyNet, head="heatmap"),
    "pixel-class": partial(FamilyNet, head="pixel-class"),
    "patch-class": partial(FamilyNet, head="patch-class"),
    "direct-regression": partial(FamilyNet, head="direct-regression"),
    "dsnt": partial(FamilyNet, head="heatmap"),
    "heatmap-sigma": partial(FamilyNet, head="heatmap-sigma"),
    "heatmap-awing": partial(FamilyNet, head="heatmap"),
    "displacement": partial(FamilyNet, head="displacement"),
    "scn": partial(FamilyNet, head="scn"),
}

#: model name -> codec factory ``(sigma in input px, heatmap loss name) -> codec``
CODEC_FOR = {
    "gu2net": lambda sigma, loss: HeatmapCodec(sigma, loss=loss),
    "gu2net-local": lambda sigma, loss: HeatmapCodec(sigma, loss=loss),
    "gu2net-global": lambda sigma, loss: HeatmapCodec(sigma, loss=loss),
    "unet": lambda sigma, loss: HeatmapCodec(sigma, loss=loss),
    "heatmap": lambda sigma, loss: HeatmapCodec(sigma, loss=loss),
    "pixel-class": lambda sigma, loss: PixelClassCodec(radius=max(2.0, 1.5 * sigma)),
    "patch-class": lambda sigma, loss: PatchClassCodec(stride=8),
    "direct-regression": lambda sigma, loss: DirectRegressionCodec(),
    "dsnt": lambda sigma, loss: DSNTCodec(sigma=sigma),
    "heatmap-sigma": lambda sigma, loss: LearnedSigmaHeatmapCodec(),
    "heatmap-awing": lambda sigma, loss: HeatmapCodec(sigma, loss="awing"),
    "displacement": lambda sigma, loss: DisplacementCodec(radius=max(3.0, 3 * sigma)),
    "scn": lambda sigma, loss: LearnedSigmaHeatmapCodec(),
}

#: model name -> the survey's family
FAMILY = {
    "gu2net": "heatmap regression (universal, local x global)",
    "gu2net-local": "heatmap regression (GU2Net ablation: local only)",
    "gu2net-global": "heatmap regression (GU2Net ablation: global only)",
    "unet": "heatmap regression (plain U-Net, everything shared)",
    "heatmap": "heatmap regression (fixed sigma, family backbone)",
    "pixel-class": "pixel classification",
    "patch-class": "patch classification",
    "direct-regression": "coordinate regression (direct)",
    "dsnt": "coordinate regression (integral / DSNT)",
    "heatmap-sigma": "heatmap regression (learnable sigma)",
    "heatmap-awing": "heatmap regression (adaptive wing loss)",
    "displacement": "displacement-map regression",
    "scn": "spatial configuration net",
}


def build_model(name: str, domains: dict[str, int], **kwargs) -> nn.Module:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name](domains, **kwargs)


def codec_for(name: str, sigma: float = 3.0, loss: str = "bce"):
    """The codec of model ``name`` with the domain's sigma and the configured loss."""
    if name not in CODEC_FOR:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(CODEC_FOR)}")
    return CODEC_FOR[name](sigma, loss)


__all__ = ["CODEC_FOR", "FAMILY", "MODELS", "build_model", "codec_for", "count_parameters",
           "GU2Net", "UNet", "FamilyNet"]
