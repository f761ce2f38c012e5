"""Score a prediction CSV against a dataset split under a named protocol.

The prediction CSV (docs/protocols.md, "Prediction CSV"): ``image,landmark,x,y`` then
optional columns in the order of ``OPTIONAL_COLUMNS``; one row per (image, landmark),
original pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.metrics import summarise
from ..core.types import DatasetSpec, Record, truth_points
from ..data.faults import Fault
from ..imageio.read import ImageReadError, read_image_info
from ..predictions.table import (
    PredictionError,
    PredictionTable,
    prediction_rows,
    write_predictions,
)
from .protocols import Protocol
from .quality import quality_report


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


def millimetres_as_pixels(table: PredictionTable, spec: DatasetSpec) -> str | None:
    """Why ``x``, ``y`` of ``table`` look like millimetres, or None: the file has ``x_mm``,
    ``y_mm``, every row that gives all four holds the same numbers in both (within 1e-6,
    relative above 1), and the spacing of such a row (its own ``spacing_x``,
    ``spacing_y``, else the dataset's for its image) is known and not 1 mm per pixel. A
    user who exported millimetres into ``x``, ``y`` would otherwise be scored in pixels
    that are not pixels."""
    source = table.source
    if source is None or not {"x_mm", "y_mm"} <= set(source.header):
        return None
    records = spec.record_map()
    compared, other = 0, None
    for row in source.rows:
        try:
            x, y, x_mm, y_mm = (source.number(row.get(c, "")) for c in ("x", "y", "x_mm", "y_mm"))
        except ValueError:
            return None  # a bad cell: reported by the reader
        if None in (x, y, x_mm, y_mm):
            continue
        if not all(abs(a - b) <= 1e-6 * max(1.0, abs(a)) for a, b in ((x, x_mm), (y, y_mm))):
            return None
        compared += 1
        try:
            given = (source.number(row.get("spacing_x", "")),
                     source.number(row.get("spacing_y", "")))
        except ValueError:
            given = (None, None)
        record = records.get(row["image"])
        sp, whence = (given, "the file's spacing_x, spacing_y") if None not in given else \
            (record.spacing if record is not None else None, f"the spacing of {spec.name}")
        if other is None and sp is not None and \
                not all(abs(float(v) - 1.0) <= 1e-6 for v in sp):
            other = (row["image"], sp, whence)
    if not compared or other is None:
        return None
    rid, (sx, sy), whence = other
    return (f"x, y equal x_mm, y_mm in all {compared} rows that give both, but the spacing "
            f"is {sx:g} x {sy:g} mm per pixel (image {rid}, {whence}): x, y look like "
            "millimetres, not pixels; write the points in pixels into x, y (x_mm = x * "
            "spacing)")


def evaluate(table: PredictionTable, spec: DatasetSpec, split: str, protocol: Protocol,
             predicted_only: bool = False) -> tuple[dict, np.ndarray, list[Record], np.ndarray]:
    """Score ``table`` on ``split``. Returns (report dict, errors (N, K), records, pred).

    predicted_only : score only the split's images that have a prediction in ``table``
        (the report's ``subset`` says how many of the split's images that is); by default
        every image of the split must be predicted.
    """
    records = spec.split_records(split)
    if not records:
        raise InputError(f"{spec.name}: split {split!r} has no records with images")
    n_split = len(records)
    if predicted_only:
        records = predicted_records(table, records)
        if not records:
            raise PredictionError(table.path, [Fault(
                table.path, "", f"no image of split {split!r} of {spec.name} is predicted "
                                "(image ids must match the dataset's)")])
    mixed = millimetres_as_pixels(table, spec)
    if mixed:
        raise InputError(f"{table.path}: {mixed}")
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










def export_ground_truth(spec: DatasetSpec, split: str, path: str | Path) -> int:
    """Write the split's ground truth in the prediction CSV format (a landmark not visible
    keeps its row with ``x``, ``y`` empty, so the ``csv`` adapter reads the file back),
    with each image's orientation (``record.meta['orientation']``, default original: an
    image stored as the mirror of the dataset's frame, such as ISBI 2015 test2 image 322,
    says ``mirrored`` so measurements read it in the patient's frame)."""
    records = spec.split_records(split)
    rows = prediction_rows([r.id for r in records],
                           truth_points(records),
                           spec.landmark_names,
                           spacing=[r.spacing for r in records],
                           orientation=[r.meta.get("orientation", "original") for r in records],
                           hidden_rows=True)
    write_predictions(path, rows)
    return len(records)
