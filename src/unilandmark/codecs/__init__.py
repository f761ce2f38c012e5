"""Codecs: ``encode(points, visible, size) -> targets``, ``decode(outputs) -> Prediction``
and ``loss(outputs, targets)``.

Each family of detectors is a codec + a head + a loss; the model registry
(``models.registry``) names the codec of every model.
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
from .triplanar import TriPlanarCodec

__all__ = ["DSNTCodec", "DirectRegressionCodec", "DisplacementCodec", "HeatmapCodec",
           "LearnedSigmaHeatmapCodec", "PatchClassCodec", "PixelClassCodec", "TriPlanarCodec",
           "decode_heatmap", "decode_peaks", "render_gaussians"]
