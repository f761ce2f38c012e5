"""One network of a volume model with its decoding, as a traceable module.

``DecodedNetwork(model, codec, domain)``: ``x`` (N, 1, Z, Y, X) -> points (N, K, 3)
``(x, y, z)`` in voxels of ``x``, confidence (N, K): the model's output decoded by its codec
(argmax + log-parabola for heatmaps, :func:`..codecs.heatmap.decode_peaks`; the three
plane maps averaged per axis for the tri-planar refiner), exactly what ``VolumeDetector``
computes after each network. ``export`` traces one per stage (:mod:`.volume_exporter`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..codecs import HeatmapCodec
from ..codecs.triplanar import TriPlanarCodec
from ..core.errors import InputError

#: codecs whose decoding is traced into the graph (branches only on shapes, never on values)
EXPORTABLE_CODECS = (HeatmapCodec, TriPlanarCodec)


class DecodedNetwork(nn.Module):
    """A (multi-domain) volume network called for ``domain``, its output decoded."""

    def __init__(self, model: nn.Module, codec, domain: str, what: str):
        super().__init__()
        if not isinstance(codec, EXPORTABLE_CODECS):
            raise InputError(f"export needs heatmap models: {what} decodes with "
                             f"{type(codec).__name__}, which has no ONNX form; predict "
                             "with this model through PyTorch (--checkpoint)")
        self.model = model
        self.codec = codec
        self.domain = domain

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, 1, Z, Y, X) -> points (N, K, 3) voxels of x, confidence (N, K)."""
        pred = self.codec.decode(self.model(x, self.domain))
        return pred.points, pred.confidence
