"""Measurements in ``unilandmark evaluate``: predictions of a split against its ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.types import DatasetSpec, Record
from .builtin import builtin_specs, spec_for, unknown_landmarks
from .files import read_landmark_images
from .scoring import evaluate_records
from .spec import MeasurementSpec


def spec_for_dataset(dataset: DatasetSpec, spec: MeasurementSpec | None = None,
                     ) -> MeasurementSpec:
    """``spec`` if given, else the built-in spec of the dataset's domain whose landmark
    names are all among the dataset's (else any built-in spec that fits by names); a
    given spec that reads a landmark the dataset does not have is refused, naming it."""
    if spec is not None:
        unknown = unknown_landmarks(spec, dataset.landmark_names)
        if unknown:
            raise InputError(f"{dataset.name}: {unknown}")
        return spec
    found = spec_for(dataset.landmark_names, dataset.domain) or \
        spec_for(dataset.landmark_names)
    if found is None:
        raise InputError(f"{dataset.name}: no built-in measurement spec fits its landmarks "
                         f"(built-in: {', '.join(builtin_specs())}); give a spec file")
    return found


def measurement_report(predictions: str | Path, dataset: DatasetSpec, records: list[Record],
                       pred: np.ndarray, spec: MeasurementSpec | None = None,
                       truncate: bool = False) -> dict:
    """The ``measurements`` section of an evaluation report: ``pred`` (N, K, 2) are the
    predictions of ``records`` (as :func:`unilandmark.evaluate.evaluate` returns them);
    the prediction CSV's ``orientation`` column says which were mirrored."""
    chosen = spec_for_dataset(dataset, spec)
    mirrored_ids = {img.image for img in read_landmark_images(predictions) if img.mirrored}
    mirrored = np.array([r.id in mirrored_ids for r in records], dtype=bool)
    return evaluate_records(chosen, records, pred, dataset.landmark_names, mirrored, truncate)
