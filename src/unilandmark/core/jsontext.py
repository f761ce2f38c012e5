"""JSON text that every JSON reader accepts: NaN and infinities become ``null`` (Python's
json module would write the non-standard tokens ``NaN`` and ``Infinity``), numpy scalars
and arrays become plain numbers and lists; :func:`read_json` reads JSON from a file or a
model file with a nesting limit."""

from __future__ import annotations

import json
import math
import re
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


#: a JSON string token (escapes included), dropped before brackets are counted
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def json_depth(text: str) -> int:
    """How deeply the arrays and objects of JSON ``text`` nest (0 for a scalar), counted
    without parsing (brackets inside strings do not count)."""
    codes = np.frombuffer(_STRING.sub('""', text).encode("utf-8"), dtype=np.uint8)
    steps = np.zeros(codes.shape, dtype=np.int64)
    steps[(codes == ord("[")) | (codes == ord("{"))] = 1
    steps[(codes == ord("]")) | (codes == ord("}"))] = -1
    return int(np.cumsum(steps).max(initial=0))


def read_json(text: str | bytes, where: str, max_depth: int | None = None) -> Any:
    """Parse JSON ``text`` read from ``where`` (a file, a metadata key), refusing with one
    sentence naming ``where`` text that is not JSON or nests deeper than ``max_depth``
    (default :data:`~unilandmark.core.limits.MAX_JSON_DEPTH`) before parsing it, so a
    crafted file never exhausts the parser's recursion."""
    from .errors import InputError
    from .limits import MAX_JSON_DEPTH

    limit = MAX_JSON_DEPTH if max_depth is None else max_depth
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise InputError(f"{where}: not JSON text (not UTF-8: {err.reason} at byte "
                             f"{err.start})") from None
    depth = json_depth(text)
    if depth > limit:
        raise InputError(f"{where}: JSON nested {depth} levels deep, more than the limit of "
                         f"{limit}; refused (a damaged or crafted file)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{where}: not valid JSON ({err.msg} at line {err.lineno} column "
                         f"{err.colno})") from None
