"""Measurements read against their norms: deviation in SD, below/within/above, and the
meaning in words (a class label, or the spec's interpretation of the norm band).

A deviation is ``(value - mean) / sd`` in the measurement's unit (degrees, mm, ratio or
percent); it is NaN where the value is undefined or the norm gives no mean and SD (a
range only). Within the norm: the norm's range where it gives one, else mean +- 1 SD
(:class:`~.spec.Norm`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .classes import class_labels, classify
from .spec import Measurement, MeasurementSpec, Norm

#: how a unit is written after a value
UNIT_SYMBOL = {"deg": "°", "mm": " mm", "px": " px", "ratio": "", "percent": " %"}


def deviation_sd(norm: Norm | None, value: float) -> float:
    """``(value - mean) / sd``; NaN without a value, a norm, or a norm's mean and SD."""
    if norm is None or not norm.has_sd or value is None or not math.isfinite(value):
        return float("nan")
    return (float(value) - norm.mean) / norm.sd


def deviations_batch(spec: MeasurementSpec, values: Mapping[str, np.ndarray],
                     ) -> dict[str, np.ndarray]:
    """Vectorised :func:`deviation_sd`: {name: (N,) float64} for ``spec.deviations()``."""
    out = {}
    for name in spec.deviations():
        norm = spec.measurement(name).norm
        out[name] = (np.asarray(values[name], dtype=np.float64) - norm.mean) / norm.sd
    return out


def norm_status(norm: Norm | None, value: float) -> str | None:
    """``below``, ``within`` or ``above`` the norm (see the module doc); None without a
    value or a norm."""
    if norm is None or value is None or not math.isfinite(value):
        return None
    low, high = norm.bounds
    if value < low:
        return "below"
    return "above" if value > high else "within"


def norm_text(norm: Norm | None, unit: str) -> str:
    """``82 ± 2°``, ``62-65 %`` or ``81.4 ± 3.79° (range 77.6-85.2°)``; '' without a norm."""
    if norm is None:
        return ""
    sym = UNIT_SYMBOL.get(unit, f" {unit}")
    parts = []
    if norm.has_sd:
        parts.append(f"{_g(norm.mean)} ± {_g(norm.sd)}{sym}")
    if norm.min is not None:
        span = f"{_g(norm.min)} to {_g(norm.max)}{sym}"
        parts.append(f"(range {span})" if parts else span)
    return " ".join(parts)


def _g(x: float) -> str:
    return format(x, "g") if abs(x) >= 1e-3 or x == 0 else format(x, ".3g")


@dataclass(frozen=True)
class Reading:
    """One measurement of one image, read against its norm and classes.

    value in ``unit`` (NaN where undefined); ``klass`` the class number (None: no class or
    undefined) and ``class_label`` its words; ``deviation`` in SD (NaN: see
    :func:`deviation_sd`); ``status`` below/within/above the norm (None); ``meaning`` in
    words: the class label where the measurement has classes, else the interpretation of
    the status ('' where there is none).
    """

    name: str
    description: str
    unit: str
    value: float
    norm: Norm | None
    klass: int | None
    class_label: str
    deviation: float
    status: str | None
    meaning: str
    note: str


def meaning(m: Measurement, status: str | None, label: str) -> str:
    """The words for a value: its class label where the measurement has classes, else the
    spec's interpretation of ``status`` ('' where there is none)."""
    if m.classes:
        return label
    if status is None or m.interpretation is None:
        return ""
    return getattr(m.interpretation, status) or ""


def readings(spec: MeasurementSpec, values: Mapping[str, float]) -> list[Reading]:
    """Every measurement of ``spec`` for one image's ``values`` (from :func:`~.compute.
    measure`), in the spec's order."""
    classes = classify(spec, values)
    labels = class_labels(spec)
    out = []
    for m in spec.measurements:
        value = float(values.get(m.name, float("nan")))
        klass = classes.get(m.name)
        label = labels.get(m.name, {}).get(klass, "") if klass is not None else ""
        status = norm_status(m.norm, value)
        out.append(Reading(m.name, m.description or "", spec.unit(m.name), value, m.norm,
                           klass, label, deviation_sd(m.norm, value), status,
                           meaning(m, status, label), m.note or ""))
    return out
