"""The result of prediction, shared by every backend (PyTorch, ONNX): ``LandmarkResult``,
its rows in the prediction CSV (docs/protocols.md), and ``PredictionFailure`` for an
input that could not be read. Imports neither torch nor any
training code."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import InputError
from ..core.types import Spacing


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

    Quality evidence and flags (docs/quality.md): image_size (W, H) original pixels;
    refinement_shift (K,) how far the refinement stages moved each point from where
    stage 1 (and the configuration check) put it, original pixels (0 without refinement
    stages); crop_spread (S, K) per stage, the RMS distance of the ``test_offsets`` crops'
    decoded points from their mean, original pixels (NaN for stage 1 and for stages
    without test offsets); mirror_gap (K,) original pixels between stage 1's point and
    its answer on the image's left-right mirror (brought back; NaN unless orientation
    ``auto``, which decodes both); risk (K,) the calibrated probability that the point is off by
    more than the domain's calibration radius (None for an uncalibrated model); flags
    (K,) bool, 1 = likely wrong; qc ``pass``, ``review`` or ``fail`` for the image.
    Coordinates (points, points_mm) are float32.
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
    image_size: tuple[int, int] | None = None
    refinement_shift: np.ndarray | None = field(default=None, repr=False)
    crop_spread: np.ndarray | None = field(default=None, repr=False)
    mirror_gap: np.ndarray | None = field(default=None, repr=False)
    risk: np.ndarray | None = None
    flags: np.ndarray | None = None
    qc: str | None = None


def result_rows(results: list[LandmarkResult]) -> list[dict]:
    """Prediction-CSV rows (docs/protocols.md) for a list of results."""
    from ..predictions.table import prediction_rows

    rows = []
    for r in results:
        rows += prediction_rows([r.id], [r.points], r.names, confidence=[r.confidence],
                                spacing=[r.spacing], domain=r.domain,
                                orientation=[r.orientation],
                                spacing_source=[r.spacing_source],
                                risk=[r.risk] if r.risk is not None else None,
                                flags=[r.flags] if r.flags is not None else None,
                                qc=[r.qc] if r.qc is not None else None)
    return rows


@dataclass(frozen=True)
class PredictionFailure:
    """An input that could not be predicted: its position in the inputs, the file (or
    ``array<N>``) and the reason in one line."""

    index: int
    item: str
    reason: str


#: errors of reading one input that ``on_failure`` reports instead of raising: a fault of
#: that file (unreadable, not an image, too large); any other exception is a bug and stops
#: the batch with its traceback
READ_ERRORS = (InputError, OSError, MemoryError)


def describe_input(item, index: int) -> str:
    return str(item) if isinstance(item, (str, os.PathLike)) else f"array{index}"


def failure_reason(err: BaseException, name: str) -> str:
    """One line: the error's message without the input's name in front."""
    if isinstance(err, OSError) and err.strerror:
        text = err.strerror
    else:
        lines = str(err).strip().splitlines()
        text = lines[0] if lines else type(err).__name__
    return text[len(name) + 2:] if text.startswith(f"{name}: ") else text


__all__ = ["LandmarkResult", "PredictionFailure", "READ_ERRORS", "describe_input",
           "failure_reason", "result_rows"]
