"""Codecs: ``encode(points, visible, size) -> targets`` and ``decode(outputs) -> Prediction``.

``CODECS`` maps a name to its class; each family of detectors is a codec + a head + a loss.
"""

from .heatmap import HeatmapCodec, decode_heatmap, render_gaussians

CODECS = {"heatmap": HeatmapCodec}


def build_codec(name: str, **kwargs):
    if name not in CODECS:
        raise KeyError(f"unknown codec {name!r}; known: {', '.join(CODECS)}")
    return CODECS[name](**kwargs)


__all__ = ["CODECS", "HeatmapCodec", "build_codec", "decode_heatmap", "render_gaussians"]
