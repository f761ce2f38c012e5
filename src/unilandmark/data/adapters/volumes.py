"""Volume datasets: a long CSV of 3-D landmarks, and the AFIDs templates.

Records of these datasets hold ``points (K, 3)`` in VOXEL indices ``(x, y, z)`` of the
record's own volume (numpy axes reversed, the centre of the first voxel at 0), so the rest
of the package maps them through the volume's geometry like any original-pixel points.
The world points (millimetres, LPS as ITK) stay in ``record.meta["world_lps"]`` (K, 3),
with the volume's frame facts beside them (``size``, ``spacing``, ``origin``,
``direction``, ``world_frame``, ``source_frame``). ``record.spacing`` is ``(sx, sy, sz)``
mm per voxel; the direction is orthonormal, so distances in voxel indices scaled by it
are world millimetres.

Volume CSV (:func:`volume_csv_dataset`): one row per (image, landmark), header
``image,landmark,x,y,z`` and optional ``frame`` and ``name`` columns. ``image`` is the
record id: the volume file's stem (``.nii.gz`` counts whole) in the ``images`` folder
(default: the table's folder), or the name (whole, dots and all) of a DICOM series folder
directly inside it (a non-hidden subfolder holding DICOM files, the review app's rule; its
geometry read from the slices' headers). An id naming both a file and a series folder,
or a folder holding several series, is a fault; ``landmark`` is 1-based. ``frame`` says
what ``x, y, z`` are: ``world-lps`` (millimetres, ITK's frame), ``world-ras``
(millimetres, Slicer's and NIfTI tools' frame: x and y change sign) or ``voxel`` (indices
as above). A row without a frame cell takes the ``frame`` option; a table with neither is
refused rather than guessed.
Empty x, y, z cells and missing rows are absent landmarks (NaN, not visible); K is the
largest landmark number.

AFIDs templates (:func:`afids_templates`): ``../shared/data/afids_templates`` (the AFIDs
project's 32 anatomical fiducials on MNI brain templates), see the README there.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...core.errors import InputError, UnknownNameError
from ...core.types import DatasetSpec, Record
from ..faults import FaultLog
from ..files import images_by_stem, series_folders, subfolders
from ..labelmaps import VolumeFrame, volume_frame
from ..markups import Markups, ras_to_lps, read_markups
from ..spreadsheet import read_table

FRAMES = ("world-lps", "world-ras", "voxel")
#: SDR radii for volumes in mm
VOLUME_THRESHOLDS = (2.0, 3.0, 4.0)
AFIDS_COUNT = 32


def volume_record(rid: str, image: Path, world_lps: np.ndarray, frame: VolumeFrame,
                  source_frame: str, **meta) -> Record:
    """A Record of a volume: voxel-index points from world LPS points (module docstring)."""
    world = np.asarray(world_lps, dtype=np.float64)
    index = frame.world_to_index(world)
    visible = np.isfinite(index).all(axis=1)
    index[~visible] = np.nan
    facts = frame.meta()
    facts.update({"world_lps": world, "source_frame": source_frame, **meta})
    return Record(id=rid, image_path=str(image), points=index, visible=visible,
                  spacing=tuple(frame.spacing), meta=facts)


def _outside_faults(log: FaultLog, where: Path, rid: str, record: Record,
                    frame: VolumeFrame, names, lines=None) -> None:
    """A visible point outside its volume is a fault (most often a wrong frame)."""
    pts = record.points
    for k in np.flatnonzero(record.visible & ~frame.inside(np.nan_to_num(pts, nan=0.0))):
        line = f"line {lines[k]}: " if lines and lines.get(k) else ""
        log.add(where, rid, f"{line}landmark {k + 1} ({names[k]!r}) lies outside the volume: "
                            f"voxel {np.round(pts[k], 2).tolist()}, size {list(frame.size)} "
                            "(check the frame: RAS and LPS differ in the signs of x and y)")


# --------------------------------------------------------------------------- volume CSV


def volume_csv_dataset(path: str | Path, images: str | Path | None = None,
                       frame: str | None = None, name: str = "volume-csv",
                       domain: str = "volume",
                       thresholds: tuple[float, ...] = VOLUME_THRESHOLDS) -> DatasetSpec:
    """A long CSV of volume landmarks (image,landmark,x,y,z; docs/volume-landmark-files.md).

    ``frame`` (``world-lps``, ``world-ras`` or ``voxel``) applies to rows without a frame
    cell. Every fault of the table is reported together, each with its line.
    """
    path = Path(path)
    if frame is not None and frame not in FRAMES:
        raise InputError(f"{name}: option frame {frame!r}; expected one of {', '.join(FRAMES)}")
    log = FaultLog(name)
    if not path.is_file():
        log.add(path, "", "table missing")
        log.raise_if_any()
    table = read_table(path, log)
    if table is None:
        log.raise_if_any()
    need = ["image", "landmark", "x", "y", "z"]
    missing = [c for c in need if c not in table.header]
    if missing:
        log.add(path, "", f"line 1: no column {', '.join(missing)}; expected "
                          f"image,landmark,x,y,z[,frame][,name], found {table.header}")
        log.raise_if_any()
    if "frame" not in table.header and frame is None:
        log.add(path, "", "no 'frame' column and no frame option: say whether x, y, z are "
                          f"{', '.join(FRAMES)}")
        log.raise_if_any()
    rows: dict[str, dict[int, tuple[np.ndarray, str, int]]] = {}
    names: dict[int, str] = {}
    for row, line_no in zip(table.rows, table.lines, strict=True):
        rid, where = row["image"], f"line {line_no}"
        if not rid:
            log.add(path, "", f"{where}: empty 'image' cell")
            continue
        try:
            landmark = int(row["landmark"])
        except ValueError:
            log.add(path, rid, f"{where}: landmark is not an integer: {row['landmark']!r}")
            continue
        if landmark < 1:
            log.add(path, rid, f"{where}: landmark numbers start at 1, got {landmark}")
            continue
        row_frame = row.get("frame") or frame
        if row_frame not in FRAMES:
            log.add(path, rid, f"{where}: frame {row_frame!r}; expected one of "
                               f"{', '.join(FRAMES)}")
            continue
        try:
            xyz = [table.number(row[c]) for c in ("x", "y", "z")]
        except ValueError as err:
            log.add(path, rid, f"{where}: landmark {landmark}: {err}")
            continue
        given = [v is not None for v in xyz]
        if any(given) and not all(given):
            log.add(path, rid, f"{where}: landmark {landmark}: x, y and z must all be given "
                               "or all be empty")
            continue
        if landmark in rows.setdefault(rid, {}):
            log.add(path, rid, f"{where}: landmark {landmark} given twice")
            continue
        label = row.get("name")
        if label and names.setdefault(landmark, label) != label:
            log.add(path, rid, f"{where}: landmark {landmark} is named {label!r} here but "
                               f"{names[landmark]!r} before")
        point = np.array([np.nan] * 3 if not all(given) else xyz, dtype=np.float64)
        rows[rid][landmark] = (point, row_frame, line_no)
    k = max((lm for pts in rows.values() for lm in pts), default=0)
    landmark_names = tuple(names.get(i + 1, str(i + 1)) for i in range(k))
    folder = Path(images) if images else path.parent
    volumes = _volumes_by_id(path, folder, list(rows), log)
    records = []
    for rid, pts in rows.items():
        if rid not in volumes:
            continue
        try:
            grid = volume_frame(volumes[rid])
        except InputError as err:
            log.add(path, rid, str(err))
            continue
        world = np.full((k, 3), np.nan)
        lines = {}
        for lm, (point, row_frame, line_no) in pts.items():
            lines[lm - 1] = line_no
            if row_frame == "voxel":
                world[lm - 1] = grid.index_to_world(point)
            elif row_frame == "world-ras":
                world[lm - 1] = ras_to_lps(point)
            else:
                world[lm - 1] = point
        frames = sorted({f for _, f, _ in pts.values()})
        record = volume_record(rid, volumes[rid], world, grid, "+".join(frames),
                               table=str(path))
        _outside_faults(log, path, rid, record, grid, landmark_names, lines)
        records.append(record)
    log.raise_if_any()
    if not records:
        log.add(path, "", "no rows")
        log.raise_if_any()
    return DatasetSpec(name=name, domain=domain, landmark_names=landmark_names,
                       records=tuple(records), splits={"all": tuple(r.id for r in records)},
                       unit="mm", thresholds=tuple(thresholds),
                       info={"table": str(path), "world_frame": "LPS"})


def _volumes_by_id(table: Path, folder: Path, ids: list[str],
                   log: FaultLog) -> dict[str, Path]:
    """{record id: volume file or DICOM series folder} in ``folder`` for the ``ids`` a
    table names: a file by its stem, a series subfolder by its name. A fault (in ``log``)
    for an id found as neither, or as both."""
    files = images_by_stem(folder)
    series = series_folders(folder, ids)
    out, others = {}, None
    for rid in ids:
        if rid in files and rid in series:
            log.add(table, rid, f"record id {rid!r} names both the volume file "
                                f"{files[rid].name} and the DICOM series folder "
                                f"{series[rid].name}/ in {folder}: rename or move one")
        elif rid in series:
            out[rid] = series[rid]
        elif rid in files:
            out[rid] = files[rid]
        else:
            if others is None:
                others = subfolders(folder)
            why = " (a folder of that name holds no DICOM file)" if rid in others else ""
            log.add(table, rid, f"no volume file with stem {rid!r} and no DICOM series "
                                f"folder {rid!r} in {folder}{why}")
    return out


# --------------------------------------------------------------------------- AFIDs


def afids_templates(root: str | Path, rater: str | None = None) -> DatasetSpec:
    """The AFIDs templates: one record per template volume, 32 landmarks.

    ``root`` holds ``images/<template>.nii[.gz]``, ``afids/<template>.fcsv`` (consensus)
    and ``raters/<template>/*.fcsv``. ``rater``: ``consensus`` (default) or a rater: a
    rater file's stem (``tpl-MNI305_desc-rater01_afids``: that template only) or its
    ``desc`` tag (``rater01``, ``rater01s02``: every template that has that rater's file;
    the others are listed in ``info["without_rater"]``).

    Landmark names are the consensus files' names (their ``desc`` column; ``label`` holds
    the numbers 1..32), identical in every consensus file. Rater files list the same
    landmarks in the same order with free-form labels, so their points are taken by
    order; a numeric rater label must equal its row number.

    Splits: ``all`` (templates sorted) and, per template, ``loo-<template>`` holding that
    template alone: the held-out volume of a leave-one-out fold, trained on ``all``
    minus it (``info["leave_one_out"]`` lists both sides). ``info["rater_files"]`` maps
    each template to its rater file stems.
    """
    root = Path(root)
    rater = rater or "consensus"
    log = FaultLog("afids-templates")
    consensus_dir, raters_dir = root / "afids", root / "raters"
    volumes = images_by_stem(root / "images")
    consensus = {p.stem: p for p in sorted(consensus_dir.glob("*.fcsv"))}
    if not consensus:
        log.add(consensus_dir, "", "no consensus .fcsv files (expected afids/<template>.fcsv)")
        log.raise_if_any()
    rater_files = {t: sorted(p.stem for p in (raters_dir / t).glob("*.fcsv"))
                   for t in consensus}
    names, read = _afids_names(consensus, log)
    chosen = _chosen_files(consensus, raters_dir, rater_files, rater)
    records = []
    for template, fcsv in chosen.items():
        if template not in volumes:
            log.add(root / "images", template, f"no volume for template {template!r} "
                                               "(expected images/<template>.nii or .nii.gz)")
            continue
        markups = read[template] if fcsv == consensus.get(template) else _read(fcsv, log)
        if markups is None:
            continue
        if len(markups) != AFIDS_COUNT:
            log.add(fcsv, template, f"{len(markups)} points, AFIDs has {AFIDS_COUNT}")
            continue
        if fcsv != consensus.get(template):
            _check_rater_labels(fcsv, template, markups, log)
        try:
            grid = volume_frame(volumes[template])
        except InputError as err:
            log.add(volumes[template], template, str(err))
            continue
        record = volume_record(template, volumes[template], markups.points_lps, grid,
                               markups.source_frame, landmark_file=str(fcsv),
                               rater=rater)
        _outside_faults(log, fcsv, template, record, grid, names)
        records.append(record)
    log.raise_if_any()
    ids = tuple(sorted(r.id for r in records))
    splits: dict[str, tuple[str, ...]] = {"all": ids}
    loo = {}
    for t in ids:
        splits[f"loo-{t}"] = (t,)
        loo[t] = {"train": [i for i in ids if i != t], "test": [t]}
    info = {"root": str(root), "rater": rater, "world_frame": "LPS",
            "rater_files": rater_files,
            "landmark_files": {t: str(p) for t, p in chosen.items()},
            "leave_one_out": loo,
            "without_rater": sorted(set(consensus) - set(chosen))}
    records = tuple(sorted(records, key=lambda r: r.id))
    return DatasetSpec(name="afids-templates", domain="brain", landmark_names=names,
                       records=records, splits=splits, unit="mm",
                       thresholds=VOLUME_THRESHOLDS, info=info)


def _read(path: Path, log: FaultLog) -> Markups | None:
    try:
        return read_markups(path)
    except InputError as err:
        faults = getattr(err, "faults", None)
        if faults:
            log.extend(faults)
        else:
            log.add(path, "", str(err))
        return None


def _afids_names(consensus: dict[str, Path], log: FaultLog):
    """The 32 names, from the consensus files (desc, or label where desc is empty)."""
    read, names = {}, None
    for template, path in consensus.items():
        markups = _read(path, log)
        if markups is None:
            continue
        read[template] = markups
        these = tuple(d or lab for lab, d in zip(markups.labels, markups.descriptions,
                                                 strict=True))
        if len(these) != AFIDS_COUNT:
            log.add(path, template, f"{len(these)} points, AFIDs has {AFIDS_COUNT}")
        elif names is None:
            names = these
        elif these != names:
            k = next(i for i, (a, b) in enumerate(zip(these, names, strict=True)) if a != b)
            log.add(path, template, f"landmark {k + 1} is named {these[k]!r} here but "
                                    f"{names[k]!r} in the other consensus files")
    log.raise_if_any()
    return names, read


def _chosen_files(consensus, raters_dir: Path, rater_files, rater: str) -> dict[str, Path]:
    if rater == "consensus":
        return dict(consensus)
    chosen = {}
    for template, stems in rater_files.items():
        for stem in stems:
            if stem == rater or re.search(rf"_desc-{re.escape(rater)}_", stem):
                chosen[template] = raters_dir / template / f"{stem}.fcsv"
                break
    if not chosen:
        tags = sorted({m.group(1) for stems in rater_files.values() for s in stems
                       if (m := re.search(r"_desc-([^_]+)_", s))})
        raise UnknownNameError(f"afids-templates: no rater file {rater!r}; give 'consensus', "
                               f"a rater file stem or one of the rater tags: {', '.join(tags)}")
    return chosen


def _check_rater_labels(path: Path, template: str, markups: Markups, log: FaultLog) -> None:
    for k, label in enumerate(markups.labels):
        if label.isdigit() and int(label) != k + 1:
            log.add(path, template, f"point {k + 1} is labelled {label!r}: rater files list "
                                    "the 32 AFIDs in order")


__all__ = ["FRAMES", "VOLUME_THRESHOLDS", "afids_templates", "volume_csv_dataset",
           "volume_record"]
