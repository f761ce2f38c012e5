"""The generic ``csv`` adapter: a wide table or the long prediction format.

Wide: one row per image with an ``image`` column (path, relative to the table's folder),
landmark columns ``x1, y1, x2, y2, ...`` or ``NAME_x, NAME_y``, and optional ``id``,
``split``, ``spacing`` (both axes) or ``spacing_x``/``spacing_y``. An empty landmark cell
means "not visible".

Long: the prediction CSV (``image, landmark, x, y`` and optional ``name``, ``spacing_x``/
``spacing_y``, read from each image's first row, as the review app writes them), one row
per landmark, where ``image`` is the record id and ``images`` the folder holding the files.
Every image has a row for every landmark number; a landmark not visible keeps its row
with ``x`` and ``y`` empty (as the review app writes it). A missing row is a fault, not a
landmark silently not visible (a truncated or filtered table would otherwise train and
score without a word); so is an image with more landmark rows than the others (not a
larger K for every image).

Tables are read as spreadsheets write them (:mod:`.spreadsheet`: BOM, UTF-16, comma,
semicolon or tab, decimal commas); every fault names the file and line.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ...core.limits import checked_spacing, spacing_fault
from ...core.naming import file_stem
from ...core.types import DatasetSpec, Record, error_unit
from ..annotations import unpaired_landmark_columns, wide_landmark_columns
from ..faults import FaultLog
from ..spreadsheet import Table, read_table


def csv_dataset(path: str | Path, images: str | Path | None = None,
                spacing: float | None = None, name: str = "csv", domain: str = "csv",
                thresholds: tuple[float, ...] | None = None) -> DatasetSpec:
    """Build a DatasetSpec from a CSV table (wide or long, see the module docstring).

    ``spacing`` (mm per pixel, both axes) applies to records without a spacing column.
    """
    path = Path(path)
    fixed = checked_spacing(spacing, f"{name}: option spacing")
    log = FaultLog(name)
    if not path.is_file():
        log.add(path, "", "table missing")
        log.raise_if_any()
    table = read_table(path, log)
    if table is None:
        log.raise_if_any()
    if not table.rows and not log.faults:
        log.add(path, "", "no rows")
        log.raise_if_any()
    if {"image", "landmark", "x", "y"} <= set(table.header):
        names, records, splits = _long_table(table, images, fixed, log)
    else:
        names, records, splits = _wide_table(table, fixed, log)
    log.raise_if_any()
    splits["all"] = tuple(r.id for r in records)
    unit = error_unit(records)
    if thresholds is None:
        thresholds = (2.0, 2.5, 3.0, 4.0) if unit == "mm" else (3.0, 6.0, 9.0)
    return DatasetSpec(name=name, domain=domain, landmark_names=tuple(names),
                       records=tuple(records), splits=splits, unit=unit,
                       thresholds=tuple(thresholds), info={"table": str(path)})


def _row_spacing(table: Table, row: dict[str, str], fixed, where: str, rid: str,
                 log: FaultLog):
    try:
        if row.get("spacing_x") or row.get("spacing_y"):
            sp = (table.number(row.get("spacing_x", "")), table.number(row.get("spacing_y", "")))
        elif row.get("spacing"):
            value = table.number(row["spacing"])
            sp = (value, value)
        else:
            return fixed
    except ValueError as err:
        log.add(table.path, rid, f"{where}: spacing: {err}")
        return None
    fault = spacing_fault(sp) if None not in sp else "spacing_x and spacing_y must both be given"
    if fault:
        log.add(table.path, rid, f"{where}: {fault}")
        return None
    return sp


def _wide_table(table: Table, fixed, log: FaultLog):
    path, header = table.path, table.header
    columns = wide_landmark_columns(header)
    for lonely in unpaired_landmark_columns(header):
        log.add(path, "", f"line 1: column {lonely}")
    if "image" not in header or not columns:
        log.add(path, "", "line 1: expected an 'image' column and landmark columns x1,y1,... "
                          "or NAME_x,NAME_y (or the long format image,landmark,x,y); "
                          f"found columns {header}")
        return [], [], {}
    names = [c[0] for c in columns]
    records, splits, seen = [], {}, set()
    for row, line_no in zip(table.rows, table.lines, strict=True):
        where = f"line {line_no}"
        image = (path.parent / row["image"].replace("\\", "/")).resolve() \
            if row.get("image") else None
        rid = row.get("id") or (file_stem(row["image"]) if row.get("image") else f"line{line_no}")
        if image is None:
            log.add(path, rid, f"{where}: empty 'image' cell")
            continue
        if rid in seen:
            log.add(path, rid, f"{where}: id given twice")
            continue
        seen.add(rid)
        points = np.full((len(names), 2), np.nan)
        ok = True
        for k, (lname, cx, cy) in enumerate(columns):
            try:
                x, y = table.number(row.get(cx, "")), table.number(row.get(cy, ""))
            except ValueError as err:
                log.add(path, rid, f"{where}: landmark {lname!r}: {err}")
                ok = False
                continue
            if (x is None) != (y is None):
                log.add(path, rid, f"{where}: landmark {lname!r}: x and y must both be "
                                   "given or both be empty")
                ok = False
            elif x is not None:
                points[k] = (x, y)
        sp = _row_spacing(table, row, fixed, where, rid, log)
        if not image.is_file():
            log.add(path, rid, f"{where}: image {row['image']!r} does not exist")
            ok = False
        if ok:
            records.append(Record(id=rid, image_path=str(image), points=points,
                                  visible=~np.isnan(points[:, 0]), spacing=sp))
            if row.get("split"):
                splits.setdefault(row["split"], []).append(rid)
    return names, records, {k: tuple(v) for k, v in splits.items()}


def _long_table(table: Table, images, fixed, log: FaultLog):
    from ..files import images_by_stem

    path = table.path
    folder = Path(images) if images else path.parent
    files = images_by_stem(folder)
    per_image: dict[str, dict[int, tuple[float, float] | None]] = {}
    first_line: dict[tuple[str, int], int] = {}
    names: dict[int, str] = {}
    spacings: dict[str, tuple] = {}
    for row, line_no in zip(table.rows, table.lines, strict=True):
        rid = row["image"]
        if rid not in spacings:  # the image's first row gives its spacing (the review table)
            spacings[rid] = _row_spacing(table, row, fixed, f"line {line_no}", rid, log)
        try:
            landmark = int(row["landmark"])
        except ValueError:
            log.add(path, rid, f"line {line_no}: landmark is not an integer: "
                               f"{row['landmark']!r}")
            continue
        try:
            x, y = table.number(row["x"]), table.number(row["y"])
        except ValueError as err:
            log.add(path, rid, f"line {line_no}: landmark {landmark}: {err}")
            continue
        if landmark < 1:
            log.add(path, rid, f"line {line_no}: landmark numbers start at 1, got {landmark}")
            continue
        if landmark in per_image.setdefault(rid, {}):
            log.add(path, rid, f"line {line_no}: landmark {landmark} given twice")
            continue
        if (x is None) != (y is None):
            log.add(path, rid, f"line {line_no}: landmark {landmark}: x and y must both be "
                               "given or both be empty")
            continue
        name = row.get("name")
        if name:
            if names.setdefault(landmark, name) != name:
                log.add(path, rid, f"line {line_no}: landmark {landmark} is named {name!r} "
                                   f"here but {names[landmark]!r} before")
        per_image[rid][landmark] = (x, y) if x is not None else None
        first_line[(rid, landmark)] = line_no
    broken = {f.record for f in log.faults}  # a row already refused: its image is reported
    k = _landmark_count(per_image, first_line, path, log)
    landmark_names = [names.get(i + 1, str(i + 1)) for i in range(k)]
    records = []
    for rid, pts in per_image.items():
        if any(lm > k for lm in pts):
            continue  # reported by _landmark_count
        absent = [lm for lm in range(1, k + 1) if lm not in pts]
        if absent and rid not in broken:
            log.add(path, rid, f"no row for landmark(s) {_numbers(absent)} of 1..{k}: give each "
                               "landmark its row, with x and y empty for one not visible")
        if absent:
            continue
        if rid not in files:
            log.add(path, rid, f"no image file with stem {rid!r} in {folder}")
            continue
        points = np.full((k, 2), np.nan)
        for lm, xy in pts.items():
            if xy is not None:
                points[lm - 1] = xy
        records.append(Record(id=rid, image_path=str(files[rid]), points=points,
                              visible=~np.isnan(points[:, 0]), spacing=spacings.get(rid, fixed)))
    return landmark_names, records, {}


def _numbers(values: list[int]) -> str:
    """``2, 5-7, 9``: landmark numbers as runs."""
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][-1] + 1:
            runs[-1].append(v)
        else:
            runs.append([v])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def _landmark_count(per_image, first_line, path, log: FaultLog) -> int:
    """K of a long table: the largest landmark number given for at least half of the
    images (a row for each of 1..K is then required). Rows beyond K, present for only a
    few images, are faults: an extra row must not raise K for every image."""
    images = [pts for pts in per_image.values() if pts]
    if not images:
        return 0
    seen = Counter(lm for pts in images for lm in pts)
    k = max(lm for lm, c in seen.items() if 2 * c >= len(images))
    for rid, pts in per_image.items():
        extra = sorted(lm for lm in pts if lm > k)
        if extra:
            log.add(path, rid, f"line {first_line[(rid, extra[0])]}: landmark {extra[0]}, but "
                               f"most images have landmarks 1..{k} (landmark {extra[0]} is "
                               f"given for {seen[extra[0]]} of {len(images)} images): "
                               "inconsistent landmark counts")
    return k
