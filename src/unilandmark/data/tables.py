"""The generic ``csv`` adapter: a wide table or the long prediction format.

Wide: one row per image with an ``image`` column (path, relative to the table's folder),
landmark columns ``x1, y1, x2, y2, ...`` or ``NAME_x, NAME_y``, and optional ``id``,
``split``, ``spacing`` (both axes) or ``spacing_x``/``spacing_y``. An empty landmark cell
means "not visible".

Long: the prediction CSV (``image, landmark, x, y`` and optional ``name``), one row per
landmark, where ``image`` is the record id and ``images`` the folder holding the files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..types import DatasetSpec, Record
from .annotations import cell_number, read_csv_rows, wide_landmark_columns
from .faults import FaultLog


def csv_dataset(path: str | Path, images: str | Path | None = None,
                spacing: float | None = None, name: str = "csv", domain: str = "csv",
                thresholds: tuple[float, ...] | None = None) -> DatasetSpec:
    """Build a DatasetSpec from a CSV table (wide or long, see the module docstring).

    ``spacing`` (mm per pixel, both axes) applies to records without a spacing column.
    """
    path = Path(path)
    log = FaultLog(name)
    if not path.is_file():
        log.add(path, "", "table missing")
        log.raise_if_any()
    header, rows = read_csv_rows(path, log)
    if not rows:
        log.add(path, "", "no rows")
        log.raise_if_any()
    fixed = (float(spacing), float(spacing)) if spacing else None
    if fixed and fixed[0] <= 0:
        raise ValueError(f"{name}: spacing must be positive, got {spacing}")
    if {"image", "landmark", "x", "y"} <= set(header):
        names, records, splits = _long_table(path, rows, images, fixed, log)
    else:
        names, records, splits = _wide_table(path, header, rows, fixed, log)
    log.raise_if_any()
    splits["all"] = tuple(r.id for r in records)
    unit = "mm" if records and all(r.spacing for r in records) else "px"
    if thresholds is None:
        thresholds = (2.0, 2.5, 3.0, 4.0) if unit == "mm" else (3.0, 6.0, 9.0)
    return DatasetSpec(name=name, domain=domain, landmark_names=tuple(names),
                       records=tuple(records), splits=splits, unit=unit,
                       thresholds=tuple(thresholds), info={"table": str(path)})


def _row_spacing(row: dict[str, str], fixed, path, rid, log: FaultLog):
    try:
        if row.get("spacing_x") or row.get("spacing_y"):
            sp = (cell_number(row.get("spacing_x", "")), cell_number(row.get("spacing_y", "")))
        elif row.get("spacing"):
            value = cell_number(row["spacing"])
            sp = (value, value)
        else:
            return fixed
    except ValueError as err:
        log.add(path, rid, f"spacing: {err}")
        return None
    if any(v is None or v <= 0 for v in sp):
        log.add(path, rid, f"spacing must be two positive numbers, got {sp}")
        return None
    return sp


def _wide_table(path: Path, header, rows, fixed, log: FaultLog):
    columns = wide_landmark_columns(header)
    if "image" not in header or not columns:
        log.add(path, "", "expected an 'image' column and landmark columns x1,y1,... or "
                          "NAME_x,NAME_y (or the long format image,landmark,x,y)")
        return [], [], {}
    names = [c[0] for c in columns]
    records, splits, seen = [], {}, set()
    for line_no, row in enumerate(rows, start=2):
        image = (path.parent / row["image"]).resolve() if row.get("image") else None
        rid = row.get("id") or (Path(row["image"]).stem if row.get("image") else f"line{line_no}")
        if image is None:
            log.add(path, rid, f"line {line_no}: empty 'image' cell")
            continue
        if rid in seen:
            log.add(path, rid, f"line {line_no}: id given twice")
            continue
        seen.add(rid)
        points = np.full((len(names), 2), np.nan)
        ok = True
        for k, (lname, cx, cy) in enumerate(columns):
            try:
                x, y = cell_number(row.get(cx, "")), cell_number(row.get(cy, ""))
            except ValueError as err:
                log.add(path, rid, f"line {line_no}: landmark {lname!r}: {err}")
                ok = False
                continue
            if (x is None) != (y is None):
                log.add(path, rid, f"line {line_no}: landmark {lname!r}: x and y must both be "
                                   "given or both be empty")
                ok = False
            elif x is not None:
                points[k] = (x, y)
        sp = _row_spacing(row, fixed, path, rid, log)
        if not image.is_file():
            log.add(path, rid, f"line {line_no}: image {row['image']!r} does not exist")
            ok = False
        if ok:
            records.append(Record(id=rid, image_path=str(image), points=points,
                                  visible=~np.isnan(points[:, 0]), spacing=sp))
            if row.get("split"):
                splits.setdefault(row["split"], []).append(rid)
    return names, records, {k: tuple(v) for k, v in splits.items()}


def _long_table(path: Path, rows, images, fixed, log: FaultLog):
    from .catalog import _images_by_stem  # local: catalog imports this module

    folder = Path(images) if images else path.parent
    files = _images_by_stem(folder)
    per_image: dict[str, dict[int, tuple[float, float]]] = {}
    names: dict[int, str] = {}
    for line_no, row in enumerate(rows, start=2):
        rid = row["image"]
        try:
            landmark = int(row["landmark"])
            x, y = cell_number(row["x"]), cell_number(row["y"])
        except ValueError as err:
            log.add(path, rid, f"line {line_no}: {err}")
            continue
        if landmark < 1:
            log.add(path, rid, f"line {line_no}: landmark numbers start at 1, got {landmark}")
            continue
        if landmark in per_image.setdefault(rid, {}):
            log.add(path, rid, f"line {line_no}: landmark {landmark} given twice")
            continue
        if row.get("name"):
            names[landmark] = row["name"]
        if x is not None and y is not None:
            per_image[rid][landmark] = (x, y)
    k = max([max(v) for v in per_image.values() if v] + list(names) + [0])
    landmark_names = [names.get(i + 1, str(i + 1)) for i in range(k)]
    records = []
    for rid, pts in per_image.items():
        if rid not in files:
            log.add(path, rid, f"no image file with stem {rid!r} in {folder}")
            continue
        points = np.full((k, 2), np.nan)
        for lm, xy in pts.items():
            points[lm - 1] = xy
        records.append(Record(id=rid, image_path=str(files[rid]), points=points,
                              visible=~np.isnan(points[:, 0]), spacing=fixed))
    return landmark_names, records, {}
