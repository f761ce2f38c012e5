"""Score a prediction CSV against a dataset split under a named protocol.

The prediction CSV (docs/protocols.md, "Prediction CSV"): ``image,landmark,x,y`` then
optional columns in the order of ``OPTIONAL_COLUMNS``; one row per (image, landmark),
original pixels.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_write_text
from .data.faults import DatasetError, Fault
from .metrics import summarise
from .protocols import Protocol
from .types import DatasetSpec, Record

PREDICTION_COLUMNS = ("image", "landmark", "x", "y")
OPTIONAL_COLUMNS = ("name", "x_mm", "y_mm", "confidence", "domain", "flag", "qc", "orientation",
                    "spacing_x", "spacing_y", "spacing_source", "file")


class PredictionError(DatasetError):
    """A prediction file that cannot be scored; ``faults`` lists every problem."""


@dataclass(frozen=True)
class PredictionTable:
    """Parsed prediction rows: {(image id, landmark 1-based): (x, y)} plus confidence."""

    path: str
    points: dict[tuple[str, int], tuple[float, float]]
    confidence: dict[tuple[str, int], float]


def read_predictions(path: str | Path) -> PredictionTable:
    """Parse a prediction CSV; every malformed row is reported together."""
    path = Path(path)
    faults: list[Fault] = []
    if not path.is_file():
        raise PredictionError(str(path), [Fault(str(path), "", "prediction file missing")])
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in PREDICTION_COLUMNS if c not in header]
        if missing:
            expected = ",".join(PREDICTION_COLUMNS)
            raise PredictionError(str(path), [Fault(
                str(path), "", f"missing columns {missing}; expected header {expected}")])
        points, confidence = {}, {}
        for line_no, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            rid = row["image"]
            try:
                landmark = int(row["landmark"])
            except ValueError:
                faults.append(Fault(str(path), rid, f"line {line_no}: landmark is not an "
                                                    f"integer: {row['landmark']!r}"))
                continue
            try:
                x, y = float(row["x"]), float(row["y"])
                if not (np.isfinite(x) and np.isfinite(y)):
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
                    confidence[key] = float(row["confidence"])
                except ValueError:
                    faults.append(Fault(str(path), rid, f"line {line_no}: confidence is not a "
                                                        f"number: {row['confidence']!r}"))
    if faults:
        raise PredictionError(str(path), faults)
    return PredictionTable(str(path), points, confidence)


def match_predictions(table: PredictionTable, spec: DatasetSpec,
                      records: list[Record]) -> np.ndarray:
    """(N, K, 2) predictions for ``records``; raises listing every unknown image, unknown
    landmark and missing visible landmark."""
    k = spec.num_landmarks
    faults: list[Fault] = []
    all_ids = {r.id for r in spec.records}
    for rid, lm in table.points:
        if rid not in all_ids:
            faults.append(Fault(table.path, rid, f"unknown image id (not in {spec.name})"))
        elif not 1 <= lm <= k:
            faults.append(Fault(table.path, rid, f"unknown landmark {lm}; expected 1..{k}"))
    faults = list(dict.fromkeys(faults))
    pred = np.full((len(records), k, 2), np.nan)
    for n, record in enumerate(records):
        absent = []
        for j in range(k):
            xy = table.points.get((record.id, j + 1))
            if xy is not None:
                pred[n, j] = xy
            elif record.visible[j]:
                absent.append(j + 1)
        if absent:
            faults.append(Fault(table.path, record.id,
                                f"no prediction for visible landmark(s) {absent}"))
    if faults:  # rows for images of other splits are allowed and ignored
        raise PredictionError(table.path, faults)
    return pred


def evaluate(table: PredictionTable, spec: DatasetSpec, split: str,
             protocol: Protocol) -> tuple[dict, np.ndarray, list[Record], np.ndarray]:
    """Score ``table`` on ``split``. Returns (report dict, errors (N, K), records, pred)."""
    records = spec.split_records(split)
    if not records:
        raise ValueError(f"{spec.name}: split {split!r} has no records with images")
    pred = match_predictions(table, spec, records)
    errors = protocol.errors(spec, records, pred)
    thresholds = protocol.resolved_thresholds(spec)
    summary = summarise(errors, thresholds, spec.landmark_names)
    excluded = int(sum((~r.visible).sum() for r in records))
    report = {
        "protocol": protocol.name,
        "protocol_description": protocol.description,
        "dataset": spec.name,
        "split": split,
        "annotator": spec.info.get("annotator"),
        "predictions": table.path,
        "unit": protocol.resolved_unit(spec),
        "n_images": len(records),
        "n_points": summary.pop("n_points"),
        **summary,
        "missing": 0,
        "excluded": excluded,
        "per_image": [{"image": r.id, "mre": float(np.nanmean(e))}
                      for r, e in zip(records, errors, strict=True)],
    }
    return report, errors, records, pred


def prediction_rows(ids, points, names, confidence=None, spacing=None, domain=None):
    """Rows of the prediction CSV for (N, K, 2) points in original pixels."""
    rows = []
    for n, rid in enumerate(ids):
        for k, name in enumerate(names):
            x, y = points[n][k]
            if not (np.isfinite(x) and np.isfinite(y)):
                continue
            row = {"image": rid, "landmark": k + 1, "x": _num(x), "y": _num(y),
                   "name": name}
            sp = spacing[n] if spacing is not None else None
            if sp is not None:
                row["x_mm"], row["y_mm"] = _num(x * sp[0]), _num(y * sp[1])
            if confidence is not None:
                row["confidence"] = f"{float(confidence[n][k]):.4f}"
            if domain is not None:
                row["domain"] = domain
            rows.append(row)
    return rows


def _num(value: float) -> str:
    """Shortest text that reads back as exactly the same float (repr rules)."""
    return repr(float(value))


def write_predictions(path: str | Path, rows: list[dict]) -> None:
    """Write prediction rows atomically with the standard column order."""
    present = [c for c in OPTIONAL_COLUMNS if any(c in r for r in rows)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*PREDICTION_COLUMNS, *present], extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def export_ground_truth(spec: DatasetSpec, split: str, path: str | Path) -> int:
    """Write the split's ground truth (visible points) in the prediction CSV format."""
    records = spec.split_records(split)
    rows = prediction_rows([r.id for r in records],
                           [np.where(r.visible[:, None], r.points, np.nan) for r in records],
                           spec.landmark_names,
                           spacing=[r.spacing for r in records])
    write_predictions(path, rows)
    return len(records)
