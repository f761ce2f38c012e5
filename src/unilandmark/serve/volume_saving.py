"""Human landmarks of volumes on disk: one review table for the folder, and a Slicer
markups file beside each volume.

Points are ``(K, 3)`` world millimetres in **LPS** (ITK's frame, as everywhere in the
package); a NaN row is a landmark marked absent. Both formats read back through the
package's own readers, so reviewed volumes are training data at once:

- **CSV** (``landmarks_reviewed_volumes.csv`` in the folder by default): the volume
  prediction table's layout (:data:`~unilandmark.predictions.volume_table.VOLUME_COLUMNS`,
  ``image,landmark,name,x,y,z,frame,x_mm,y_mm,z_mm,confidence,present,domain``), one row
  per landmark, ``image`` the record id (the file's stem, ``.nii.gz`` counted whole; a
  DICOM series folder's name), ``x, y, z`` voxel indices of the volume as stored with
  ``frame`` = ``voxel`` and ``x_mm, y_mm, z_mm`` the same point in LPS mm (4 decimals, as
  ``predict`` writes them); ``confidence`` is empty (a person placed or accepted the
  point) and an absent landmark keeps its row with empty coordinates and ``present`` 0.
  The ``volume-csv`` adapter reads it back (``volume_csv_dataset(table, images=FOLDER)``;
  rows of volume files: it looks a record id up among the folder's files, not its series
  folders): empty coordinates are absent landmarks. Saving one volume replaces that
  volume's rows (read, modify, write, atomically) while holding the table's lock file
  (``NAME.csv.lock``, :func:`unilandmark.serve.saving.table_lock`), as the image review
  table does; other volumes' rows and any column of a user's own are kept (the table is
  written back comma-separated, UTF-8).
- **Slicer markups** (``STEM.mrk.json`` beside ``STEM.nii.gz``; ``NAME.mrk.json`` beside
  a DICOM series folder ``NAME/``, not inside it): one control point per landmark
  labelled with its name, LPS (:func:`unilandmark.data.markups.write_markups`, atomic);
  an absent landmark is an ``undefined`` control point.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_write_text
from ..core.errors import InputError
from ..core.naming import file_stem
from ..core.world import VolumeGeometry, ras_to_lps
from ..data.faults import FaultLog
from ..data.markups import read_markups, write_markups
from ..data.spreadsheet import formula_safe, read_table
from ..predictions.volume_table import VOLUME_COLUMNS, volume_rows
from .saving import SavedFileError, table_lock

VOLUME_FORMATS = ("csv", "markups", "both")
DEFAULT_VOLUME_CSV_NAME = "landmarks_reviewed_volumes.csv"
_FRAMES = ("voxel", "world-lps", "world-ras")


def volume_formats_of(choice: str) -> tuple[str, ...]:
    """``csv``/``markups``/``both`` -> the formats to write, in reading-preference order."""
    if choice not in VOLUME_FORMATS:
        hint = " (labelme is for 2-D images)" if choice == "labelme" else ""
        raise InputError(f"save format {choice!r} for volumes: expected one of "
                         f"{', '.join(VOLUME_FORMATS)}{hint}")
    return ("markups", "csv") if choice == "both" else (choice,)


# -- Slicer markups ------------------------------------------------------------------------
def markups_file(volume_path: Path) -> Path:
    """The markups file of a volume: ``STEM.mrk.json`` beside it, in the folder under
    review; for a DICOM series folder ``NAME.mrk.json`` beside the folder (never inside
    it: the series folder holds its slices only)."""
    stem = volume_path.name if volume_path.is_dir() else file_stem(volume_path.name)
    return volume_path.parent / f"{stem}.mrk.json"


def read_volume_markups(volume_path: Path, names: Sequence[str]) -> np.ndarray | None:
    """Human points ``(K, 3)`` LPS mm of a volume from its markups file (NaN: undefined);
    None when there is none. Points are matched to ``names`` by label when every name is
    a label of the file, else by order when the file holds exactly K points;
    :class:`SavedFileError` otherwise, or when the file does not read."""
    path = markups_file(volume_path)
    if not path.is_file():
        return None
    try:
        markups = read_markups(path)
    except InputError as err:
        raise SavedFileError(str(err)) from None
    labels = list(markups.labels)
    if set(names) <= set(labels):
        return np.stack([markups.points_lps[labels.index(n)] for n in names])
    if len(labels) == len(names):
        return np.array(markups.points_lps, dtype=np.float64)
    raise SavedFileError(f"{path}: {len(labels)} control points, not labelled with this "
                         f"model's {len(names)} landmark names; rename or move the file "
                         "to review this volume")


def write_volume_markups(volume_path: Path, names: Sequence[str], points: np.ndarray) -> Path:
    """Write the volume's markups file (atomically): one control point per landmark,
    labelled with its name, LPS; NaN rows undefined."""
    return write_markups(markups_file(volume_path), list(names), points)


# -- the review table ----------------------------------------------------------------------
def review_rows(image_id: str, names: Sequence[str], points: np.ndarray,
                geometry: VolumeGeometry, domain: str) -> list[dict]:
    """Rows of one volume in the volume table layout: voxel indices through ``geometry``
    (the volume as stored), world LPS mm, empty confidence, ``present`` 0 and empty
    coordinates for an absent (NaN) landmark."""
    points = np.asarray(points, dtype=np.float64)
    present = np.isfinite(points).all(axis=1)
    voxels = geometry.world_to_index(np.nan_to_num(points))
    return volume_rows(image_id, names, voxels, points, np.full(len(names), np.nan), domain,
                       present)


def _read_rows(path: Path):
    log = FaultLog(str(path))
    table = read_table(path, log)
    if table is None or log.faults:
        shown = "; ".join(str(f) for f in log.faults[:3]) or f"{path}: unreadable"
        raise SavedFileError(shown)
    missing = [c for c in ("image", "landmark", "x", "y", "z") if c not in table.header]
    if missing:
        raise SavedFileError(f"{path}: no column {', '.join(missing)}; not a volume review "
                             "table (image,landmark,x,y,z,frame,...)")
    return table


def saved_volume_ids(path: Path) -> set[str]:
    """Record ids with rows in the volume review table (empty when absent or unreadable)."""
    if not path.is_file():
        return set()
    try:
        return {r["image"] for r in _read_rows(path).rows}
    except SavedFileError:
        return set()


def read_volume_csv(path: Path, image_id: str, names: Sequence[str],
                    geometry: VolumeGeometry) -> np.ndarray | None:
    """Human points ``(K, 3)`` LPS mm of record ``image_id`` from the review table (NaN
    where the coordinates are empty or the landmark has no row); None when the table has
    no row for it. ``frame`` ``voxel`` rows are mapped through ``geometry``;
    ``world-lps`` and ``world-ras`` rows (a table edited by hand) are read as such."""
    if not path.is_file():
        return None
    table = _read_rows(path)
    points = np.full((len(names), 3), np.nan)
    found: set[int] = set()
    for row, line in zip(table.rows, table.lines, strict=True):
        if row["image"] != image_id:
            continue
        where = f"{path}: line {line}"
        try:
            landmark = int(row["landmark"])
            xyz = [table.number(row[c]) for c in ("x", "y", "z")]
        except ValueError as err:
            raise SavedFileError(f"{where}: {err}") from None
        if not 1 <= landmark <= len(names):
            raise SavedFileError(f"{where}: landmark {landmark} is outside 1..{len(names)} "
                                 "of this model")
        if landmark in found:
            raise SavedFileError(f"{where}: landmark {landmark} of {image_id!r} given twice")
        found.add(landmark)
        if all(v is None for v in xyz):
            continue
        if any(v is None for v in xyz):
            raise SavedFileError(f"{where}: x, y and z must all be given or all be empty")
        frame = row.get("frame") or "voxel"
        if frame not in _FRAMES:
            raise SavedFileError(f"{where}: frame {frame!r}; expected one of "
                                 f"{', '.join(_FRAMES)}")
        point = np.array(xyz, dtype=np.float64)
        if frame == "voxel":
            point = geometry.index_to_world(point)
        elif frame == "world-ras":
            point = ras_to_lps(point)
        points[landmark - 1] = point
    return points if found else None


def write_volume_csv(path: Path, image_id: str, rows: list[dict]) -> Path:
    """Replace the rows of ``image_id`` in the volume review table (created if absent),
    atomically and under the table's lock file; other rows, their order and a user's own
    columns are kept."""
    with table_lock(path):
        kept, extra = [], []
        if path.is_file():
            table = _read_rows(path)
            kept = [r for r in table.rows if r.get("image") != image_id]
            extra = [c for c in table.header if c not in VOLUME_COLUMNS]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, [*VOLUME_COLUMNS, *extra], restval="",
                                extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: formula_safe(v) for k, v in r.items()} for r in kept + rows)
        atomic_write_text(path, buffer.getvalue())
    return path
