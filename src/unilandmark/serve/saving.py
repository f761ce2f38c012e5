"""Human landmarks on disk: the long CSV table and labelme JSON beside the images.

Both formats read back through the dataset adapters, so reviewed images can be trained on
at once:

- **CSV** (one table for the folder, ``landmarks_reviewed.csv`` by default): the prediction
  CSV layout, ``image,landmark,x,y,name,...``, one row per landmark, ``image`` the record id
  (the file's stem). A landmark marked not visible keeps its row with ``x`` and ``y``
  empty, which the ``csv`` adapter reads as not visible. Read it with
  ``csv_dataset(table, images=FOLDER)`` (``--dataset csv --option images=FOLDER``).
- **labelme** (``STEM.json`` beside ``STEM.png``): one point shape per visible landmark,
  labelled with the landmark's name; a not-visible landmark has no shape, which the
  ``labelme`` adapter reads as not visible. Shapes that are not this model's landmark
  points (other labels, polygons) are kept when the file is rewritten. Read it with
  ``labelme_dataset(FOLDER, landmarks=[...names])``.

Both keep the image's orientation (``original``/``mirrored``: the model's decision that
the image is a left-right mirror of its training images, which measurements need) where
it is known: the CSV in its ``orientation`` column, labelme under a top-level
``"unilandmark": {"orientation": ...}`` key (labelme keeps keys it does not know).

Points are ``(x, y)`` floats in original pixels (centre of the top-left pixel is
``(0, 0)``); NaN means not visible. Every write is atomic.

The CSV is read and written by the one prediction-table module
(:mod:`unilandmark.predictions.table`): a table saved by a spreadsheet (a byte-order mark,
UTF-16, semicolons or tabs, decimal commas) opens, and is rewritten in its own layout.
Saving replaces one image's rows (read, modify, write) while holding a lock file beside
the table (``NAME.csv.lock``, :func:`table_lock`), so that two ``serve`` processes saving
into one table never lose each other's rows.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from ..core.atomic import atomic_write_text
from ..core.errors import InputError
from ..core.naming import file_stem
from ..core.types import Spacing
from ..data.annotations import parse_labelme
from ..data.faults import Fault, FaultLog
from ..predictions.table import (
    OPTIONAL_COLUMNS,
    PREDICTION_COLUMNS,
    PredictionError,
    PredictionFile,
    mm_text,
    parse_point,
    read_prediction_file,
    write_predictions,
)

FORMATS = ("csv", "labelme", "both")
DEFAULT_CSV_NAME = "landmarks_reviewed.csv"
#: the prediction CSV columns (predictions.table: the project's one schema), required
#: first, then optional
CSV_REQUIRED = PREDICTION_COLUMNS
CSV_OPTIONAL = OPTIONAL_COLUMNS
#: seconds a save waits for another process's hold on the table's lock file
LOCK_TIMEOUT_S = 10.0
LABELME_VERSION = "5.2.1"
ORIENTATIONS = ("original", "mirrored")


class SavedFileError(InputError):
    """A saved-landmarks file that cannot be read or safely rewritten; names file and fault."""


class SaveError(RuntimeError):
    """A file that could not be written (permissions, a full disk, a file in the way)."""


def cannot_write(target: Path, err: OSError) -> SaveError:
    """A :class:`SaveError` naming the file we meant to write and the system's reason."""
    where = f" ({err.filename})" if err.filename and str(err.filename) != str(target) else ""
    return SaveError(f"cannot write {target}: {err.strerror or err}{where}")


def formats_of(choice: str) -> tuple[str, ...]:
    """``csv``/``labelme``/``both`` -> the formats to write, in reading-preference order."""
    if choice not in FORMATS:
        raise InputError(f"save format {choice!r}: expected one of {', '.join(FORMATS)}")
    return ("labelme", "csv") if choice == "both" else (choice,)


def _num(value: float) -> str:
    return repr(float(value))


