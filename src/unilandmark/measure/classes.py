"""Classification of measurement values by the spec's class rules (first match wins)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .spec import MeasurementSpec


def classify(spec: MeasurementSpec, values: Mapping[str, float]) -> dict[str, int | None]:
    """{measurement name: class} for every measurement of ``spec`` that defines classes.

    None where the value is missing or NaN, or where no rule matches it.
    """
    out: dict[str, int | None] = {}
    for m in spec.measurements:
        if not m.classes:
            continue
        value = values.get(m.name)
        out[m.name] = None
        if value is None or not math.isfinite(float(value)):
            continue
        for rule in m.classes:
            if rule.matches(float(value)):
                out[m.name] = rule.class_
                break
    return out


def classify_batch(spec: MeasurementSpec, values: Mapping[str, np.ndarray],
                   ) -> dict[str, np.ndarray]:
    """Vectorised :func:`classify`: {name: (N,) int64}, 0 where there is no class."""
    out = {}
    for m in spec.measurements:
        if not m.classes:
            continue
        v = np.asarray(values[m.name], dtype=np.float64)
        cls = np.zeros(v.shape, dtype=np.int64)
        open_ = np.isfinite(v)
        for rule in m.classes:
            hit = open_.copy()
            if rule.min is not None:
                hit &= v >= rule.min
            if rule.max is not None:
                hit &= v <= rule.max
            if rule.above is not None:
                hit &= v > rule.above
            if rule.below is not None:
                hit &= v < rule.below
            if rule.equals is not None:
                hit &= v == rule.equals
            cls[hit] = rule.class_
            open_ &= ~hit
        out[m.name] = cls
    return out


def class_labels(spec: MeasurementSpec) -> dict[str, dict[int, str]]:
    """{measurement: {class: label}} for rules that carry a label (first label wins)."""
    out: dict[str, dict[int, str]] = {}
    for m in spec.measurements:
        labels: dict[int, str] = {}
        for rule in m.classes:
            if rule.label:
                labels.setdefault(rule.class_, rule.label)
        if labels:
            out[m.name] = labels
    return out
