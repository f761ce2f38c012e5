"""The prediction table: one schema, one reader, one writer.

The prediction CSV (docs/protocols.md, "Prediction CSV"): ``image,landmark,x,y`` then
optional columns in the order of ``OPTIONAL_COLUMNS``; one row per (image, landmark),
original pixels (x right, y down, the centre of the first pixel at 0). A landmark marked
not visible may keep its row with ``x`` and ``y`` both empty (the review app's table).

Read as spreadsheets write it (a byte-order mark, UTF-16, comma/semicolon/tab, decimal
commas: :mod:`unilandmark.data.spreadsheet`) by :func:`read_prediction_file` (the rows as
text and the file's format) and :func:`read_predictions` (the parsed points); written by
:func:`write_predictions`, atomically, in the file's own format when rewriting one.
Every producer and consumer (predict and the ONNX runner, evaluate, measure, the review
app) goes through here.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_path
from ..core.errors import InputError
from ..data.faults import DatasetError, Fault, FaultLog
from ..data.spreadsheet import cell_number, formula_safe, read_table

PREDICTION_COLUMNS = ("image", "landmark", "x", "y")


OPTIONAL_COLUMNS = ("name", "x_mm", "y_mm", "confidence", "domain", "risk", "flag", "qc",
                    "orientation", "spacing_x", "spacing_y", "spacing_source", "file")

#: every column of the schema, in the order written
COLUMNS = PREDICTION_COLUMNS + OPTIONAL_COLUMNS

#: the columns that hold numbers (written with decimal commas into a table that uses them)
NUMBER_COLUMNS = ("x", "y", "x_mm", "y_mm", "confidence", "risk", "spacing_x", "spacing_y")


QC_VALUES = ("pass", "review", "fail")

_DECIMAL_COMMA = re.compile(r"^[+-]?\d*,\d+([eE][+-]?\d+)?$")
_DECIMAL_POINT = re.compile(r"^[+-]?\d*\.\d+([eE][+-]?\d+)?$")


class PredictionError(DatasetError):
    """A prediction file that cannot be scored; ``faults`` lists every problem, ``hint``
    (if any) what to do about them."""

    def __init__(self, name: str, faults: list[Fault], hint: str = ""):
        super().__init__(name, faults)
        self.hint = hint
        if hint:  # what to do first: a long list of faults would bury it
            first, _, rest = self.args[0].partition("\n")
            self.args = (f"{first}\n{hint}\n{rest}",)


@dataclass(frozen=True)
class TableFormat:
    """How a table file is laid out, so that rewriting it keeps what the spreadsheet that
    saved it expects: ``delimiter``; ``encoding`` (``utf-8``, ``utf-8-sig``: with a
    byte-order mark, ``utf-16-le`` or ``utf-16-be``: with theirs); ``newline``;
    ``decimal_comma`` (numbers written ``1,5``). The default is what unilandmark writes."""

    delimiter: str = ","
    encoding: str = "utf-8"
    newline: str = "\n"
    decimal_comma: bool = False


@dataclass(frozen=True)
class PredictionFile:
    """A prediction CSV as text: ``rows[i]`` maps every header column to its stripped cell
    ('' where the row stops early), from line ``lines[i]``; ``layout`` the file's layout."""

    path: str
    header: tuple[str, ...]
    rows: list[dict[str, str]]
    lines: list[int]
    layout: TableFormat = TableFormat()

    def number(self, value: str | None) -> float | None:
        """A cell as a float, None when empty; ValueError for text or non-finite (decimal
        commas accepted where the delimiter is not a comma)."""
        return cell_number(value, self.layout.delimiter != ",")


