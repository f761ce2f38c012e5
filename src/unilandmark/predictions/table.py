"""The prediction table: one schema, one reader, one writer.

The prediction CSV (docs/protocols.md, "Prediction CSV"): ``image,landmark,x,y`` then
optional columns in the order of ``OPTIONAL_COLUMNS``; one row per (image, landmark),
original pixels (x right, y down, the centre of the first pixel at 0). Read as
spreadsheets write it (a byte-order mark, UTF-16, comma/semicolon/tab, decimal commas).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_write_text
from ..data.faults import DatasetError, Fault, FaultLog
from ..data.spreadsheet import read_table

PREDICTION_COLUMNS = ("image", "landmark", "x", "y")


OPTIONAL_COLUMNS = ("name", "x_mm", "y_mm", "confidence", "domain", "risk", "flag", "qc",
                    "orientation", "spacing_x", "spacing_y", "spacing_source", "file")


QC_VALUES = ("pass", "review", "fail")


class PredictionError(DatasetError):
    """A prediction file that cannot be scored; ``faults`` lists every problem, ``hint``
    (if any) what to do about them."""

    def __init__(self, name: str, faults: list[Fault], hint: str = ""):
        super().__init__(name, faults)
        self.hint = hint
        if hint:
            self.args = (f"{self.args[0]}\n{hint}",)


@dataclass(frozen=True)
class PredictionTable:
    """Parsed prediction rows: {(image id, landmark 1-based): (x, y)} plus confidence,
    and where the file has them the quality columns: risk, flag (bool) per point and qc
    per image (docs/quality.md)."""

    path: str
    points: dict[tuple[str, int], tuple[float, float]]
    confidence: dict[tuple[str, int], float]
    risk: dict[tuple[str, int], float] = field(default_factory=dict)
    flags: dict[tuple[str, int], bool] = field(default_factory=dict)
    qc: dict[str, str] = field(default_factory=dict)


def read_predictions(path: str | Path) -> PredictionTable:
    """Parse a prediction CSV; every malformed row is reported together.

    Read as spreadsheets write it (BOM, UTF-16, comma/semicolon/tab, decimal commas with
    a semicolon), like the dataset tables.
    """
    path = Path(path)
    if not path.is_file():
        raise PredictionError(str(path), [Fault(str(path), "", "prediction file missing")])
    log = FaultLog(str(path))
    table = read_table(path, log, required=len(PREDICTION_COLUMNS))
    if table is None:
        raise PredictionError(str(path), log.faults)
    missing = [c for c in PREDICTION_COLUMNS if c not in table.header]
    if missing:
        expected = ",".join(PREDICTION_COLUMNS)
        raise PredictionError(str(path), [*log.faults, Fault(
            str(path), "", f"missing columns {missing}; expected header {expected}")])
    faults: list[Fault] = list(log.faults)
    points, confidence = {}, {}
    quality: dict[str, dict] = {"risk": {}, "flags": {}, "qc": {}}
    for row, line_no in zip(table.rows, table.lines, strict=True):
        rid = row["image"]
        try:
            landmark = int(row["landmark"])
        except ValueError:
            faults.append(Fault(str(path), rid, f"line {line_no}: landmark is not an "
                                                f"integer: {row['landmark']!r}"))
            continue
        try:
            x, y = table.number(row["x"]), table.number(row["y"])
            if x is None or y is None:
                raise ValueError
        except ValueError:
            faults.append(Fault(str(path), rid, f"line {line_no}: landmark {landmark}: x, y "
                                                f"not finite numbers: {row['x']!r}, "
                                                f"{row['y']!r}"))
            continue
        key = (rid, landmark)
        if key in points:
            faults.append(Fault(str(path), rid, f"line {line_no}: landmark {landmark} "
                                                "given twice"))
            continue
        points[key] = (x, y)
        if row.get("confidence"):
            try:
                confidence[key] = table.number(row["confidence"])
            except ValueError:
                faults.append(Fault(str(path), rid, f"line {line_no}: confidence is not a "
                                                    f"number: {row['confidence']!r}"))
        faults += _quality_cells(row, table, key, quality, f"line {line_no}", str(path))
    if faults:
        raise PredictionError(str(path), faults)
    return PredictionTable(str(path), points, confidence, **quality)


def _quality_cells(row: dict, table, key: tuple[str, int], out: dict, where: str,
                   path: str) -> list[Fault]:
    """Parse a row's risk, flag and qc cells (empty cells are absent) into ``out``."""
    rid, faults = key[0], []
    if row.get("risk"):
        try:
            value = table.number(row["risk"])
            if value is None or not 0 <= value <= 1:
                raise ValueError
            out["risk"][key] = value
        except ValueError:
            faults.append(Fault(path, rid, f"{where}: risk is not a number in 0..1: "
                                           f"{row['risk']!r}"))
    if row.get("flag"):
        if row["flag"].strip() not in ("0", "1"):
            faults.append(Fault(path, rid, f"{where}: flag must be 0 or 1, got {row['flag']!r}"))
        else:
            out["flags"][key] = row["flag"].strip() == "1"
    if row.get("qc"):
        qc = row["qc"].strip()
        if qc not in QC_VALUES:
            faults.append(Fault(path, rid, f"{where}: qc must be one of {', '.join(QC_VALUES)}"
                                           f", got {row['qc']!r}"))
        elif out["qc"].setdefault(rid, qc) != qc:
            faults.append(Fault(path, rid, f"{where}: qc {qc!r} differs from the image's "
                                           f"earlier rows ({out['qc'][rid]!r})"))
    return faults


