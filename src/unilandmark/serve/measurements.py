"""Measurements (angles, distances) of the current points, where the domain defines them.

The one place the review app touches :mod:`unilandmark.measure`; without that module, or
for landmark names no measurement spec covers, there are no measurements and the page
hides its panel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..core.types import Spacing


def measurements_for(names: Sequence[str], points: np.ndarray, spacing: Spacing | None,
                     mirrored: bool = False) -> list[dict] | None:
    """``[{name, value, unit, class, label}]`` for ``points`` (K, 2) original pixels (NaN:
    not visible), or None when no measurement spec applies to these landmarks.

    ``value`` is None where a measurement is undefined (a landmark it needs is missing);
    ``unit`` is ``deg``, ``mm``, ``px`` or ``ratio``; ``class``/``label`` are the spec's
    class of the value, where it defines classes.
    """
    try:
        from ..measure import class_labels, classify, measure, spec_for
    except ImportError:
        return None
    spec = spec_for(tuple(names))
    if spec is None or spec.dimensions() not in (None, np.shape(points)[-1]):
        return None  # e.g. a 3-D spec (world mm) for the app's 2-D points
    values = measure(spec, np.asarray(points, dtype=np.float64), tuple(names),
                     spacing=spacing, mirrored=mirrored)
    classes = classify(spec, values)
    labels = class_labels(spec)
    out = []
    for name, value in values.items():
        value = float(value)
        number = classes.get(name)
        out.append({"name": name, "value": value if math.isfinite(value) else None,
                    "unit": "px" if name.endswith("_px") else spec.unit(name),
                    "class": number, "label": labels.get(name, {}).get(number)})
    return out
