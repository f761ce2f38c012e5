"""Model registry: ``MODELS`` maps a name to a constructor ``(domains, **kwargs)``.

``domains`` is ``{domain name: number of landmarks}``; every model's forward is
``(x (B, C, H, W), domain) -> dict`` of raw logits whose keys match its codec.
"""

from __future__ import annotations

from functools import partial

from torch import nn

from .gu2net import GU2Net, UNet
from .layers import count_parameters

MODELS = {
    "gu2net": partial(GU2Net, variant="full"),
    "gu2net-local": partial(GU2Net, variant="local"),
    "gu2net-global": partial(GU2Net, variant="global"),
    "unet": UNet,
}

#: the codec each model's outputs are decoded with
MODEL_CODECS = {"gu2net": "heatmap", "gu2net-local": "heatmap", "gu2net-global": "heatmap",
                "unet": "heatmap"}


def build_model(name: str, domains: dict[str, int], **kwargs) -> nn.Module:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name](domains, **kwargs)


__all__ = ["MODELS", "MODEL_CODECS", "build_model", "count_parameters", "GU2Net", "UNet"]
