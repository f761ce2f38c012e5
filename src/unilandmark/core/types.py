"""The data contract: frozen dataclasses shared by every module.

Conventions (docs/datasets.md, "Conventions"): points are ``(x, y)`` floats, x to the right,
y down, and the centre of the top-left pixel is ``(0, 0)``. Spacing is in millimetres per
pixel, per axis, in ``(x, y)`` order. Landmarks that are not visible carry NaN
coordinates and ``visible == False``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import UnknownNameError

Spacing = tuple[float, float]


@dataclass(frozen=True)
class Geometry:
    """How one network-input image relates to its original image.

    Attributes
    ----------
    original_size : (width, height) of the original image in pixels.
    spacing : (sx, sy) in mm per original pixel, or None when unknown.
    matrix : (3, 3) float64 affine from network-input pixels to original pixels,
        acting on homogeneous column vectors ``(x, y, 1)``.
    input_size : (width, height) of the network input.

    A volume's Geometry has the same fields with three values each, ``(x, y, z)``, and a
    (4, 4) matrix; ``to_original``/``to_network`` then map ``(..., 3)`` voxel points.
    """

    original_size: tuple[int, int]
    spacing: Spacing | None
    matrix: np.ndarray = field(compare=False)
    input_size: tuple[int, int] = (0, 0)

    def to_original(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., D)`` network-input points to original pixels (or voxels)."""
        return apply_affine(self.matrix, points)

    def to_network(self, points: np.ndarray) -> np.ndarray:
        """Map ``(..., D)`` original-pixel (or voxel) points to network-input ones."""
        return apply_affine(np.linalg.inv(self.matrix), points)

    def to_mm(self, points: np.ndarray) -> np.ndarray | None:
        """Original-pixel points ``(..., 2)`` to millimetres, or None without spacing."""
        return pixels_to_mm(points, self.spacing)


def pixels_to_mm(points: np.ndarray, spacing: Spacing | None) -> np.ndarray | None:
    """Original-pixel points ``(..., 2)`` to millimetres (float64), or None without spacing."""
    if spacing is None:
        return None
    return np.asarray(points, dtype=np.float64) * np.asarray(spacing)


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (D + 1, D + 1) affine to ``(..., D)`` points (D = 2 for images, 3 for
    volumes); NaN stays NaN."""
    pts = np.asarray(points, dtype=np.float64)
    d = matrix.shape[0] - 1
    return pts @ matrix[:d, :d].T + matrix[:d, d]


@dataclass(frozen=True)
class Record:
    """One annotated image of a dataset, in original pixels.

    points : (K, 2) float64, NaN where not visible. visible : (K,) bool.
    spacing : (sx, sy) mm per pixel, or None. meta : free per-record facts (e.g. size).
    """

    id: str
    image_path: str
    points: np.ndarray = field(compare=False)
    visible: np.ndarray = field(compare=False)
    spacing: Spacing | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


def truth_points(records) -> np.ndarray:
    """(N, K, 2) ground truth of ``records`` in original pixels, NaN where not visible:
    the one stack every scorer reads (never rounded, never re-derived)."""
    return np.stack([np.where(r.visible[:, None], r.points, np.nan) for r in records])


def error_unit(records) -> str:
    """``mm`` when every record (at least one) has a spacing, else ``px``: the unit errors
    over ``records`` can be reported in."""
    records = list(records)
    return "mm" if records and all(r.spacing for r in records) else "px"


def error_scale(records) -> np.ndarray | None:
    """Per-image spacing ``(N, 1, 2)`` to turn pixel differences of ``records`` into mm
    (:func:`~unilandmark.core.metrics.radial_errors`' ``scale``), or None where the
    errors are in pixels (:func:`error_unit`)."""
    records = list(records)
    if error_unit(records) != "mm":
        return None
    return np.array([r.spacing for r in records], dtype=np.float64)[:, None, :]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: landmark names, records and explicit splits (lists of record ids).

    ``domain`` names the anatomy for universal models (e.g. ``head``); ``unit`` is the
    unit errors are reported in by default (``mm`` or ``px``); ``thresholds`` are the SDR
    radii in that unit; ``info`` holds counts worth reporting (e.g. labelled ids without
    an image) and adapter options (e.g. the wrist landmark pair).
    """

    name: str
    domain: str
    landmark_names: tuple[str, ...]
    records: tuple[Record, ...]
    splits: dict[str, tuple[str, ...]]
    unit: str = "mm"
    thresholds: tuple[float, ...] = (2.0, 2.5, 3.0, 4.0)
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def num_landmarks(self) -> int:
        return len(self.landmark_names)

    def record_map(self) -> dict[str, Record]:
        return {r.id: r for r in self.records}

    def split_records(self, split: str) -> list[Record]:
        """Records of ``split`` in the split's order; a clear error for unknown names."""
        if split not in self.splits:
            known = ", ".join(sorted(self.splits))
            raise UnknownNameError(f"{self.name}: no split {split!r}; known splits: {known}")
        by_id = self.record_map()
        return [by_id[i] for i in self.splits[split] if i in by_id]


@dataclass(frozen=True)
class Sample:
    """One network-ready sample.

    image : (C, H, W) float32 in [0, 1]; points : (K, 2) float in network-input pixels
    (NaN where not visible); visible : (K,) bool.
    """

    image: np.ndarray = field(compare=False)
    points: np.ndarray = field(compare=False)
    visible: np.ndarray = field(compare=False)
    domain: str = ""
    geometry: Geometry | None = None
    id: str = ""


@dataclass(frozen=True)
class Prediction:
    """Decoded landmarks: points (B, K, 2) and confidence (B, K), torch or numpy."""

    points: Any
    confidence: Any
