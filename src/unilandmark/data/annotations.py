"""Annotation parsers: ISBI txt, Payer's hand CSV, GU2Net chest txt, labelme JSON, CSV tables.

Every parser reports faults into a :class:`FaultLog` (file, record, fault) instead of
stopping at the first one, so a dataset's faults are listed together. Coordinates are
returned exactly as stored (floats, never rounded).
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np

from .faults import FaultLog
from .spreadsheet import decode_table


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_isbi_txt(path: Path, num_landmarks: int, log: FaultLog, record: str) -> np.ndarray | None:
    """ISBI 2015 annotation: one ``x,y`` per line; only the first ``num_landmarks`` lines.

    Returns (K, 2) float64 or None when the file has faults (they go to ``log``).
    """
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError as err:
        log.add(path, record, f"cannot read annotation ({err.strerror})")
        return None
    lines = [ln for ln in lines if ln.strip()]
    if len(lines) < num_landmarks:
        log.add(path, record, f"expected {num_landmarks} landmark lines 'x,y', found {len(lines)}")
        return None
    points = np.empty((num_landmarks, 2), dtype=np.float64)
    ok = True
    for i, line in enumerate(lines[:num_landmarks]):
        parts = [p.strip() for p in re.split(r"[,\s]+", line.strip()) if p.strip()]
        values = [_number(p) for p in parts]
        if len(parts) != 2 or any(v is None for v in values):
            log.add(path, record,
                    f"line {i + 1}: expected 'x,y' (two finite numbers), got {line!r}")
            ok = False
            continue
        points[i] = values
    return points if ok else None


def parse_payer_hand_csv(path: Path, num_landmarks: int, log: FaultLog) -> dict[str, np.ndarray]:
    """Payer et al.'s ``all.csv``: ``id, x1, y1, ..., xK, yK`` per row, no header.

    Returns {id: (K, 2)} for the good rows; bad rows go to ``log``.
    """
    out: dict[str, np.ndarray] = {}
    text = decode_table(Path(path), log)
    if text is None:
        return out
    for line_no, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip():
            continue
        rid = row[0].strip()
        values = [_number(v.strip()) for v in row[1:]]
        if len(values) != 2 * num_landmarks:
            log.add(path, rid, f"line {line_no}: expected {2 * num_landmarks} coordinates, "
                               f"found {len(values)}")
            continue
        bad = [i for i, v in enumerate(values) if v is None]
        if bad:
            col = bad[0] + 2
            log.add(path, rid, f"line {line_no}: column {col}: not a finite number: "
                               f"{row[col - 1].strip()!r}")
            continue
        if rid in out:
            log.add(path, rid, f"line {line_no}: id given twice")
            continue
        out[rid] = np.asarray(values, dtype=np.float64).reshape(num_landmarks, 2)
    return out


def parse_chest_txt(path: Path, num_landmarks: int, log: FaultLog,
                    record: str) -> np.ndarray | None:
    """GU2Net chest label: first line the count, then ``x y`` fractions of width/height."""
    try:
        lines = [ln for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError as err:
        log.add(path, record, f"cannot read annotation ({err.strerror})")
        return None
    if not lines or _number(lines[0].strip()) != num_landmarks:
        log.add(path, record, f"line 1: expected the landmark count {num_landmarks}, "
                              f"got {lines[0].strip() if lines else 'an empty file'!r}")
        return None
    body = lines[1:]
    if len(body) != num_landmarks:
        log.add(path, record, f"expected {num_landmarks} lines 'x y', found {len(body)}")
        return None
    points = np.empty((num_landmarks, 2), dtype=np.float64)
    ok = True
    for i, line in enumerate(body):
        values = [_number(v) for v in line.split()]
        if len(values) != 2 or any(v is None for v in values):
            log.add(path, record,
                    f"line {i + 2}: expected 'x y' (two finite numbers), got {line!r}")
            ok = False
            continue
        if not all(0.0 <= v <= 1.0 for v in values):
            log.add(path, record, f"line {i + 2}: fractions must lie in [0, 1], got {line!r}")
            ok = False
            continue
        points[i] = values
    return points if ok else None


def parse_labelme(path: Path, log: FaultLog) -> tuple[dict[str, tuple[float, float]], str] | None:
    """A labelme JSON file: ``({label: (x, y)} of its point shapes, imagePath)``.

    ``imagePath`` is returned with forward slashes (labelme on Windows writes
    backslashes). A malformed structure (``"shapes": 5``, a shape that is not an object,
    a point that is not ``[x, y]``) is a fault, never a traceback.
    """
    record = Path(path).stem
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        log.add(path, record, f"not a readable JSON file ({err})")
        return None
    if not isinstance(data, dict) or "shapes" not in data:
        log.add(path, record, "not a labelme file (no 'shapes')")
        return None
    shapes = data["shapes"]
    if shapes is None:
        shapes = []
    if not isinstance(shapes, list):
        log.add(path, record, f"'shapes' must be a list of shapes, got {type(shapes).__name__}"
                              f" {_short(shapes)}")
        return None
    points: dict[str, tuple[float, float]] = {}
    ok = True
    for i, shape in enumerate(shapes):
        if not isinstance(shape, dict):
            log.add(path, record, f"shape {i}: expected an object with 'label' and 'points', "
                                  f"got {type(shape).__name__} {_short(shape)}")
            ok = False
            continue
        if shape.get("shape_type") not in (None, "point"):
            continue
        label = shape.get("label")
        label = label.strip() if isinstance(label, str) else ""
        pts = shape.get("points")
        if not label:
            log.add(path, record, f"shape {i}: point without a text label "
                                  f"(label {_short(shape.get('label'))})")
            ok = False
            continue
        if not (isinstance(pts, list) and len(pts) == 1 and isinstance(pts[0], list)
                and len(pts[0]) == 2):
            log.add(path, record, f"shape {i} ({label!r}): expected one [x, y] point, got "
                                  f"{_short(pts)}")
            ok = False
            continue
        xy = [_number(str(v)) if isinstance(v, (int, float)) and not isinstance(v, bool)
              else None for v in pts[0]]
        if any(v is None for v in xy):
            log.add(path, record, f"shape {i} ({label!r}): not finite numbers: {pts[0]!r}")
            ok = False
            continue
        if label in points:
            log.add(path, record, f"label {label!r} given twice")
            ok = False
            continue
        points[label] = (xy[0], xy[1])
    image_path = data.get("imagePath")
    if not isinstance(image_path, str) or not image_path.strip():
        log.add(path, record, "no 'imagePath' (a text path to the image)")
        ok = False
    return (points, image_path.strip().replace("\\", "/")) if ok else None


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: column names of a wide CSV table that are not landmark coordinates
WIDE_META_COLUMNS = {"id", "image", "split", "spacing", "spacing_x", "spacing_y", "domain"}


def wide_landmark_columns(header: list[str]) -> list[tuple[str, str, str]] | None:
    """Landmark (name, x column, y column) of a wide table, in column order.

    Accepts ``x1, y1, x2, y2, ...`` (names ``1, 2, ...``) or ``NAME_x, NAME_y``.
    """
    cols = [c for c in header if c not in WIDE_META_COLUMNS]
    out = []
    numbered = re.compile(r"^x(\d+)$")
    for c in cols:
        m = numbered.match(c)
        if m and f"y{m.group(1)}" in header:
            out.append((m.group(1), c, f"y{m.group(1)}"))
        elif c.endswith("_x") and f"{c[:-2]}_y" in header:
            out.append((c[:-2], c, f"{c[:-2]}_y"))
    return out or None


def unpaired_landmark_columns(header: list[str]) -> list[str]:
    """Landmark-looking columns without their partner: ``NAME_x`` without ``NAME_y`` (or
    the reverse), ``x3`` without ``y3`` (or the reverse)."""
    present = set(header)
    lonely = []
    for c in header:
        if c in WIDE_META_COLUMNS:
            continue
        m = re.match(r"^([xy])(\d+)$", c)
        if m:
            partner = ("y" if m.group(1) == "x" else "x") + m.group(2)
        elif c.endswith(("_x", "_y")):
            partner = c[:-1] + ("y" if c.endswith("_x") else "x")
        else:
            continue
        if partner not in present:
            lonely.append(f"{c!r} has no partner column {partner!r}")
    return lonely
