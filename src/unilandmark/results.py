"""The result of prediction, shared by every backend (PyTorch, ONNX): ``LandmarkResult``
and its rows in the prediction CSV (docs/protocols.md). Imports neither torch nor any
training code."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .types import Spacing


@dataclass(frozen=True)
class LandmarkResult:
    """Landmarks of one image.

    points (K, 2) original pixels; points_mm (K, 2) or None; confidence (K,) the peak
    probability of the heatmap that placed each landmark; spacing (sx, sy) mm per pixel
    and its source (``file``: the image header, ``option``: given by the caller,
    ``model``: the model's training spacing, accepted explicitly) or None; orientation
    ``original`` or ``mirrored`` (the image was read as a left-right mirror of the
    training orientation); shape_residual (K,) distance to the fitted training shape in
    training spreads (NaN without a shape model); stage_confidence (S, K) per stage.
    """

    id: str
    domain: str
    names: tuple[str, ...]
    points: np.ndarray
    confidence: np.ndarray
    spacing: Spacing | None
    points_mm: np.ndarray | None
    image_path: str | None = None
    spacing_source: str | None = None
    orientation: str = "original"
    shape_residual: np.ndarray | None = None
    stage_confidence: np.ndarray | None = field(default=None, repr=False)


def result_rows(results: list[LandmarkResult]) -> list[dict]:
    """Prediction-CSV rows (docs/protocols.md) for a list of results."""
    from .evaluate import prediction_rows

    rows = []
    for r in results:
        rows += prediction_rows([r.id], [r.points], r.names, confidence=[r.confidence],
                                spacing=[r.spacing], domain=r.domain,
                                orientation=[r.orientation],
                                spacing_source=[r.spacing_source])
    return rows


__all__ = ["LandmarkResult", "result_rows"]
