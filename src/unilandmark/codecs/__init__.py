"""Codecs: ``encode(points, visible, size) -> targets``, ``decode(outputs) -> Prediction``
and ``loss(outputs, targets)``.

``CODECS`` maps a name to its class; each family of detectors is a codec + a head + a loss.
"""

from .families import (
    DirectRegressionCodec,
    DisplacementCodec,
    DSNTCodec,
    LearnedSigmaHeatmapCodec,
    PatchClassCodec,
    PixelClassCodec,
)
from .heatmap import HeatmapCodec, decode_heatmap, decode_peaks, render_gaussians

CODECS = {
    "heatmap": HeatmapCodec,
    "heatmap-sigma": LearnedSigmaHeatmapCodec,
    "pixel-class": PixelClassCodec,
    "patch-class": PatchClassCodec,
    "direct-regression": DirectRegressionCodec,
    "dsnt": DSNTCodec,
    "displacement": DisplacementCodec,
}


def build_codec(name: str, **kwargs):
    if name not in CODECS:
        raise KeyError(f"unknown codec {name!r}; known: {', '.join(CODECS)}")
    return CODECS[name](**kwargs)


__all__ = ["CODECS", "HeatmapCodec", "build_codec", "decode_heatmap", "decode_peaks",
           "render_gaussians"]