def prediction_rows(ids, points, names, confidence=None, spacing=None, domain=None,
                    orientation=None, spacing_source=None, flags=None, qc=None, files=None,
                    risk=None):
    """Rows of the prediction CSV for (N, K, 2) points in original pixels.

    Optional per-image lists: confidence (N, K), spacing (N) (sx, sy) or None,
    orientation (N), spacing_source (N), flags (N, K) bool, qc (N), files (N), risk (N)
    of (K,) or None. Coordinates are written with every digit their type holds (float32
    points as the shortest text that reads back as the same float32).
    """
    rows = []
    for n, rid in enumerate(ids):
        sp = spacing[n] if spacing is not None else None
        for k, name in enumerate(names):
            x, y = points[n][k]
            if not (np.isfinite(x) and np.isfinite(y)):
                continue
            row = {"image": rid, "landmark": k + 1, "x": _num(x), "y": _num(y),
                   "name": name}
            if sp is not None:
                row["x_mm"], row["y_mm"] = mm_text(x, sp[0]), mm_text(y, sp[1])
            if confidence is not None:
                row["confidence"] = f"{float(confidence[n][k]):.4f}"
            if domain is not None:
                row["domain"] = domain
            if risk is not None and risk[n] is not None:
                row["risk"] = f"{float(risk[n][k]):.4f}"
            if flags is not None:
                row["flag"] = int(bool(flags[n][k]))
            if qc is not None:
                row["qc"] = qc[n]
            if orientation is not None:
                row["orientation"] = orientation[n]
            if spacing_source is not None:
                row["spacing_x"] = "" if sp is None else _num(sp[0])
                row["spacing_y"] = "" if sp is None else _num(sp[1])
                row["spacing_source"] = spacing_source[n] or ""
            if files is not None:
                row["file"] = files[n] or ""
            rows.append(row)
    return rows


def _num(value: float) -> str:
    """Shortest text that reads back as exactly the same value: a float32 as a float32
    (``812.3``, not its float64 expansion), anything else as a float64 (repr rules)."""
    if isinstance(value, np.float32):
        return repr(float(str(value)))
    return repr(float(value))


def mm_text(px: float, mm_per_px: float) -> str:
    """A coordinate in millimetres as the shortest text of its float32 value (``84.6``, not
    ``84.60000000000001``): a derived column, written to float32 precision (about 1e-5 mm
    at 300 mm) whatever the type of the pixels it comes from."""
    return _num(np.float32(float(px) * float(mm_per_px)))


def write_predictions(path: str | Path, rows: list[dict]) -> None:
    """Write prediction rows atomically with the standard column order."""
    present = [c for c in OPTIONAL_COLUMNS if any(c in r for r in rows)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*PREDICTION_COLUMNS, *present], extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
