"""Named evaluation protocols (docs/protocols.md).

A protocol fixes the ground truth (annotator), the split, where errors are measured
(original pixels, or a published network-input grid with integer rounding) and how pixels
become millimetres (header spacing, one fixed factor, or the hand's wrist width).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import InputError, UnknownNameError
from ..core.metrics import radial_errors
from ..core.types import DatasetSpec, Record, error_unit, truth_points
from ..imageio.read import read_image_info


@dataclass(frozen=True)
class Protocol:
    """How predictions are scored.

    grid : (W, H) of a network-input grid; when set, predictions and ground truth are
        mapped into it (stretch resize, pixel-centre convention) and rounded to integers,
        as the published GU2Net evaluation does.
    grid_mm_per_px : one factor turning grid pixels into mm (GU2Net's head: 0.46875).
    wrist_width_mm : when set, mm = px * wrist_width_mm / |g_a - g_b| with the wrist pair
        of ``spec.info['wrist_pair']`` (1-based) measured on the ground truth, in the
        frame where errors are measured.
    unit : "mm" or "px"; None means the dataset's (mm where every record has spacing).
    """

    name: str
    dataset: str | None = None
    split: str | None = None
    annotator: str | None = None
    description: str = ""
    unit: str | None = None
    thresholds: tuple[float, ...] | None = None
    grid: tuple[int, int] | None = None
    grid_mm_per_px: float | None = None
    wrist_width_mm: float | None = None

    def resolved_unit(self, spec: DatasetSpec) -> str:
        if self.unit:
            return self.unit
        return error_unit(spec.records)

    def resolved_thresholds(self, spec: DatasetSpec) -> tuple[float, ...]:
        return self.thresholds or spec.thresholds

    def errors(self, spec: DatasetSpec, records: list[Record], pred: np.ndarray) -> np.ndarray:
        """(N, K) errors for predictions (N, K, 2) in original pixels; NaN = not visible."""
        truth = truth_points(records)
        pred = np.asarray(pred, dtype=np.float64)
        if self.grid is not None:
            factor = np.stack([_grid_factor(r, self.grid) for r in records])[:, None, :]
            truth = np.round((truth + 0.5) * factor - 0.5)
            pred = np.round((pred + 0.5) * factor - 0.5)
        if self.wrist_width_mm is not None:
            a, b = (i - 1 for i in spec.info.get("wrist_pair", (1, 5)))
            width = np.linalg.norm(truth[:, a] - truth[:, b], axis=-1)
            if np.any(~(width > 0)):
                bad = [r.id for r, w in zip(records, width, strict=True) if not w > 0]
                raise InputError(f"{self.name}: zero or unknown wrist width for {bad}")
            return radial_errors(pred, truth) * (self.wrist_width_mm / width)[:, None]
        if self.grid_mm_per_px is not None:
            return radial_errors(pred, truth) * self.grid_mm_per_px
        if self.resolved_unit(spec) == "mm" and self.grid is None:
            missing = [r.id for r in records if r.spacing is None]
            if missing:
                raise InputError(f"{self.name}: scoring in mm but no spacing for {missing[:5]}")
            scale = np.array([r.spacing for r in records], dtype=np.float64)[:, None, :]
            return radial_errors(pred, truth, scale)
        return radial_errors(pred, truth)


def _grid_factor(record: Record, grid: tuple[int, int]) -> np.ndarray:
    size = record.meta.get("size") or read_image_info(record.image_path)[0]
    return np.array([grid[0] / size[0], grid[1] / size[1]], dtype=np.float64)


PROTOCOLS: dict[str, Protocol] = {
    "isbi2015-test1": Protocol(
        "isbi2015-test1", "isbi2015", "test1", "senior",
        "ISBI 2015 test1 (151-300), senior annotator, original pixels x 0.1 mm", unit="mm"),
    "isbi2015-test2": Protocol(
        "isbi2015-test2", "isbi2015", "test2", "senior",
        "ISBI 2015 test2 (301-400), senior annotator, original pixels x 0.1 mm", unit="mm"),
    "isbi2015-mean-test1": Protocol(
        "isbi2015-mean-test1", "isbi2015", "test1", "mean",
        "ISBI 2015 test1, mean of senior and junior, original pixels x 0.1 mm", unit="mm"),
    "isbi2015-mean-test2": Protocol(
        "isbi2015-mean-test2", "isbi2015", "test2", "mean",
        "ISBI 2015 test2, mean of senior and junior, original pixels x 0.1 mm", unit="mm"),
    "gu2net-head": Protocol(
        "gu2net-head", "isbi2015", "gu2net-test", "mean",
        "as published by GU2Net: 151-400 pooled, mean annotator, integer positions in the "
        "416x512 input, 0.46875 mm per input pixel", unit="mm",
        grid=(416, 512), grid_mm_per_px=0.46875),
    "gu2net-hand": Protocol(
        "gu2net-hand", "dha_hand", "gu2net-test", None,
        "as published by GU2Net: integer positions in the 368x512 input, mm = px * 50 / "
        "wrist width (the dataset's wrist pair)", unit="mm", thresholds=(2.0, 4.0, 10.0),
        grid=(368, 512), wrist_width_mm=50.0),
    "gu2net-chest": Protocol(
        "gu2net-chest", "shenzhen_chest", "gu2net-test", None,
        "as published by GU2Net: integer positions in the 512x512 input, pixels",
        unit="px", thresholds=(3.0, 6.0, 9.0), grid=(512, 512)),
    "dha-hand-wrist": Protocol(
        "dha-hand-wrist", "dha_hand", None, None,
        "original pixels, mm = px * 50 / wrist width (the dataset's wrist pair)",
        unit="mm", thresholds=(2.0, 4.0, 10.0), wrist_width_mm=50.0),
    "pixels": Protocol("pixels", None, None, None, "original pixels, no spacing", unit="px"),
}


def native_protocol(spec: DatasetSpec) -> Protocol:
    """The default: original pixels, sub-pixel, times header spacing where every record
    has one (mm), else pixels."""
    return Protocol(f"{spec.name}-native", spec.name, None, None,
                    "original pixels, sub-pixel, times each image's spacing where known")


def get_protocol(name: str | None, spec: DatasetSpec) -> Protocol:
    if name is None:
        return native_protocol(spec)
    if name not in PROTOCOLS:
        raise UnknownNameError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    protocol = PROTOCOLS[name]
    if protocol.dataset and protocol.dataset != spec.name:
        raise InputError(f"protocol {name!r} is for dataset {protocol.dataset!r}, "
                         f"not {spec.name!r}")
    return protocol
