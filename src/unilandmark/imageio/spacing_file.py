"""An image's own calibration: the spacing a person measured on it, in a small JSON file
beside the image (docs/prediction.md, "Spacing").

A cephalogram's file often carries no spacing, or the detector's pixel size, which is not
the size at the patient (the X-ray source magnifies). Clinics calibrate with a ruler of
known length in the image: two clicks on its ends in the review app
(``unilandmark serve``) give mm per pixel, written to ``NAME.spacing.json`` beside
``NAME.png`` (the image's full file name plus ``.spacing.json``)::

    {"spacing": [0.1, 0.1], "source": "ruler",
     "ruler": {"from": [x1, y1], "to": [x2, y2], "length_mm": 50.0, "length_px": 500.0}}

Points are original pixels (centre of the top-left pixel is (0, 0)); spacing is (x, y) mm
per pixel. ``predict`` (and so ``measure`` on its CSV, and ``report``) reads it before the
image file's own spacing: a person's measurement on this very image wins over a header
written for the detector. Reading checks the spacing like ``--spacing`` (finite, in a
plausible range) and refuses a bad file with a sentence naming it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from ..core.atomic import atomic_write_text
from ..core.errors import InputError
from ..core.jsontext import json_text, read_json
from ..core.limits import spacing_fault
from ..core.types import Spacing

SUFFIX = ".spacing.json"
#: the largest side file read (a calibration is a few hundred bytes)
MAX_BYTES = 64 * 1024


def spacing_file(image: str | os.PathLike) -> Path:
    """The side file of ``image``: its full name plus ``.spacing.json``."""
    image = Path(image)
    return image.with_name(image.name + SUFFIX)


def read_spacing_file(image: str | os.PathLike) -> tuple[Spacing, str] | None:
    """(spacing (x, y) mm per pixel, source) from ``image``'s side file, or None when it
    has none; :class:`InputError` naming the file for a bad one."""
    path = spacing_file(image)
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_BYTES:
        raise InputError(f"{path}: {path.stat().st_size} bytes, more than a spacing file "
                         f"holds ({MAX_BYTES}); refused")
    data = read_json(path.read_bytes(), str(path))
    if not isinstance(data, dict) or "spacing" not in data:
        raise InputError(f"{path}: expected a JSON object with 'spacing': [x, y] (mm per "
                         "pixel)")
    fault = spacing_fault(data["spacing"], 2)
    if fault:
        raise InputError(f"{path}: {fault}")
    source = data.get("source", "spacing-file")
    if not isinstance(source, str) or not source.isidentifier() or len(source) > 40:
        source = "spacing-file"
    sx, sy = (float(v) for v in data["spacing"])
    return (sx, sy), source


def ruler_spacing(start, end, length_mm: float) -> float:
    """mm per pixel from a ruler drawn from ``start`` to ``end`` (original pixels) that is
    ``length_mm`` long; :class:`InputError` for a zero-length ruler or a bad length."""
    length_px = math.dist([float(v) for v in start], [float(v) for v in end])
    if not (math.isfinite(length_mm) and length_mm > 0):
        raise InputError(f"ruler length must be a positive number of mm, got {length_mm!r}")
    if not (math.isfinite(length_px) and length_px >= 2):
        raise InputError("the ruler's two ends are less than 2 pixels apart: click its two "
                         "ends farther apart")
    return length_mm / length_px


def write_ruler_spacing(image: str | os.PathLike, start, end, length_mm: float) -> Spacing:
    """Write ``image``'s side file from a ruler (isotropic spacing: the same mm per pixel in
    x and y, as a ruler measures along one direction); returns the spacing. Atomic; a
    spacing outside the plausible range is refused and nothing written."""
    mm = ruler_spacing(start, end, length_mm)
    fault = spacing_fault((mm, mm), 2)
    if fault:
        raise InputError(f"ruler of {length_mm:g} mm over "
                         f"{math.dist(start, end):.1f} pixels: {fault}")
    payload = {"spacing": [mm, mm], "source": "ruler",
               "ruler": {"from": [float(v) for v in start], "to": [float(v) for v in end],
                         "length_mm": float(length_mm),
                         "length_px": float(math.dist(start, end))}}
    atomic_write_text(spacing_file(image), json_text(payload))
    return mm, mm


def read_spacing_table(path: str | os.PathLike) -> dict[str, Spacing]:
    """``predict --spacing-file``: a CSV with a header, ``image,spacing`` (the same in x and
    y) or ``image,spacing_x,spacing_y``, one row per image; ``image`` a file name, a path
    (relative to the table's folder) or a stem. Returns {image cell: (x, y) mm per pixel};
    every faulty line (an empty image, a spacing that is not a plausible number, an image
    listed twice) is reported together, naming the file and line."""
    import csv

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file (a spacing table is a CSV)") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise InputError(f"{path}: empty; expected a header image,spacing or "
                         "image,spacing_x,spacing_y")
    header = [c.strip().lower() for c in rows[0]]
    if header[:1] != ["image"] or header[1:] not in (["spacing"], ["spacing_x", "spacing_y"]):
        raise InputError(f"{path}: line 1: the header must be image,spacing or "
                         f"image,spacing_x,spacing_y, got {','.join(rows[0])!r:.120}")
    out: dict[str, Spacing] = {}
    faults = []
    for line, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            faults.append(f"line {line}: {len(cells)} cells, the header has {len(header)}")
            continue
        image = cells[0].strip()
        values = [c.strip() for c in cells[1:]]
        if len(values) == 1:
            values = values * 2
        fault = None if image else "no image"
        if fault is None:
            try:
                spacing = (float(values[0]), float(values[1]))
                fault = spacing_fault(spacing, 2)
            except ValueError:
                fault = f"spacing {','.join(values)!r} is not a number"
        if fault is None and image in out:
            fault = f"image {image!r} is listed twice"
        if fault:
            faults.append(f"line {line}: {fault}")
        else:
            out[image] = spacing
    if faults:
        shown = "; ".join(faults[:10]) + (f" (and {len(faults) - 10} more)"
                                          if len(faults) > 10 else "")
        raise InputError(f"{path}: {shown}")
    return out


def spacings_for(paths, table: dict[str, Spacing], where: str) -> tuple[dict, list[str]]:
    """Each of ``paths``'s spacing from a :func:`read_spacing_table` table, matched by the
    cell as a path (relative to ``where``, the table's folder), the file name, or the stem;
    returns ({absolute path: spacing}, table entries that matched no image)."""
    from ..core.naming import file_stem

    base = Path(where)
    as_path = {os.path.abspath(base / cell): cell for cell in table}
    out, used = {}, set()
    for p in paths:
        absolute = os.path.abspath(p)
        for cell in (as_path.get(absolute), Path(p).name, file_stem(p)):
            if cell is not None and cell in table:
                out[absolute] = table[cell]
                used.add(cell)
                break
    return out, [c for c in table if c not in used]
