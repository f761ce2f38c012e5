"""Measurements (angles, distances) of the current points, where the domain defines them.

The one place the review app touches :mod:`unilandmark.measure`; without that module, or
for landmark names no measurement spec covers, there are no measurements and the page
hides its panel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..types import Spacing


def measurements_for(names: Sequence[str], points: np.ndarray, spacing: Spacing | None,
                     mirrored: bool = False) -> list[dict] | None:
    """``[{name, value, unit, class, label}]`` for ``points`` (K, 2) original pixels (NaN:
    not visible), or None when no measurement spec applies to these landmarks.

    ``value`` is None where a measurement is undefined (a landmark it needs is missing).
    """
    try:
        from ..measure import classify, measure, spec_for
    except ImportError:
        return None
    spec = spec_for(tuple(names))
    if spec is None:
        return None
    values = measure(spec, np.asarray(points, dtype=np.float64), tuple(names),
                     spacing=spacing, mirrored=mirrored)
    classes = classify(spec, values)
    out = []
    for name, value in values.items():
        value = float(value)
        out.append({"name": name, "value": value if math.isfinite(value) else None,
                    "unit": _unit(spec, name), "class": classes.get(name),
                    "label": _class_label(spec, name, classes.get(name))})
    return out


def _measurement(spec, name):
    for m in getattr(spec, "measurements", ()):
        if m.name == name:
            return m
    return None


def _unit(spec, name: str) -> str | None:
    if name.endswith("_px"):
        return "px"
    m = _measurement(spec, name)
    return getattr(m, "unit", None) if m is not None else None


def _class_label(spec, name: str, number: int | None) -> str | None:
    m = _measurement(spec, name)
    if m is None or number is None:
        return None
    for rule in getattr(m, "classes", ()):
        if getattr(rule, "class_", None) == number:
            return getattr(rule, "label", None)
    return None