@dataclass(frozen=True)
class PredictionTable:
    """Parsed prediction rows: {(image id, landmark 1-based): (x, y)} plus confidence,
    and where the file has them the quality columns: risk, flag (bool) per point and qc
    per image (docs/quality.md). ``hidden``: the (image, landmark) rows with ``x`` and
    ``y`` both empty (marked not visible: no point); ``source``: the file's rows as text,
    for readers of the other columns (None when built in memory)."""

    path: str
    points: dict[tuple[str, int], tuple[float, float]]
    confidence: dict[tuple[str, int], float]
    risk: dict[tuple[str, int], float] = field(default_factory=dict)
    flags: dict[tuple[str, int], bool] = field(default_factory=dict)
    qc: dict[str, str] = field(default_factory=dict)
    hidden: frozenset[tuple[str, int]] = frozenset()
    source: PredictionFile | None = field(default=None, repr=False, compare=False)


def read_prediction_file(path: str | Path) -> PredictionFile:
    """The rows of a prediction CSV as text; :class:`PredictionError` listing every fault
    of the file's structure (unreadable text, ragged rows, missing columns). The cells are
    not checked: :func:`read_predictions` and :func:`parse_point` do that."""
    table, faults = _read_file(path)
    if faults:
        raise PredictionError(table.path, faults)
    return table


def _read_file(path: str | Path) -> tuple[PredictionFile, list[Fault]]:
    """The rows that could be read and the structural faults (ragged rows, left out);
    raises when the file cannot be read at all or lacks a required column."""
    path = Path(path)
    if not path.is_file():
        raise PredictionError(str(path), [Fault(str(path), "", "prediction file missing")])
    log = FaultLog(str(path))
    table = read_table(path, log, required=len(PREDICTION_COLUMNS))
    if table is None:
        raise PredictionError(str(path), log.faults)
    missing = [c for c in PREDICTION_COLUMNS if c not in table.header]
    if missing:
        expected = ",".join(PREDICTION_COLUMNS)
        raise PredictionError(str(path), [*log.faults, Fault(
            str(path), "", f"missing columns {missing}; expected header {expected}")])
    layout = _sniff_format(path, table.delimiter, table.rows)
    return PredictionFile(str(path), tuple(table.header), table.rows, table.lines,
                          layout), list(log.faults)


