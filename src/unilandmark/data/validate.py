"""``datasets check``: validate every record of a DatasetSpec and summarise it."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from ..core.limits import SANE_SPACING_MM, spacing_fault
from ..core.types import DatasetSpec, Record
from ..imageio.read import ImageReadError, read_image, read_image_info
from .faults import Fault

__all__ = ["SANE_SPACING_MM", "check_dataset", "check_record"]


def check_record(record: Record, num_landmarks: int, read_pixels: bool = True,
                 ) -> tuple[tuple[int, int] | None, list[Fault]]:
    """Validate one record; returns its image size (W, H) (or None) and its faults."""
    faults: list[Fault] = []

    def fault(msg: str, file: str | None = None):
        faults.append(Fault(file or record.image_path, record.id, msg))

    size = None
    try:
        if read_pixels:
            array, _ = read_image(record.image_path)
            size = (array.shape[1], array.shape[0])
        else:
            size, _ = read_image_info(record.image_path)
    except ImageReadError as err:
        fault(str(err).split(": ", 1)[-1])
    if record.points.shape != (num_landmarks, 2):
        fault(f"expected {num_landmarks} landmarks, found {record.points.shape[0]}")
        return size, faults
    if not record.visible.any():
        fault("no visible landmark")
    for k in np.flatnonzero(record.visible):
        x, y = record.points[k]
        if not (math.isfinite(x) and math.isfinite(y)):
            fault(f"landmark {k + 1}: coordinates are not finite ({x}, {y})")
        elif size is not None and not (-0.5 <= x <= size[0] - 0.5 and -0.5 <= y <= size[1] - 0.5):
            fault(f"landmark {k + 1}: point ({x:g}, {y:g}) outside the {size[0]}x{size[1]} image")
    if record.spacing is not None:
        spacing_problem = spacing_fault(record.spacing)
        if spacing_problem:
            fault(spacing_problem)
    return size, faults


def check_dataset(spec: DatasetSpec, read_pixels: bool = True) -> tuple[dict, list[Fault]]:
    """Validate every record; returns (summary, all faults).

    The summary holds records per split, the landmark count, spacing range and image size
    range, plus the adapter's own counts (``spec.info``).
    """
    faults: list[Fault] = []
    sizes, spacings = [], []
    for record in spec.records:
        size, record_faults = check_record(record, spec.num_landmarks, read_pixels)
        faults.extend(record_faults)
        if size:
            sizes.append(size)
        if record.spacing:
            spacings.append(record.spacing)
    if not spec.records:
        faults.append(Fault(spec.name, "", "the dataset has no records"))
    known = {r.id for r in spec.records}
    for split, ids in spec.splits.items():
        missing = [i for i in ids if i not in known]
        if missing:
            faults.append(Fault(spec.name, missing[0],
                                f"split {split!r} names {len(missing)} unknown record(s)"))
    summary = {
        "name": spec.name,
        "domain": spec.domain,
        "records": len(spec.records),
        "landmarks": spec.num_landmarks,
        "splits": {k: len(v) for k, v in spec.splits.items()},
        "unit": spec.unit,
        "visible_points": int(sum(r.visible.sum() for r in spec.records)),
        "spacing_mm": _range(spacings),
        "without_spacing": len(spec.records) - len(spacings),
        "image_size": _range(sizes),
        "image_sizes_distinct": len(Counter(sizes)),
        "info": {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.info.items()},
    }
    return summary, faults


def _range(pairs) -> dict | None:
    if not pairs:
        return None
    arr = np.asarray(pairs, dtype=np.float64)
    return {"min": [float(v) for v in arr.min(0)], "max": [float(v) for v in arr.max(0)]}
