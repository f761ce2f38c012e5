"""JSON text that every JSON reader accepts: NaN and infinities become ``null`` (Python's
json module would write the non-standard tokens ``NaN`` and ``Infinity``), numpy scalars
and arrays become plain numbers and lists."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """``value`` with numpy types made plain and every non-finite float made None."""
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_text(value: Any, indent: int | None = 2) -> str:
    """Standard JSON of ``value`` (see :func:`plain`), ending in a newline."""
    return json.dumps(plain(value), indent=indent, allow_nan=False) + "\n"
