"""Scoring landmarks in volumes: a volume prediction table (``predict`` with a volume model:
voxel columns ``x, y, z`` with ``frame`` ``voxel``, or world LPS millimetres ``x_mm, y_mm,
z_mm``) against a volume dataset's records, errors in millimetres in 3-D (voxel errors times
each volume's spacing; the direction is orthonormal, so they are world distances)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.metrics import summarise
from ..core.types import DatasetSpec, Record
from ..data.faults import Fault, FaultLog
from ..data.spreadsheet import read_table
from ..predictions.table import PredictionError
from ..quality.presence import presence_counts
from .protocols import get_protocol


def read_volume_predictions(path: str | Path, spec: DatasetSpec, records: list[Record]
                            ) -> np.ndarray:
    """(N, K, 3) predicted voxel points of ``records`` (NaN where a landmark has no row or
    empty cells); every fault of the file is reported together."""
    path = Path(path)
    log = FaultLog(str(path))
    table = read_table(path, log, required=4)
    log.raise_if_any()
    if table is None or not {"image", "landmark"} <= set(table.header):
        raise InputError(f"{path}: expected a volume prediction table with columns image, "
                         "landmark, x, y, z (frame voxel) or x_mm, y_mm, z_mm")
    voxel = {"x", "y", "z"} <= set(table.header)
    world = {"x_mm", "y_mm", "z_mm"} <= set(table.header)
    if not (voxel or world):
        raise InputError(f"{path}: no x, y, z (voxel) or x_mm, y_mm, z_mm (world) columns")
    index = {r.id: i for i, r in enumerate(records)}
    k = spec.num_landmarks
    pred = np.full((len(records), k, 3), np.nan)
    faults: list[Fault] = []
    seen: set[str] = set()
    for row, line in zip(table.rows, table.lines, strict=True):
        rid = row.get("image", "")
        if rid not in index:
            continue  # another split's volume
        seen.add(rid)
        try:
            landmark = int(row["landmark"])
            if not 1 <= landmark <= k:
                raise ValueError
        except (KeyError, ValueError):
            faults.append(Fault(str(path), rid, f"line {line}: landmark "
                                f"{row.get('landmark')!r} is not 1..{k}"))
            continue
        use_voxels = voxel and row.get("frame", "voxel") in ("voxel", "")
        cells = [row.get(a, "") for a in ("xyz" if use_voxels else ("x_mm", "y_mm", "z_mm"))]
        if all(c == "" for c in cells):
            continue  # absent
        try:
            point = np.array([float(c) for c in cells])
            if not all(math.isfinite(v) for v in point):
                raise ValueError
        except ValueError:
            faults.append(Fault(str(path), rid, f"line {line}: coordinates {cells} are not "
                                "three finite numbers"))
            continue
        record = records[index[rid]]
        if not use_voxels:
            point = _world_to_voxels(record, point)
        pred[index[rid], landmark - 1] = point
    missing = [r.id for r in records if r.id not in seen]
    for rid in missing:
        faults.append(Fault(str(path), rid, "no prediction for this volume"))
    if faults:
        raise PredictionError(str(path), faults)
    return pred


def _world_to_voxels(record: Record, world_lps: np.ndarray) -> np.ndarray:
    from ..core.world import VolumeGeometry

    meta = record.meta
    geometry = VolumeGeometry(meta["size"], meta["spacing"], meta["origin"],
                              meta["direction"])
    return geometry.world_to_index(world_lps[None])[0]


def evaluate_volumes(path: str | Path, spec: DatasetSpec, split: str,
                     predicted_only: bool = False) -> tuple[dict, np.ndarray, list[Record],
                                                             np.ndarray]:
    """Score a volume prediction table on ``split`` of a volume dataset: (report, errors
    (N, K) mm, records, pred (N, K, 3) voxels), the report with the fields of the 2-D
    report (mre, sd, median, sdr, per_landmark, per_image)."""
    records = spec.split_records(split)
    if not records:
        raise InputError(f"{spec.name}: split {split!r} has no records")
    n_split = len(records)
    if predicted_only:
        log = FaultLog(str(path))
        table = read_table(Path(path), log, required=4)
        log.raise_if_any()
        named = {row.get("image") for row in table.rows} if table else set()
        records = [r for r in records if r.id in named]
        if not records:
            raise InputError(f"{path}: no volume of split {split!r} of {spec.name} is "
                             "predicted (image ids must match the dataset's)")
    pred = read_volume_predictions(path, spec, records)
    protocol = get_protocol(None, spec)
    errors = protocol.errors(spec, records, pred)
    summary = summarise(errors, protocol.resolved_thresholds(spec), spec.landmark_names)
    report = {
        "protocol": protocol.name, "protocol_description": "voxel errors x spacing: mm in 3-D",
        "dataset": spec.name, "split": split, "annotator": spec.info.get("rater"),
        "predictions": str(path), "unit": protocol.resolved_unit(spec),
        "n_images": len(records), "n_points": summary.pop("n_points"), **summary,
        "missing": 0, "excluded": int(sum((~r.visible).sum() for r in records)),
        **({"subset": {"n_images": len(records), "n_images_in_split": n_split,
                       "note": "only the volumes with predictions"}} if predicted_only else {}),
        "per_image": [{"image": r.id, "mre": float(np.nanmean(e))}
                      for r, e in zip(records, errors, strict=True)],
        # absent landmarks: annotated absent vs predicted absent (empty coordinates)
        "presence": presence_counts(np.stack([r.visible for r in records]),
                                    np.isfinite(pred).all(-1)),
    }
    return report, errors, records, pred
