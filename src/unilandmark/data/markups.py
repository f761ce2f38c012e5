"""3D Slicer markups files: ``.fcsv`` (Markups fiducial CSV) and ``.mrk.json``.

Points come back in world millimetres in ONE frame, LPS (as ITK and SimpleITK), whatever
frame the file declares: a file in RAS (Slicer's own world frame) is converted at this
edge, x and y change sign. Points are ``(K, 3)`` float64; a landmark that is not placed
("undefined" in a ``.mrk.json``) is NaN.

What was verified, and against what
-----------------------------------
- ``.fcsv`` as read by Slicer's ``vtkMRMLMarkupsFiducialStorageNode.cxx`` (Slicer/Slicer,
  two versions read): header lines ``# Markups fiducial file version = V``,
  ``# CoordinateSystem = C`` and ``# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,
  desc,associatedNodeID``; one point per line, fields in that fixed order; a field holding
  a comma or a quote is quoted with ``"`` and inner quotes doubled. Older Slicer wrote C as
  a number (0 = RAS, 1 = LPS, 2 = IJK), newer Slicer as a name (``RAS``, ``LPS``). A file
  without the line is read as RAS: the default of ``vtkMRMLMarkupsStorageNode`` in the
  version read (Slicer's own world frame; not checked against every later version). The
  version is only tested for presence by Slicer; a file without it is read by Slicer as
  the Slicer 3 layout, which this reader refuses rather than guesses.
- The real files in ``../shared/data/afids_templates`` (4 consensus files, 40 rater
  files): versions 4.6 and 4.10, ``CoordinateSystem = 0`` (RAS) in all of them, the
  standard columns line, 14 fields per point, 32 points per file. Some files end lines in
  CRLF, some lack the final newline, some labels carry trailing spaces; all read. In the
  consensus files the ``label`` column holds the numbers 1..32 and ``desc`` the names
  ("AC", "PC", ...); rater files hold numbers (``1`` or ``01``), abbreviations (``RSLMS``)
  or names there, so callers match rater points by order, not by label.
- ``.mrk.json`` as read and written by ``vtkMRMLMarkupsJsonStorageNode.cxx`` and
  ``markups-schema-v1.0.3.json`` (Slicer/Slicer): top level ``{"@schema", "markups": [...]}``;
  a point list is a markup of ``"type": "Fiducial"`` with ``"coordinateSystem"`` ``"LPS"``
  or ``"RAS"`` (schema default LPS) and ``"controlPoints"``, each with ``id``, ``label``,
  ``description``, ``position`` ``[x, y, z]`` and ``positionStatus`` (``defined``,
  ``undefined`` or ``preview``; a point with a position and no status is defined, one
  without a position is undefined). Slicer 5 accepts any ``markups-schema-v1.x.y.json``
  schema id and writes the v1.0.3 one. Slicer refuses a file without ``@schema``; this
  reader accepts one (the structure is checked anyway) but refuses any other schema id.

Reading rules: only ``defined`` points count as placed (``preview`` is a point being
placed, not a placed one); labels and descriptions are stripped of surrounding blanks;
``coordinateUnits`` ``um`` is converted to mm.

Refused (every fault of a file reported together, each with its line or control point):
an unknown coordinate system (IJK included: it needs the volume), a data line whose
x, y, z are not finite numbers or that has more fields than the columns line, a file
with no version and no columns line, JSON that does not parse, a JSON file without a
``markups`` list or without exactly one ``Fiducial`` markup, a defined control point
without a 3-number position, an unknown ``positionStatus``.

Writing: ``.mrk.json`` as Slicer 5 writes it (LPS, schema v1.0.3, ids ``"1".."K"``, an
identity orientation, ``positionStatus``); an absent point is written ``undefined``
without a ``position`` key (Slicer 5 itself writes ``"position": ""``; leaving the key out
is what the schema allows and what every Slicer version reads as undefined). ``.fcsv`` in
LPS with ``# CoordinateSystem = LPS``; the format has no "not placed" state, so absent
points are refused there (write a ``.mrk.json``). Writes are atomic.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_write_text
from ..core.errors import InputError
from .faults import DatasetError, Fault, FaultLog

#: the schema id Slicer 5 writes (vtkMRMLMarkupsJsonStorageNode.cxx, MARKUPS_SCHEMA)
MARKUPS_SCHEMA = ("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/"
                  "Markups/Resources/Schema/markups-schema-v1.0.3.json#")
#: the schema ids Slicer 5 accepts (ACCEPTED_MARKUPS_SCHEMA_REGEX, compared lower-case)
_ACCEPTED_SCHEMA = re.compile(r".*markups-schema-v1\.[0-9]+\.[0-9]+\.json#*$")
#: Slicer's fixed .fcsv field order (the columns line it writes)
FCSV_COLUMNS = ("id", "x", "y", "z", "ow", "ox", "oy", "oz", "vis", "sel", "lock", "label",
                "desc", "associatedNodeID")
#: the .fcsv version line this module writes (Slicer tests only that the line exists)
FCSV_VERSION = "4.11"
_FCSV_FRAMES = {"0": "RAS", "RAS": "RAS", "1": "LPS", "LPS": "LPS"}
_JSON_FRAMES = {"RAS": "RAS", "LPS": "LPS"}
_RAS_TO_LPS = np.array([-1.0, -1.0, 1.0])
_SUFFIXES = (".fcsv", ".mrk.json", ".json")


class LandmarkFileError(DatasetError):
    """The faults of one landmark file, all of them (``faults``). With a single fault the
    message is that one sentence, ``file: line N: fault``; with several, one line each."""

    def __init__(self, name: str, faults: list[Fault]):
        super().__init__(name, faults)
        if len(self.faults) == 1:
            self.args = (str(self.faults[0]),)


def raise_faults(log: FaultLog) -> None:
    """Raise :class:`LandmarkFileError` for the faults of ``log``, if any."""
    if log.faults:
        raise LandmarkFileError(log.name, log.faults)


@dataclass(frozen=True)
class Markups:
    """The points of one markups file.

    labels : (K,) the ``label`` of each point, stripped (may be empty strings).
    points_lps : (K, 3) float64 world millimetres, LPS; NaN rows for points not placed.
    descriptions : (K,) the ``desc`` / ``description`` of each point, stripped.
    source_frame : the frame the file declared, ``RAS`` or ``LPS`` (points are LPS anyway).
    path : the file read.
    """

    labels: tuple[str, ...]
    points_lps: np.ndarray
    descriptions: tuple[str, ...]
    source_frame: str = "LPS"
    path: str = ""

    @property
    def visible(self) -> np.ndarray:
        """(K,) bool: True where the point is placed (finite)."""
        return np.isfinite(self.points_lps).all(axis=1)

    @property
    def points_ras(self) -> np.ndarray:
        """(K, 3) the same points in RAS (x and y negated)."""
        return self.points_lps * _RAS_TO_LPS

    def __len__(self) -> int:
        return len(self.labels)


def ras_to_lps(points) -> np.ndarray:
    """``(..., 3)`` RAS millimetres to LPS (x and y change sign; the map is its own
    inverse, so it also takes LPS to RAS). NaN stays NaN."""
    return np.asarray(points, dtype=np.float64) * _RAS_TO_LPS


def markups_format(path: str | Path) -> str:
    """``fcsv`` or ``mrk.json`` by the file name; InputError for any other suffix."""
    name = Path(path).name.lower()
    if name.endswith(".fcsv"):
        return "fcsv"
    if name.endswith(".json"):
        return "mrk.json"
    raise InputError(f"{path}: not a Slicer markups file name (expected one of "
                     f"{', '.join(_SUFFIXES)})")


def read_markups(path: str | Path) -> Markups:
    """Read a ``.fcsv`` or ``.mrk.json`` file (chosen by suffix) into LPS world points.

    Raises :class:`LandmarkFileError` (an InputError) listing every fault of the file,
    each with its line or control point; see the module docstring for what is refused.
    """
    kind = markups_format(path)
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot read markups file ({err.strerror or err})") from err
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise InputError(f"{path}: line {line}: not UTF-8 text (byte "
                         f"0x{data[err.start]:02x})") from err
    return _parse_fcsv(path, text) if kind == "fcsv" else _parse_mrk_json(path, text)


def write_markups(path: str | Path, labels: Sequence[str], points_lps,
                  descriptions: Sequence[str] | None = None) -> Path:
    """Write ``points_lps`` (K, 3) world millimetres, LPS, with their labels, as a
    ``.mrk.json`` or ``.fcsv`` file chosen by the suffix (module docstring); atomic.

    NaN rows are points not placed: ``undefined`` in a ``.mrk.json``, refused in a
    ``.fcsv``. Returns the path written.
    """
    kind = markups_format(path)
    path = Path(path)
    labels, points, descriptions = _checked_points(path, labels, points_lps, descriptions)
    if kind == "fcsv":
        text = _fcsv_text(path, labels, points, descriptions)
    else:
        text = _mrk_json_text(labels, points, descriptions)
    atomic_write_text(path, text)
    return path


# --------------------------------------------------------------------------- .fcsv


def _parse_fcsv(path: Path, text: str) -> Markups:
    log = FaultLog(str(path))
    frame, version, columns = "RAS", None, None
    rows: list[tuple[int, list[str]]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line.startswith("#"):
            key, sep, value = line[1:].partition("=")
            key, value = key.strip(), value.strip()
            if not sep:
                continue  # a plain comment
            if key == "Markups fiducial file version":
                version = value
            elif key == "CoordinateSystem":
                if value.upper() in _FCSV_FRAMES:
                    frame = _FCSV_FRAMES[value.upper()]
                else:
                    why = (" (IJK: voxel indices, which need the volume; export the markups "
                           "in RAS or LPS)" if value.upper() in ("2", "IJK") else "")
                    log.add(path, "", f"line {line_no}: unknown coordinate system {value!r}"
                                      f"{why}; expected 0 or RAS, 1 or LPS")
                    frame = None
            elif key == "columns":
                columns = [c.strip() for c in value.split(",")]
            continue
        rows.append((line_no, next(csv.reader([line]))))
    if version is None and columns is None:
        log.add(path, "", "no '# Markups fiducial file version' and no '# columns' header "
                          "line: not a Slicer 4 or later .fcsv file")
        raise_faults(log)
    columns = columns or list(FCSV_COLUMNS)
    where = {name: columns.index(name) for name in ("x", "y", "z", "label", "desc")
             if name in columns}
    missing = [c for c in ("x", "y", "z") if c not in where]
    if missing:
        log.add(path, "", f"the columns line names no {', '.join(missing)} column "
                          f"(columns {','.join(columns)})")
        raise_faults(log)
    labels, descs, points = [], [], []
    for line_no, cells in rows:
        if len(cells) > len(columns):
            log.add(path, "", f"line {line_no}: {len(cells)} fields, the columns line has "
                              f"{len(columns)} (a label or description with an unquoted "
                              "comma?)")
            continue
        xyz, bad = [], []
        for axis in ("x", "y", "z"):
            i = where[axis]
            cell = cells[i].strip() if i < len(cells) else ""
            value = _finite(cell)
            if value is None:
                bad.append(f"{axis} = {cell!r}")
            xyz.append(value)
        if bad:
            log.add(path, "", f"line {line_no}: expected finite numbers for x, y, z, got "
                              + ", ".join(bad))
            continue
        labels.append(_cell(cells, where.get("label")))
        descs.append(_cell(cells, where.get("desc")))
        points.append(xyz)
    raise_faults(log)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if frame == "RAS":
        pts = ras_to_lps(pts)
    return Markups(tuple(labels), pts, tuple(descs), frame, str(path))


def _finite(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _cell(cells: list[str], index: int | None) -> str:
    return cells[index].strip() if index is not None and index < len(cells) else ""


def _fcsv_text(path: Path, labels, points: np.ndarray, descs) -> str:
    absent = [f"{i + 1} ({labels[i]!r})" for i in np.flatnonzero(~np.isfinite(points).all(1))]
    if absent:
        raise InputError(f"{path}: points {', '.join(absent)} are absent (NaN), which a "
                         ".fcsv file cannot express; write a .mrk.json file instead")
    out = io.StringIO()
    out.write(f"# Markups fiducial file version = {FCSV_VERSION}\n")
    out.write("# CoordinateSystem = LPS\n")
    out.write(f"# columns = {','.join(FCSV_COLUMNS)}\n")
    writer = csv.writer(out, lineterminator="\n")
    for i, (label, desc, p) in enumerate(zip(labels, descs, points, strict=True)):
        writer.writerow([str(i + 1), repr(float(p[0])), repr(float(p[1])), repr(float(p[2])),
                         "0", "0", "0", "1", "1", "1", "0", label, desc, ""])
    return out.getvalue()


# --------------------------------------------------------------------------- .mrk.json


def _parse_mrk_json(path: Path, text: str) -> Markups:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: line {err.lineno}: not JSON ({err.msg})") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("markups"), list):
        raise InputError(f"{path}: no 'markups' list at the top level: not a Slicer markups "
                         "JSON file")
    schema = doc.get("@schema")
    if schema is not None and not (isinstance(schema, str)
                                   and _ACCEPTED_SCHEMA.match(schema.lower())):
        raise InputError(f"{path}: '@schema' is {schema!r}, not a Slicer markups schema "
                         "(markups-schema-v1.x.y.json)")
    kinds = [m.get("type") if isinstance(m, dict) else type(m).__name__
             for m in doc["markups"]]
    lists = [m for m in doc["markups"] if isinstance(m, dict) and m.get("type") == "Fiducial"]
    if len(lists) != 1:
        found = ", ".join(map(str, kinds)) or "none"
        raise InputError(f"{path}: expected exactly one markup of type 'Fiducial' (a point "
                         f"list), found {len(lists)} (markup types: {found})")
    markup = lists[0]
    frame_name = markup.get("coordinateSystem", "LPS")
    frame = _JSON_FRAMES.get(frame_name) if isinstance(frame_name, str) else None
    if frame is None:
        raise InputError(f"{path}: unknown coordinate system {frame_name!r}; expected 'LPS' "
                         "or 'RAS'")
    scale = _unit_scale(path, markup.get("coordinateUnits", "mm"))
    control = markup.get("controlPoints", [])
    if not isinstance(control, list):
        raise InputError(f"{path}: 'controlPoints' is not a list")
    log = FaultLog(str(path))
    labels, descs = [], []
    points = np.full((len(control), 3), np.nan)
    for i, cp in enumerate(control):
        where = f"control point {i + 1}"
        if not isinstance(cp, dict):
            log.add(path, "", f"{where}: not an object")
            labels.append("")
            descs.append("")
            continue
        label, desc = cp.get("label", ""), cp.get("description", "")
        labels.append(label.strip() if isinstance(label, str) else str(label))
        descs.append(desc.strip() if isinstance(desc, str) else str(desc))
        if label:
            where += f" ({labels[-1]!r})"
        status = cp.get("positionStatus")
        if status is not None and status not in ("defined", "undefined", "preview"):
            log.add(path, "", f"{where}: unknown positionStatus {status!r}; expected "
                              "'defined', 'undefined' or 'preview'")
            continue
        if status is None:
            status = "defined" if "position" in cp else "undefined"
        if status != "defined":
            continue
        position = cp.get("position")
        if (not isinstance(position, list) or len(position) != 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                           and math.isfinite(v) for v in position)):
            log.add(path, "", f"{where}: positionStatus 'defined' needs 'position' as 3 finite "
                              f"numbers, got {position!r}")
            continue
        points[i] = np.asarray(position, dtype=np.float64) * scale
    raise_faults(log)
    if frame == "RAS":
        points = ras_to_lps(points)
    return Markups(tuple(labels), points, tuple(descs), frame, str(path))


def _unit_scale(path: Path, units) -> float:
    code = units[0] if isinstance(units, list) and units else units
    if code == "mm":
        return 1.0
    if code == "um":
        return 1e-3
    raise InputError(f"{path}: unknown coordinateUnits {units!r}; expected 'mm' or 'um'")


def _mrk_json_text(labels, points: np.ndarray, descs) -> str:
    control = []
    for i, (label, desc, p) in enumerate(zip(labels, descs, points, strict=True)):
        cp = {"id": str(i + 1), "label": label, "description": desc, "associatedNodeID": ""}
        defined = bool(np.isfinite(p).all())
        if defined:
            cp["position"] = [float(v) for v in p]
        # identity orientation, as Slicer writes it in LPS (first two rows negated)
        cp["orientation"] = [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0]
        cp.update({"selected": True, "locked": False, "visibility": True,
                   "positionStatus": "defined" if defined else "undefined"})
        control.append(cp)
    doc = {"@schema": MARKUPS_SCHEMA,
           "markups": [{"type": "Fiducial", "coordinateSystem": "LPS", "coordinateUnits": "mm",
                        "locked": False, "fixedNumberOfControlPoints": False,
                        "labelFormat": "%N-%d", "lastUsedControlPointNumber": len(control),
                        "controlPoints": control, "measurements": []}]}
    text = json.dumps(doc, indent=4, allow_nan=False)
    # Slicer's writer puts vectors on one line: [x, y, z]
    return re.sub(r"\[\s+([^\[\]{}\"]*?)\s+\]",
                  lambda m: "[" + ", ".join(s.strip() for s in m.group(1).split(",")) + "]",
                  text) + "\n"


# --------------------------------------------------------------------------- shared


def _checked_points(path: Path, labels, points_lps, descriptions):
    points = np.asarray(points_lps, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise InputError(f"{path}: points must be (K, 3) world millimetres, got shape "
                         f"{points.shape}")
    labels = [str(v) for v in labels]
    descriptions = [""] * len(labels) if descriptions is None else [str(v) for v in descriptions]
    if len(labels) != len(points) or len(descriptions) != len(points):
        raise InputError(f"{path}: {len(points)} points but {len(labels)} labels and "
                         f"{len(descriptions)} descriptions")
    partial = np.isfinite(points).any(1) & ~np.isfinite(points).all(1)
    if partial.any():
        rows = ", ".join(str(i + 1) for i in np.flatnonzero(partial))
        raise InputError(f"{path}: points {rows} have some but not all coordinates finite; "
                         "an absent point is NaN in x, y and z")
    multiline = [s for s in labels + descriptions if "\n" in s or "\r" in s]
    if multiline:
        raise InputError(f"{path}: labels and descriptions must be one line each, got "
                         f"{multiline[0]!r}")
    return labels, points, descriptions