def _sniff_format(path: Path, delimiter: str, rows: list[dict[str, str]]) -> TableFormat:
    """The layout of a table file that :func:`read_table` has read (its text decodes)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
    except OSError:
        head = b""
    if head.startswith(codecs.BOM_UTF8):
        encoding, text = "utf-8-sig", head[len(codecs.BOM_UTF8):].decode("utf-8", "replace")
    elif head.startswith(codecs.BOM_UTF16_LE):
        encoding, text = "utf-16-le", head[2:].decode("utf-16-le", "replace")
    elif head.startswith(codecs.BOM_UTF16_BE):
        encoding, text = "utf-16-be", head[2:].decode("utf-16-be", "replace")
    else:
        encoding, text = "utf-8", head.decode("utf-8", "replace")
    end = text.find("\n")
    newline = "\r\n" if end > 0 and text[end - 1] == "\r" else "\n"
    decimal_comma = delimiter != "," and any(
        _DECIMAL_COMMA.match(row.get(c, "")) for row in rows for c in NUMBER_COLUMNS)
    return TableFormat(delimiter, encoding, newline, decimal_comma)


def parse_point(table: PredictionFile, row: dict[str, str], line: int,
                ) -> tuple[int, tuple[float, float] | None]:
    """A row's landmark (1-based as written) and point, None when ``x`` and ``y`` are
    both empty (not visible); ValueError ``line N: ...`` for a bad cell."""
    try:
        landmark = int(row["landmark"])
    except ValueError:
        raise InputError(f"line {line}: landmark is not an integer: "
                         f"{row['landmark']!r}") from None
    if row["x"] == "" and row["y"] == "":
        return landmark, None
    if (row["x"] == "") != (row["y"] == ""):
        raise InputError(f"line {line}: landmark {landmark}: give both x and y, or neither "
                         "(not visible)")
    try:
        x, y = table.number(row["x"]), table.number(row["y"])
    except ValueError:
        raise InputError(f"line {line}: landmark {landmark}: x, y not finite numbers: "
                         f"{row['x']!r}, {row['y']!r}") from None
    return landmark, (x, y)


def read_predictions(path: str | Path) -> PredictionTable:
    """Parse a prediction CSV; every malformed row is reported together.

    Read as spreadsheets write it (BOM, UTF-16, comma/semicolon/tab, decimal commas with
    a semicolon), like the dataset tables. A row with ``x`` and ``y`` both empty is a
    landmark marked not visible: no point (``hidden``).
    """
    table, faults = _read_file(path)
    points, confidence, hidden = {}, {}, set()
    quality: dict[str, dict] = {"risk": {}, "flags": {}, "qc": {}}
    for row, line_no in zip(table.rows, table.lines, strict=True):
        rid = row["image"]
        try:
            landmark, xy = parse_point(table, row, line_no)
        except ValueError as err:
            faults.append(Fault(table.path, rid, str(err)))
            continue
        key = (rid, landmark)
        if key in points or key in hidden:
            faults.append(Fault(table.path, rid, f"line {line_no}: landmark {landmark} "
                                                 "given twice"))
            continue
        if xy is None:
            hidden.add(key)
            continue
        points[key] = xy
        if row.get("confidence"):
            try:
                confidence[key] = table.number(row["confidence"])
            except ValueError:
                faults.append(Fault(table.path, rid, f"line {line_no}: confidence is not a "
                                                     f"number: {row['confidence']!r}"))
        faults += _quality_cells(row, table, key, quality, f"line {line_no}", table.path)
    if faults:
        raise PredictionError(table.path, faults)
    return PredictionTable(table.path, points, confidence, **quality, hidden=frozenset(hidden),
                           source=table)


def _quality_cells(row: dict, table, key: tuple[str, int], out: dict, where: str,
                   path: str) -> list[Fault]:
    """Parse a row's risk, flag and qc cells (empty cells are absent) into ``out``."""
    rid, faults = key[0], []
    if row.get("risk"):
        try:
            value = table.number(row["risk"])
            if value is None or not 0 <= value <= 1:
                raise ValueError
            out["risk"][key] = value
        except ValueError:
            faults.append(Fault(path, rid, f"{where}: risk is not a number in 0..1: "
                                           f"{row['risk']!r}"))
    if row.get("flag"):
        if row["flag"].strip() not in ("0", "1"):
            faults.append(Fault(path, rid, f"{where}: flag must be 0 or 1, got {row['flag']!r}"))
        else:
            out["flags"][key] = row["flag"].strip() == "1"
    if row.get("qc"):
        qc = row["qc"].strip()
        if qc not in QC_VALUES:
            faults.append(Fault(path, rid, f"{where}: qc must be one of {', '.join(QC_VALUES)}"
                                           f", got {row['qc']!r}"))
        elif out["qc"].setdefault(rid, qc) != qc:
            faults.append(Fault(path, rid, f"{where}: qc {qc!r} differs from the image's "
                                           f"earlier rows ({out['qc'][rid]!r})"))
    return faults


