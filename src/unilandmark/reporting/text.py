"""The words and numbers of a report's cells, shared by the HTML page and the PDF: a value
with its unit, the norm, the deviation in SD and the meaning (with a warning where a
flagged landmark enters the measurement)."""

from __future__ import annotations

import math

from ..measure.norms import UNIT_SYMBOL, Reading, norm_text
from .content import Row, Section

#: decimals per unit
DIGITS = {"deg": 1, "mm": 1, "px": 1, "ratio": 3, "percent": 1}
#: the note a report ends with
DISCLAIMER = ("Landmarks placed by a model: check them on the image before using any "
              "value. Norms describe their source's population; they vary with age, sex "
              "and ethnicity. Not a diagnosis.")


def value_text(reading: Reading) -> str:
    """``82.1°``, ``64.3 %``, ``0.651``; ``-`` where undefined."""
    if not math.isfinite(reading.value):
        return "-"
    digits = DIGITS.get(reading.unit, 2)
    return f"{reading.value:.{digits}f}{UNIT_SYMBOL.get(reading.unit, ' ' + reading.unit)}"


def deviation_text(reading: Reading) -> str:
    """``+1.2 SD``; '' without a value or a norm's SD."""
    if not math.isfinite(reading.deviation):
        return ""
    return f"{round(reading.deviation, 1) + 0.0:+.1f} SD"  # + 0.0: no "-0.0"


def reading_norm(reading: Reading) -> str:
    """``82 ± 2°`` (or a range); '' without a norm."""
    return norm_text(reading.norm, reading.unit)


def meaning_text(row: Row) -> str:
    """The meaning in words (class ``N``: label, or the interpretation), why a value is
    missing, and a warning where it reads a flagged landmark."""
    r = row.reading
    if row.why:
        return f"not computed: {row.why}"
    parts = []
    if r.klass is not None:
        parts.append(f"class {r.klass}: {r.class_label}" if r.class_label else
                     f"class {r.klass}")
    elif r.meaning:
        parts.append(r.meaning)
    elif r.status is not None:
        parts.append(f"{r.status} the norm")
    elif r.norm is None:
        parts.append("no norm" + (f" ({r.note})" if r.note else ""))
    if row.flagged:
        parts.append(f"uses flagged {', '.join(row.flagged)}: check")
    return "; ".join(parts)


def sources(section: Section) -> list[str]:
    """The distinct norm sources of a section, each with its population."""
    seen: dict[str, None] = {}
    for row in section.rows:
        norm = row.reading.norm
        if norm is not None:
            text = norm.source + (f" ({norm.population})" if norm.population else "")
            seen.setdefault(text, None)
    return list(seen)


def table_rows(section: Section) -> list[tuple[str, str, str, str, str]]:
    """(measurement, value, norm, deviation, meaning) per row of a section."""
    return [(row.reading.name, value_text(row.reading), reading_norm(row.reading),
             deviation_text(row.reading), meaning_text(row)) for row in section.rows]