# -- labelme -------------------------------------------------------------------------------
def labelme_file(image_path: Path) -> Path:
    """The labelme JSON of an image: ``STEM.json`` in the image's folder."""
    return image_path.parent / f"{file_stem(image_path.name)}.json"


def _load_labelme_json(path: Path, image_name: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SavedFileError(f"{path}: not a readable JSON file ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("shapes", []), list):
        raise SavedFileError(f"{path}: not a labelme file (no list of 'shapes')")
    other = data.get("imagePath")
    if other and Path(str(other).replace("\\", "/")).name != image_name:
        raise SavedFileError(f"{path}: belongs to image {other!r}, not {image_name!r}; "
                             "rename one of them or save to CSV")
    return data


def read_labelme(image_path: Path, names: Sequence[str],
                 ) -> tuple[np.ndarray, str | None] | None:
    """Human points ``(K, 2)`` of ``image_path`` from its labelme JSON (NaN where a landmark
    has no shape) and the orientation where recorded; None when there is no JSON or it
    holds none of ``names``."""
    path = labelme_file(image_path)
    if not path.is_file():
        return None
    data = _load_labelme_json(path, image_path.name)
    ours = data.get("unilandmark")
    orientation = ours.get("orientation") if isinstance(ours, dict) else None
    log = FaultLog("labelme")
    parsed = parse_labelme(path, log)
    if parsed is None:
        raise SavedFileError("; ".join(str(f) for f in log.faults))
    shapes, _ = parsed
    if not set(shapes) & set(names):
        return None
    points = np.full((len(names), 2), np.nan)
    for k, name in enumerate(names):
        if name in shapes:
            points[k] = shapes[name]
    return points, orientation if orientation in ORIENTATIONS else None


def write_labelme(image_path: Path, names: Sequence[str], points: np.ndarray,
                  size: tuple[int, int], orientation: str | None = None) -> Path:
    """Write the image's labelme JSON (atomically) with one point shape per visible
    landmark; shapes of an existing file that are not these landmarks are kept."""
    path = labelme_file(image_path)
    kept = []
    data: dict = {}
    if path.is_file():
        data = _load_labelme_json(path, image_path.name)
        kept = [s for s in data.get("shapes", []) if not (
            isinstance(s, dict) and s.get("shape_type", "point") == "point"
            and str(s.get("label", "")).strip() in set(names))]
    shapes = [{"label": name, "points": [[float(x), float(y)]], "group_id": None,
               "description": "", "shape_type": "point", "flags": {}}
              for name, (x, y) in zip(names, points, strict=True)
              if math.isfinite(x) and math.isfinite(y)]
    data.update({"version": data.get("version", LABELME_VERSION), "flags": data.get("flags", {}),
                 "shapes": shapes + kept, "imagePath": image_path.name,
                 "imageData": data.get("imageData"),
                 "imageHeight": int(size[1]), "imageWidth": int(size[0])})
    if orientation is not None:
        data["unilandmark"] = {"orientation": orientation}
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path


# -- CSV -----------------------------------------------------------------------------------
def lock_file(path: Path) -> Path:
    """The lock file of a review table: ``NAME.csv.lock`` beside it (kept there: deleting a
    lock file while another process waits on it would let two hold it)."""
    return path.with_name(f"{path.name}.lock")


@contextlib.contextmanager
def table_lock(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold the table's lock file (across processes) for a read-modify-write.

    A lock held by another holder for longer than ``timeout`` seconds (default
    ``LOCK_TIMEOUT_S``) is a :class:`TimeoutError` (an ``OSError``, so the save reports
    ``cannot write TABLE: ...``) naming the lock file.
    """
    timeout = LOCK_TIMEOUT_S if timeout is None else timeout
    lock = lock_file(path)
    holder = FileLock(str(lock), timeout=timeout)
    try:
        holder.acquire()
    except Timeout:
        raise TimeoutError(errno.ETIMEDOUT, f"another process has held its lock file for "
                           f"over {timeout:g} s (another 'unilandmark serve' saving to the "
                           "same table?); nothing was changed, save again",
                           str(lock)) from None
    try:
        yield
    finally:
        holder.release()


def read_table(path: Path) -> PredictionFile:
    """The review CSV's rows as text (:func:`read_prediction_file`: any layout a
    spreadsheet writes); :class:`SavedFileError` naming the file's faults if unreadable."""
    try:
        return read_prediction_file(path)
    except PredictionError as err:
        raise SavedFileError(_faults_text(path, err.faults)) from None


def _faults_text(path: Path, faults: list[Fault]) -> str:
    shown = "; ".join((f"record {f.record}: " if f.record else "") + f.message
                      for f in faults[:3])
    more = f" (and {len(faults) - 3} more)" if len(faults) > 3 else ""
    return f"{path}: {shown}{more}"


def saved_ids(path: Path) -> set[str]:
    """Record ids with rows in the review CSV (empty when absent or unreadable)."""
    if not path.is_file():
        return set()
    try:
        return {r["image"] for r in read_table(path).rows}
    except SavedFileError:
        return set()


def read_csv(path: Path, image_id: str, names: Sequence[str],
             ) -> tuple[np.ndarray, str | None] | None:
    """Human points ``(K, 2)`` of record ``image_id`` from the CSV table (NaN where x, y are
    empty or the landmark has no row) and its orientation where the table has one; None
    when the table has no row for the image."""
    if not path.is_file():
        return None
    table = read_table(path)
    points = np.full((len(names), 2), np.nan)
    found: set[int] = set()
    orientation = None
    for row, line in zip(table.rows, table.lines, strict=True):
        if row["image"] != image_id:
            continue
        if row.get("orientation") in ORIENTATIONS:
            orientation = row["orientation"]
        try:
            landmark, xy = parse_point(table, row, line)
        except ValueError as err:
            raise SavedFileError(f"{path}: {err}") from None
        if not 1 <= landmark <= len(names):
            raise SavedFileError(f"{path}: line {line}: landmark {landmark} is outside "
                                 f"1..{len(names)} of this model")
        if landmark in found:
            raise SavedFileError(f"{path}: line {line}: landmark {landmark} of image "
                                 f"{image_id!r} given twice")
        found.add(landmark)
        if xy is not None:
            points[landmark - 1] = xy
    return (points, orientation) if found else None


def csv_rows(image_id: str, file_name: str, names: Sequence[str], points: np.ndarray,
             spacing: Spacing | None, domain: str | None, orientation: str | None = None,
             ) -> list[dict[str, str]]:
    """Rows of one image; a not-visible landmark has empty ``x``, ``y`` (and no mm)."""
    rows = []
    for k, (name, (x, y)) in enumerate(zip(names, points, strict=True)):
        visible = math.isfinite(x) and math.isfinite(y)
        row = {"image": image_id, "landmark": str(k + 1), "x": _num(x) if visible else "",
               "y": _num(y) if visible else "", "name": name, "file": file_name}
        if spacing is not None:
            if visible:
                row["x_mm"], row["y_mm"] = mm_text(x, spacing[0]), mm_text(y, spacing[1])
            row["spacing_x"], row["spacing_y"] = _num(spacing[0]), _num(spacing[1])
        if domain:
            row["domain"] = domain
        if orientation:
            row["orientation"] = orientation
        rows.append(row)
    return rows


def write_csv(path: Path, image_id: str, rows: list[dict[str, str]]) -> Path:
    """Replace the rows of ``image_id`` in the table (created if absent), atomically and
    under the table's lock file (:func:`table_lock`); the other images' rows are kept as
    they are, in their order, and so are a user's own columns and the table's layout
    (delimiter, encoding, decimal commas)."""
    with table_lock(path):
        table = read_table(path) if path.is_file() else None
        kept = [r for r in table.rows if r.get("image") != image_id] if table else []
        write_predictions(path, kept + rows, header=table.header if table else (),
                          layout=table.layout if table else None)
    return path
