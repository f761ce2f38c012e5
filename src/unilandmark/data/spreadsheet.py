"""Read a CSV table as spreadsheets write it.

- Encoding: UTF-8 with or without a byte-order mark (Excel's "CSV UTF-8"), UTF-16 by its
  byte-order mark (Excel's "Unicode text"); anything else is a fault naming the line.
- Delimiter: sniffed from the header line among comma, semicolon and tab.
- Decimal commas (``1,5``) are accepted where the delimiter is not a comma.
- A row with more or fewer cells than the header is a fault naming its line; so is a
  header that names a column twice.
- Formulas: a text cell that a spreadsheet would run as a formula (``=cmd|...``, starting
  with ``= + - @``, a tab or a carriage return; "CSV injection", OWASP) is written with a
  leading single quote (:func:`formula_safe`, used by every writer of prediction tables)
  and read back without it (:func:`formula_restored`), so ids and names round-trip.

Faults go to a :class:`FaultLog` (file, record, fault), never a traceback.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import InputError
from .faults import FaultLog

DELIMITERS = (",", ";", "\t")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d*,\d+([eE][+-]?\d+)?$")
#: the first characters that make a spreadsheet read a cell as a formula (OWASP)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: a plain number (decimal point or comma), which a spreadsheet reads as a number
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$")


def formula_safe(value):
    """A cell as a CSV writer should write it: text starting with ``= + - @``, a tab or a
    carriage return that is not a plain number gets a leading single quote, so a
    spreadsheet shows it as text instead of running it (``=cmd|' /C calc'!A0``); numbers,
    negative ones included, and any other value are returned as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and \
            not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def formula_restored(text: str) -> str:
    """The inverse of :func:`formula_safe` for a cell read back: ``'=x`` -> ``=x``."""
    if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) and \
            not _PLAIN_NUMBER.match(text[1:]):
        return text[1:]
    return text


@dataclass(frozen=True)
class Table:
    """A parsed table: ``rows[i]`` maps column name -> stripped cell, from line
    ``lines[i]`` of ``path`` (1-based, as an editor counts)."""

    path: Path
    header: list[str]
    rows: list[dict[str, str]]
    lines: list[int]
    delimiter: str = ","

    @property
    def decimal_comma(self) -> bool:
        return self.delimiter != ","

    def number(self, value: str | None) -> float | None:
        """A cell as a float, None when empty; ValueError for text or non-finite."""
        return cell_number(value, self.decimal_comma)


def cell_number(value: str | None, decimal_comma: bool = False) -> float | None:
    """A CSV cell: float, None when empty; raises ValueError for text or non-finite.

    With ``decimal_comma``, ``1,5`` reads as 1.5 (a semicolon- or tab-separated table
    written by a spreadsheet in a locale with decimal commas).
    """
    if value is None or value == "":
        return None
    text = value.strip()
    if decimal_comma and _DECIMAL_COMMA.match(text):
        text = text.replace(",", ".")
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is None or not math.isfinite(number):
        raise InputError(f"not a finite number: {value!r}")
    return number


def decode_table(path: Path, log: FaultLog) -> str | None:
    """The text of a table file, or None (with a fault) when it is not text we can read."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        log.add(path, "", f"cannot read table ({err.strerror})")
        return None
    if data.startswith(codecs.BOM_UTF8):
        encoding, body = "utf-8", data[len(codecs.BOM_UTF8):]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding, body = "utf-16", data
    elif b"\x00" in data[:4096]:
        log.add(path, "", "line 1: the file holds NUL bytes: UTF-16 text without a "
                          "byte-order mark, or not a text table; save it as CSV UTF-8")
        return None
    else:
        encoding, body = "utf-8", data
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as err:
        line = body[:err.start].count(b"\n") + 1
        log.add(path, "", f"line {line}: not {encoding.upper()} text (byte "
                          f"0x{body[err.start]:02x}); save the table as CSV UTF-8")
        return None


def sniff_delimiter(text: str) -> str:
    """The delimiter of the first non-empty line: the most frequent of comma, semicolon
    and tab (comma when none occurs)."""
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    counts = {d: first.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_table(path: str | Path, log: FaultLog, required: int | None = None,
               ) -> Table | None:
    """Parse a table (see the module docstring); None when it cannot be read at all.

    Rows with faults (ragged) are reported and left out; blank lines are skipped. With
    ``required``, a row may stop after its first ``required`` cells (the optional
    columns of a prediction file left empty); it may never have more cells than the
    header.
    """
    path = Path(path)
    text = decode_table(path, log)
    if text is None:
        return None
    delimiter = sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    rows, lines = [], []
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = [c.strip() for c in cells]
                while header and not header[-1]:  # trailing empty columns of a spreadsheet
                    header.pop()
                if not _header_ok(path, header, log):
                    return None
                continue
            line = reader.line_num
            used = max((i + 1 for i, c in enumerate(cells) if c.strip()), default=0)
            least = len(header) if required is None else min(required, len(header))
            if used > len(header) or len(cells) < least:
                count = used if used > len(header) else len(cells)
                first = cells[0].strip()
                log.add(path, "", f"line {line}: {count} cells, the header has {len(header)} "
                                  f"(delimiter {_shown(delimiter)})"
                                  + (f"; first cell {first!r}" if first else ""))
                continue
            rows.append({h: formula_restored(cells[i].strip()) if i < len(cells) else ""
                         for i, h in enumerate(header)})
            lines.append(line)
    except csv.Error as err:
        log.add(path, "", f"line {reader.line_num}: malformed CSV ({err})")
        return None
    if header is None:
        log.add(path, "", "empty table (no header line)")
        return None
    return Table(path, header, rows, lines, delimiter)


def _header_ok(path: Path, header: list[str], log: FaultLog) -> bool:
    ok = True
    for i, name in enumerate(header):
        if not name:
            log.add(path, "", f"line 1: column {i + 1} has no name")
            ok = False
    twice = sorted({h for h in header if h and header.count(h) > 1})
    if twice:
        log.add(path, "", f"line 1: column(s) named twice: {twice}")
        ok = False
    return ok


def _shown(delimiter: str) -> str:
    return {",": "comma", ";": "semicolon", "\t": "tab"}[delimiter]