def prediction_rows(ids, points, names, confidence=None, spacing=None, domain=None,
                    orientation=None, spacing_source=None, flags=None, qc=None, files=None,
                    risk=None, hidden_rows: bool = False):
    """Rows of the prediction CSV for (N, K, 2) points in original pixels.

    Optional per-image lists: confidence (N, K), spacing (N) (sx, sy) or None,
    orientation (N), spacing_source (N), flags (N, K) bool, qc (N), files (N), risk (N)
    of (K,) or None. Coordinates are written with every digit their type holds (float32
    points as the shortest text that reads back as the same float32). A NaN point gets
    no row, or with ``hidden_rows`` a row with ``x``, ``y`` empty (marked not visible,
    as ground truth is exported: the ``csv`` adapter wants a row for every landmark).
    """
    rows = []
    for n, rid in enumerate(ids):
        sp = spacing[n] if spacing is not None else None
        for k, name in enumerate(names):
            x, y = points[n][k]
            finite = bool(np.isfinite(x) and np.isfinite(y))
            if not finite and not hidden_rows:
                continue
            row = {"image": rid, "landmark": k + 1, "x": _num(x) if finite else "",
                   "y": _num(y) if finite else "", "name": name}
            if sp is not None and finite:
                row["x_mm"], row["y_mm"] = mm_text(x, sp[0]), mm_text(y, sp[1])
            if confidence is not None:
                row["confidence"] = f"{float(confidence[n][k]):.4f}"
            if domain is not None:
                row["domain"] = domain
            if risk is not None and risk[n] is not None:
                row["risk"] = f"{float(risk[n][k]):.4f}"
            if flags is not None:
                row["flag"] = int(bool(flags[n][k]))
            if qc is not None:
                row["qc"] = qc[n]
            if orientation is not None:
                row["orientation"] = orientation[n]
            if spacing_source is not None:
                row["spacing_x"] = "" if sp is None else _num(sp[0])
                row["spacing_y"] = "" if sp is None else _num(sp[1])
                row["spacing_source"] = spacing_source[n] or ""
            if files is not None:
                row["file"] = files[n] or ""
            rows.append(row)
    return rows


def _num(value: float) -> str:
    """Shortest text that reads back as exactly the same value: a float32 as a float32
    (``812.3``, not its float64 expansion), anything else as a float64 (repr rules)."""
    if isinstance(value, np.float32):
        return repr(float(str(value)))
    return repr(float(value))


def mm_text(px: float, mm_per_px: float) -> str:
    """A coordinate in millimetres as the shortest text of its float32 value (``84.6``, not
    ``84.60000000000001``): a derived column, written to float32 precision (about 1e-5 mm
    at 300 mm) whatever the type of the pixels it comes from."""
    return _num(np.float32(float(px) * float(mm_per_px)))


def write_predictions(path: str | Path, rows: list[dict], header=(),
                      layout: TableFormat | None = None) -> None:
    """Write prediction rows atomically with the standard column order.

    Columns: ``image,landmark,x,y``, then each optional column that a row has (or that
    ``header`` names) in the order of ``OPTIONAL_COLUMNS``, then the other columns of
    ``header`` in its order (a user's own columns, kept when a table is rewritten); a row
    without a column gets an empty cell; a text cell a spreadsheet would run as a formula
    (``=cmd|...``) is written with a leading single quote (``spreadsheet.formula_safe``).
    ``layout``: the layout to keep (that of the file
    being rewritten, :attr:`PredictionFile.layout`); by default UTF-8 without a
    byte-order mark, commas, ``\\n`` line ends, decimal points.
    """
    layout = layout or TableFormat()
    present = set(header).union(*(r.keys() for r in rows))
    columns = [*PREDICTION_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in present)]
    columns += [c for c in header if c not in columns]
    rows = [{k: formula_safe(v) for k, v in r.items()} for r in rows]
    if layout.decimal_comma:
        rows = [_with_decimal_commas(r) for r in rows]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", restval="",
                            delimiter=layout.delimiter, lineterminator=layout.newline)
    writer.writeheader()
    writer.writerows(rows)
    data = buf.getvalue().encode(layout.encoding)
    if layout.encoding == "utf-16-le":
        data = codecs.BOM_UTF16_LE + data
    elif layout.encoding == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _with_decimal_commas(row: dict) -> dict:
    """``row`` with its numbers written ``1,5`` (for a table in a decimal-comma locale)."""
    out = dict(row)
    for c in NUMBER_COLUMNS:
        text = str(out.get(c, ""))
        if _DECIMAL_POINT.match(text):
            out[c] = text.replace(".", ",")
    return out
