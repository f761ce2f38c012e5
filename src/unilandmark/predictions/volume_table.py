"""The prediction table of volumes: one row per (volume, landmark).

Columns: ``image,landmark,name,x,y,z,frame,x_mm,y_mm,z_mm,confidence,present,domain``. ``x, y, z``
are voxel indices of the volume as stored (numpy axes reversed, the centre of the first
voxel at 0) and ``frame`` is ``voxel``, so the volume CSV adapter
(``data.adapters.volumes.volume_csv_dataset``) reads the file back as records;
``x_mm, y_mm, z_mm`` are the same points in world millimetres, LPS (ITK's frame; Slicer
shows RAS: x and y change sign). ``present`` is 1, or 0 for a landmark whose heatmap peak
(``confidence``) is below the model's presence threshold: reported absent, with empty
coordinates (``quality.presence``).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from ..core.atomic import atomic_write_text
from ..data.spreadsheet import formula_safe

VOLUME_COLUMNS = ("image", "landmark", "name", "x", "y", "z", "frame", "x_mm", "y_mm",
                  "z_mm", "confidence", "present", "domain")


def _number(value: float) -> str:
    value = float(value)
    return "" if not math.isfinite(value) else repr(round(value, 4))


def volume_rows(image_id: str, names, voxels, world, confidence, domain: str,
                present=None) -> list[dict]:
    """Rows of one volume: ``voxels`` and ``world`` (K, 3), ``confidence`` (K,),
    ``present`` (K,) bool (None: all present); an absent landmark's coordinates are
    left empty."""
    rows = []
    for k, name in enumerate(names):
        here = True if present is None else bool(present[k])
        shown = (lambda v: _number(v)) if here else (lambda v: "")
        rows.append({"image": image_id, "landmark": k + 1, "name": name,
                     **{a: shown(v) for a, v in zip("xyz", voxels[k], strict=True)},
                     "frame": "voxel",
                     **{f"{a}_mm": shown(v) for a, v in zip("xyz", world[k], strict=True)},
                     "confidence": _number(confidence[k]), "present": int(here),
                     "domain": domain})
    return rows


def write_volume_predictions(path: str | Path, rows: list[dict]) -> None:
    """Write the rows (atomically) with the header :data:`VOLUME_COLUMNS`; a text cell a
    spreadsheet would run as a formula gets a leading single quote
    (``spreadsheet.formula_safe``)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, VOLUME_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: formula_safe(v) for k, v in row.items()} for row in rows)
    atomic_write_text(path, buffer.getvalue())
