"""``datasets check``: validate every record of a DatasetSpec and summarise it."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from ..core.limits import SANE_SPACING_MM, spacing_fault
from ..core.types import DatasetSpec, Record
from ..imageio.read import ImageReadError, read_image, read_image_info
from ..imageio.volume import read_volume_info
from .faults import Fault

__all__ = ["SANE_SPACING_MM", "check_dataset", "check_record"]


def check_record(record: Record, num_landmarks: int, read_pixels: bool = True,
                 ) -> tuple[tuple[int, ...] | None, list[Fault]]:
    """Validate one record; returns its image size ((W, H), or (X, Y, Z) for a volume
    record, whose points have 3 coordinates) or None, and its faults."""
    faults: list[Fault] = []

    def fault(msg: str, file: str | None = None):
        faults.append(Fault(file or record.image_path, record.id, msg))

    size = None
    dims = record.points.shape[1] if record.points.ndim == 2 else 2
    try:
        if dims == 3:
            size = read_volume_info(record.image_path).size
        elif read_pixels:
            array, _ = read_image(record.image_path)
            size = (array.shape[1], array.shape[0])
        else:
            size, _ = read_image_info(record.image_path)
    except ImageReadError as err:
        fault(str(err).split(": ", 1)[-1])
    if record.points.shape != (num_landmarks, dims) or dims not in (2, 3):
        fault(f"expected {num_landmarks} landmarks of 2 or 3 coordinates, found points of "
              f"shape {record.points.shape}")
        return size, faults
    if not record.visible.any():
        fault("no visible landmark")
    kind = "volume" if dims == 3 else "image"
    for k in np.flatnonzero(record.visible):
        point = record.points[k]
        shown = ", ".join(f"{v:g}" for v in point)
        if not all(math.isfinite(v) for v in point):
            fault(f"landmark {k + 1}: coordinates are not finite ({shown})")
        elif size is not None and not all(-0.5 <= v <= n - 0.5 for v, n in zip(point, size,
                                                                                 strict=True)):
            fault(f"landmark {k + 1}: point ({shown}) outside the "
                  f"{'x'.join(str(n) for n in size)} {kind}")
    if record.spacing is not None:
        spacing_problem = spacing_fault(record.spacing, dims)
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
