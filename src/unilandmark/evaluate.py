"""Score a prediction CSV against a dataset split under a named protocol.

The prediction CSV (docs/protocols.md, "Prediction CSV"): ``image,landmark,x,y`` then
optional columns in the order of ``OPTIONAL_COLUMNS``; one row per (image, landmark),
original pixels.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_write_text
from .data.faults import DatasetError, Fault, FaultLog
from .data.spreadsheet import read_table
from .io import ImageReadError, read_image_info
from .metrics import summarise
from .protocols import Protocol
from .quality_report import quality_report
from .types import DatasetSpec, Record

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
    faults += far_outside(table.path, spec, records, pred)
    if faults:  # rows for images of other splits are allowed and ignored
        unpredicted = len(records) - len(predicted_records(table, records))
        hint = (f"{unpredicted} of the split's {len(records)} images have no prediction at "
                "all; to score only the images in the file, pass --predicted-only (the "
                "figure is then not the protocol's)") if unpredicted else ""
        raise PredictionError(table.path, faults, hint)
    return pred


def predicted_records(table: PredictionTable, records: list[Record]) -> list[Record]:
    """The records with at least one predicted landmark in ``table``."""
    ids = {rid for rid, _ in table.points}
    return [r for r in records if r.id in ids]


#: a predicted point more than this many image sizes outside the image is refused
FAR_OUTSIDE = 1.0


def far_outside(path: str, spec: DatasetSpec, records: list[Record],
                pred: np.ndarray) -> list[Fault]:
    """Faults for predicted points far outside their image: beyond one image width
    (height) left or right of (above or below) it. Such a point is a broken file or a
    unit mix-up (mm for px), not an error to average into a table. Points moderately
    outside the image are scored as they are. The size comes from the record or the
    image header; an unreadable header skips the check for that image."""
    faults = []
    for record, points in zip(records, pred, strict=True):
        try:
            w, h = record.meta.get("size") or read_image_info(record.image_path)[0]
        except (ImageReadError, OSError):
            continue
        for k, (x, y) in enumerate(points):
            if not (np.isfinite(x) and np.isfinite(y)):
                continue
            if not (-FAR_OUTSIDE * w <= x <= (1 + FAR_OUTSIDE) * w - 1
                    and -FAR_OUTSIDE * h <= y <= (1 + FAR_OUTSIDE) * h - 1):
                faults.append(Fault(path, record.id, f"landmark {k + 1} "
                                    f"({spec.landmark_names[k]}): predicted point "
                                    f"({x:.6g}, {y:.6g}) lies far outside the {w}x{h} image "
                                    f"{record.image_path}"))
    return faults


def evaluate(table: PredictionTable, spec: DatasetSpec, split: str, protocol: Protocol,
             predicted_only: bool = False) -> tuple[dict, np.ndarray, list[Record], np.ndarray]:
    """Score ``table`` on ``split``. Returns (report dict, errors (N, K), records, pred).

    predicted_only : score only the split's images that have a prediction in ``table``
        (the report's ``subset`` says how many of the split's images that is); by default
        every image of the split must be predicted.
    """
    records = spec.split_records(split)
    if not records:
        raise ValueError(f"{spec.name}: split {split!r} has no records with images")
    n_split = len(records)
    if predicted_only:
        records = predicted_records(table, records)
        if not records:
            raise PredictionError(table.path, [Fault(
                table.path, "", f"no image of split {split!r} of {spec.name} is predicted "
                                "(image ids must match the dataset's)")])
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
        **({"subset": {"n_images": len(records), "n_images_in_split": n_split,
                       "note": "only the images with predictions: not the protocol's "
                               "figure"}} if predicted_only else {}),
        "per_image": [{"image": r.id, "mre": float(np.nanmean(e))}
                      for r, e in zip(records, errors, strict=True)],
    }
    quality = quality_report(table, records, errors, max(thresholds), report["unit"])
    if quality is not None:
        report["quality"] = quality
    return report, errors, records, pred


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


def export_ground_truth(spec: DatasetSpec, split: str, path: str | Path) -> int:
    """Write the split's ground truth (visible points) in the prediction CSV format, with
    each image's orientation (``record.meta['orientation']``, default original: an image
    stored as the mirror of the dataset's frame, such as ISBI 2015 test2 image 322, says
    ``mirrored`` so measurements read it in the patient's frame)."""
    records = spec.split_records(split)
    rows = prediction_rows([r.id for r in records],
                           [np.where(r.visible[:, None], r.points, np.nan) for r in records],
                           spec.landmark_names,
                           spacing=[r.spacing for r in records],
                           orientation=[r.meta.get("orientation", "original") for r in records])
    write_predictions(path, rows)
    return len(records)
