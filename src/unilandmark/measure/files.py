"""Measurements from a prediction CSV, written as one row per image.

Input: the prediction CSV (``image,landmark,x,y`` then optional ``name``, ``x_mm``,
``y_mm``, ``domain``, ``orientation``, ``spacing_x``, ``spacing_y``, ...), read by
:mod:`unilandmark.predictions.table` as spreadsheets write it (a byte-order mark, UTF-16,
semicolons or tabs, decimal commas); a landmark with empty ``x``, ``y`` is not visible
(NaN). Per image:

- landmark names from the ``name`` column, else from the spec's ordered ``landmarks``;
- spacing from ``spacing_x``/``spacing_y``, else from ``x_mm / x`` and ``y_mm / y``, else
  the caller's default (e.g. ``--spacing``): the file's own spacing wins;
- ``orientation`` ``original`` or ``mirrored`` (missing column: original); mirrored
  images are measured in the patient's frame.

A volume prediction CSV (a ``z`` or ``z_mm`` column:
``image,landmark,name,x,y,z,frame,x_mm,y_mm,z_mm,confidence,present,domain``) is read by
:func:`read_volume_images`: 3-D points in world millimetres (LPS) from ``x_mm, y_mm,
z_mm`` (or from ``x, y, z`` where ``frame`` is ``world-lps`` / ``world-ras``); a row with
``present`` 0 or empty coordinates is a missing landmark.

Output columns: ``image``, one per measurement (spec order), ``<name>_class`` and
``<name>_class_label`` (the class in words) for each measurement with classes,
``<name>_norm_sd`` (deviation from the norm in SD) for each measurement whose norm gives a
mean and SD, ``<name>_px`` for pixel fallbacks, then ``orientation``, ``spacing_x``,
``spacing_y``, ``coordinates`` (``float``, ``truncated to integers``, or ``world mm`` for
volumes) and ``spec``.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_write_text
from ..core.errors import InputError
from ..core.limits import spacing_fault
from ..data.faults import Fault, FaultLog
from ..data.spreadsheet import read_table
from ..predictions.table import (
    PredictionError,
    PredictionFile,
    parse_point,
    read_predictions,
)
from .builtin import (
    automatic_specs,
    builtin_specs,
    covers,
    spec_for,
    specs_for_domain,
    unknown_landmarks,
)
from .classes import class_labels, classify_batch
from .compute import coordinate_fault, measure_batch, normalise_name
from .norms import deviations_batch
from .scoring import COORDINATES
from .spec import MeasurementSpec

ORIENTATIONS = ("original", "mirrored")


@dataclass(frozen=True)
class ImageLandmarks:
    """One image of a prediction CSV: points (K, 2) original pixels (NaN where absent),
    or (K, 3) world mm for a volume; names (K,) (None where the file names none), spacing
    (sx, sy) mm or None (always None for a volume: its points are in mm)."""

    image: str
    points: np.ndarray = field(compare=False)
    names: tuple[str | None, ...]
    spacing: tuple[float, float] | None
    mirrored: bool = False
    domain: str | None = None


@dataclass(frozen=True)
class MeasurementTable:
    """Measurements of the images of one file under one spec."""

    spec: MeasurementSpec
    images: list[ImageLandmarks]
    values: dict[str, np.ndarray]
    classes: dict[str, np.ndarray]
    truncate: bool
    skipped: list[str]

    def columns(self) -> list[str]:
        return measurement_columns(self.spec)

    def rows(self) -> list[dict[str, str]]:
        labels = class_labels(self.spec)
        deviations = deviations_batch(self.spec, self.values)
        rows = []
        for n, img in enumerate(self.images):
            row = {"image": img.image}
            for name in self.spec.names:
                row[name] = _fmt(self.values[name][n])
            for name in self.spec.classified():
                c = int(self.classes[name][n])
                row[f"{name}_class"] = str(c) if c > 0 else ""
                row[f"{name}_class_label"] = labels.get(name, {}).get(c, "")
            for name, dev in deviations.items():
                row[f"{name}_norm_sd"] = _fmt(dev[n])
            for name in self.spec.pixel_fallbacks():
                row[f"{name}_px"] = _fmt(self.values[f"{name}_px"][n])
            row["orientation"] = ORIENTATIONS[int(img.mirrored)]
            sp = img.spacing
            row["spacing_x"], row["spacing_y"] = (_fmt(sp[0]), _fmt(sp[1])) if sp else ("", "")
            row["coordinates"] = "world mm" if img.points.shape[-1] == 3 else \
                COORDINATES[self.truncate]
            row["spec"] = self.spec.name
            rows.append(row)
        return rows


def measurement_columns(spec: MeasurementSpec) -> list[str]:
    """The measurement CSV's header (the module doc)."""
    return ["image", *spec.names,
            *(c for n in spec.classified() for c in (f"{n}_class", f"{n}_class_label")),
            *(f"{n}_norm_sd" for n in spec.deviations()),
            *(f"{n}_px" for n in spec.pixel_fallbacks()),
            "orientation", "spacing_x", "spacing_y", "coordinates", "spec"]


def _fmt(value: float) -> str:
    return repr(round(float(value), 6)) if math.isfinite(float(value)) else ""


def read_landmark_images(path: str | Path, spacing: tuple[float, float] | None = None,
                         ) -> list[ImageLandmarks]:
    """Group a prediction CSV by image (see the module doc); every fault is reported
    together (the points through :func:`unilandmark.predictions.table.read_predictions`).

    Beyond the cells, refused: a point that :func:`~.compute.coordinate_fault` refuses
    (beyond +-1e6 pixels); one name given to two landmarks of an image; one landmark
    number named differently for two images of one domain.
    """
    table = read_predictions(path)
    source = table.source
    path = str(path)
    faults: list[Fault] = []
    extra: dict[str, dict] = {}
    for row, line_no in zip(source.rows, source.lines, strict=True):
        rid = row["image"]
        info = extra.setdefault(rid, {"names": {}, "lines": {}, "orientation": set(),
                                      "domain": set(), "spacing": set(), "derived": None})
        try:
            lm, xy = parse_point(source, row, line_no)
        except ValueError:  # reported by read_predictions
            continue
        info["lines"][lm] = line_no
        if row.get("name"):
            info["names"][lm] = row["name"]
        fault = coordinate_fault(*xy) if xy is not None else None
        if fault:
            label = f" ({row['name']})" if row.get("name") else ""
            faults.append(Fault(path, rid, f"line {line_no}: landmark {lm}{label}: {fault}"))
        if row.get("domain"):
            info["domain"].add(row["domain"])
        if row.get("orientation"):
            if row["orientation"] not in ORIENTATIONS:
                faults.append(Fault(path, rid, f"line {line_no}: orientation must be "
                                               f"{' or '.join(ORIENTATIONS)}, got "
                                               f"{row['orientation']!r}"))
            else:
                info["orientation"].add(row["orientation"])
        sp = _row_spacing(row, source, rid, line_no, faults)
        if sp == "derived":
            if info["derived"] is None:
                info["derived"] = _derived_spacing(row, source, rid, line_no, faults)
        elif sp is not None:
            info["spacing"].add(sp)
    by_image: dict[str, dict[int, tuple[float, float]]] = {}
    for (rid, lm), xy in table.points.items():
        by_image.setdefault(rid, {})[lm] = xy
        if lm < 1:
            faults.append(Fault(path, rid, f"landmark {lm}: landmarks are numbered from 1"))
    faults += _name_faults(path, extra)
    images = []
    for rid, info in extra.items():
        for key in ("orientation", "domain", "spacing"):
            if len(info[key]) > 1:
                faults.append(Fault(path, rid, f"rows of this image disagree on {key}: "
                                               f"{sorted(info[key])}"))
        given = by_image.get(rid, {})
        k = max(info["lines"], default=0)  # rows marked not visible count: they keep names
        points = np.full((max(k, 0), 2), np.nan)
        for lm, xy in given.items():
            if lm >= 1:
                points[lm - 1] = xy
        sp = next(iter(info["spacing"]), None) or info["derived"] or spacing
        images.append(ImageLandmarks(
            image=rid, points=points, names=tuple(info["names"].get(j + 1) for j in range(k)),
            spacing=tuple(sp) if sp else None,
            mirrored=info["orientation"] == {"mirrored"},
            domain=next(iter(info["domain"]), None)))
    if faults:
        raise PredictionError(path, faults)
    return images


#: the world frames a volume CSV's ``frame`` column may give for its ``x, y, z``
_WORLD_FRAMES = ("world-lps", "world-ras")


def is_volume_table(path: str | Path) -> bool:
    """Whether a prediction CSV holds volumes: its header has a ``z`` or ``z_mm`` column."""
    log = FaultLog(str(path))
    table = read_table(Path(path), log)
    return table is not None and bool({"z", "z_mm"} & set(table.header))


def read_volume_images(path: str | Path) -> list[ImageLandmarks]:
    """Group a volume prediction CSV by volume: points (K, 3) world millimetres, LPS.

    Coordinates: ``x_mm, y_mm, z_mm`` (the volume prediction table's world columns);
    without them, ``x, y, z`` of rows whose ``frame`` is ``world-lps`` (or ``world-ras``,
    turned to LPS: x and y change sign). Voxel-only rows cannot be measured in mm and are
    refused. ``present`` 0 or empty coordinates: the landmark is missing (NaN). Every
    fault is reported together, each with its line.
    """
    path = Path(path)
    log = FaultLog(str(path))
    if not path.is_file():
        raise PredictionError(str(path), [Fault(str(path), "", "prediction file missing")])
    table = read_table(path, log)
    if table is None:
        raise PredictionError(str(path), log.faults)
    missing = [c for c in ("image", "landmark") if c not in table.header]
    world = all(c in table.header for c in ("x_mm", "y_mm", "z_mm"))
    if not world and not all(c in table.header for c in ("x", "y", "z", "frame")):
        missing.append("x_mm, y_mm, z_mm (or x, y, z with a world frame column)")
    if missing:
        raise PredictionError(str(path), [*log.faults, Fault(
            str(path), "", f"volume table without column(s) {', '.join(missing)}; "
                           "expected image,landmark,name,x,y,z,frame,x_mm,y_mm,z_mm,...")])
    per: dict[str, dict] = {}
    for row, line_no in zip(table.rows, table.lines, strict=True):
        rid, where = row["image"], f"line {line_no}"
        if not rid:
            log.add(path, "", f"{where}: empty 'image' cell")
            continue
        info = per.setdefault(rid, {"points": {}, "names": {}, "domain": set(),
                                    "lines": {}})
        try:
            lm = int(row["landmark"])
        except ValueError:
            log.add(path, rid, f"{where}: landmark is not an integer: {row['landmark']!r}")
            continue
        if lm < 1:
            log.add(path, rid, f"{where}: landmarks are numbered from 1, got {lm}")
            continue
        if lm in info["points"]:
            log.add(path, rid, f"{where}: landmark {lm} is given twice")
            continue
        info["lines"][lm] = line_no
        if row.get("name"):
            info["names"][lm] = row["name"]
        if row.get("domain"):
            info["domain"].add(row["domain"])
        keys, sign = ("x_mm", "y_mm", "z_mm"), (1.0, 1.0, 1.0)
        if not world:
            frame = row.get("frame", "")
            if frame not in _WORLD_FRAMES:
                log.add(path, rid, f"{where}: frame {frame!r} without x_mm, y_mm, z_mm: "
                                   "voxel indices cannot be measured in mm; give world "
                                   "coordinates")
                continue
            keys = ("x", "y", "z")
            sign = (-1.0, -1.0, 1.0) if frame == "world-ras" else sign
        try:
            xyz = [table.number(row[k]) for k in keys]
        except ValueError as err:
            log.add(path, rid, f"{where}: landmark {lm}: {err}")
            continue
        absent = row.get("present", "").strip() == "0"
        given = [v is not None for v in xyz]
        if absent or not any(given):
            info["points"][lm] = np.full(3, np.nan)
            continue
        if not all(given):
            log.add(path, rid, f"{where}: landmark {lm}: {', '.join(keys)} must all be "
                               "given (or none)")
            continue
        fault = coordinate_fault(*xyz)
        if fault:
            log.add(path, rid, f"{where}: landmark {lm}: {fault}")
            continue
        info["points"][lm] = np.asarray(xyz, dtype=np.float64) * sign
    images = []
    for rid, info in per.items():
        if len(info["domain"]) > 1:
            log.add(path, rid, f"rows of this volume disagree on domain: "
                               f"{sorted(info['domain'])}")
        k = max(info["points"], default=0)
        points = np.full((k, 3), np.nan)
        for lm, xyz in info["points"].items():
            points[lm - 1] = xyz
        images.append(ImageLandmarks(
            image=rid, points=points,
            names=tuple(info["names"].get(j + 1) for j in range(k)), spacing=None,
            domain=next(iter(info["domain"]), None)))
    faults = list(log.faults) + _name_faults(str(path), {
        rid: {"names": info["names"], "lines": info["lines"], "domain": info["domain"]}
        for rid, info in per.items()})
    if faults:
        raise PredictionError(str(path), faults)
    return images


def _name_faults(path: str, extra: dict[str, dict]) -> list[Fault]:
    """Names that disagree with numbers inside the file: one name for two landmarks of an
    image, or one landmark number named differently for two images of one domain."""
    faults = []
    first: dict[tuple[str | None, int], tuple[str, str, int]] = {}
    for rid, info in extra.items():
        domain = next(iter(sorted(info["domain"])), None)
        seen: dict[str, int] = {}
        for lm, name in sorted(info["names"].items()):
            line = info["lines"][lm]
            key = normalise_name(name)
            if key in seen:
                faults.append(Fault(path, rid, f"line {line}: landmark {lm} is named {name!r}, "
                                               f"and so is landmark {seen[key]}: a name "
                                               "belongs to one landmark"))
                continue
            seen[key] = lm
            before = first.setdefault((domain, lm), (name, rid, line))
            if normalise_name(before[0]) != key:
                faults.append(Fault(path, rid, f"line {line}: landmark {lm} is named {name!r} "
                                               f"here but {before[0]!r} for image {before[1]} "
                                               f"(line {before[2]}): the names and numbers "
                                               "disagree"))
    return faults


def _row_spacing(row, source: PredictionFile, rid, line_no, faults):
    """(sx, sy) from the spacing columns, "derived" when only x_mm/y_mm give it, or None."""
    path = source.path
    if row.get("spacing_x") or row.get("spacing_y"):
        try:
            sp = (source.number(row.get("spacing_x", "")),
                  source.number(row.get("spacing_y", "")))
        except ValueError:
            sp = (None, None)
        if not all(v is not None and v > 0 for v in sp):
            faults.append(Fault(path, rid, f"line {line_no}: spacing_x, spacing_y must be "
                                           f"positive numbers, got {row.get('spacing_x')!r}, "
                                           f"{row.get('spacing_y')!r}"))
            return None
        fault = spacing_fault(sp)
        if fault:
            faults.append(Fault(path, rid, f"line {line_no}: spacing_x, spacing_y: {fault}"))
            return None
        return sp
    if row.get("x_mm") and row.get("y_mm"):
        try:
            source.number(row["x_mm"]), source.number(row["y_mm"])
        except ValueError:
            faults.append(Fault(path, rid, f"line {line_no}: x_mm, y_mm must be numbers, got "
                                           f"{row['x_mm']!r}, {row['y_mm']!r}"))
            return None
        return "derived"
    return None


def _derived_spacing(row, source: PredictionFile, rid, line_no, faults,
                     ) -> tuple[float, float] | None:
    """(x_mm / x, y_mm / y) of a row, None where a coordinate is 0 (or a cell is bad, a
    fault reported elsewhere); an implausible spacing is a fault (docs/refusals.md)."""
    try:
        x, y, x_mm, y_mm = (source.number(row[k]) for k in ("x", "y", "x_mm", "y_mm"))
    except ValueError:
        return None
    if None in (x, y, x_mm, y_mm) or x == 0 or y == 0 or \
            coordinate_fault(x, y) or coordinate_fault(x_mm, y_mm):
        return None
    sp = (x_mm / x, y_mm / y)
    fault = spacing_fault(sp)
    if fault:
        faults.append(Fault(source.path, rid, f"line {line_no}: the spacing x_mm / x, "
                                              f"y_mm / y: {fault}"))
        return None
    return sp


def choose_spec(images: list[ImageLandmarks], domain: str | None = None,
                spec: MeasurementSpec | None = None, source: str = "",
                ) -> tuple[MeasurementSpec, list[ImageLandmarks], list[str]]:
    """The spec for ``images`` and the images it applies to (plus the ids skipped because
    the file gives them another domain than ``domain``).

    ``spec`` wins; else the built-in spec of ``domain`` (or of the file's ``domain``
    column) whose landmark names are all present; when no built-in spec declares that
    domain, the first built-in spec whose names are all present. One file is measured
    with one spec.
    """
    skipped = []
    if domain is not None:
        kept = [i for i in images if i.domain in (None, domain)]
        skipped = [i.image for i in images if i.domain not in (None, domain)]
        if not kept:
            raise InputError(f"{source}: no image of domain {domain!r} (the file's domains: "
                             f"{sorted({str(i.domain) for i in images})})")
        images = kept
    if spec is not None:
        return spec, images, skipped
    chosen: dict[str, list[str]] = {}
    unmatched = []
    for img in images:
        d = domain or img.domain
        found = _builtin_for(img, d)
        if found is None:
            unmatched.append(img.image)
        else:
            chosen.setdefault(found.name, []).append(img.image)
    if unmatched:
        where = f"domain {domain or images[0].domain!r}" if (domain or images[0].domain) \
            else "any domain"
        raise InputError(f"{source}: no built-in measurement spec fits image(s) "
                         f"{unmatched[:5]} ({where}; built-in: "
                         f"{', '.join(builtin_specs())}); give --spec FILE")
    if len(chosen) > 1:
        raise InputError(f"{source}: images need different specs "
                         f"{ {k: v[:3] for k, v in chosen.items()} }; give --domain or --spec")
    return builtin_specs()[next(iter(chosen))], images, skipped


def _builtin_for(img: ImageLandmarks, domain: str | None) -> MeasurementSpec | None:
    dims = img.points.shape[-1]

    def fits(spec: MeasurementSpec) -> bool:  # 2-D specs for images, 3-D for volumes
        return spec.dimensions() in (None, dims)

    if domain is not None and not any(fits(s) for s in specs_for_domain(domain)):
        domain = None  # no built-in spec declares this domain: the names decide
    if all(n is not None for n in img.names):
        found = spec_for(img.names, domain)
        if found is None or fits(found):
            return found
        return next((s for s in automatic_specs() if fits(s) and covers(s, img.names)
                     and (domain is None or s.domain == domain)), None)
    for spec in automatic_specs():  # unnamed landmarks: the spec's order decides
        if (domain is None or spec.domain == domain) and spec.landmarks and fits(spec) and \
                covers(spec, _names(img, spec)):
            return spec
    return None


def _names(img: ImageLandmarks, spec: MeasurementSpec) -> list[str]:
    """Each landmark's name: the file's, else the spec's ordered list, else ''."""
    order = spec.landmarks or []
    return [n if n is not None else (order[j] if j < len(order) else "")
            for j, n in enumerate(img.names)]


def measure_images(spec: MeasurementSpec, images: list[ImageLandmarks],
                   truncate: bool = False, skipped: list[str] | None = None,
                   ) -> MeasurementTable:
    """Measure and classify every image (vectorised over images)."""
    used = list(spec.landmarks_used())
    dims = images[0].points.shape[-1] if images else 2
    if any(img.points.shape[-1] != dims for img in images):
        raise InputError("images and volumes cannot be measured together")
    pts = np.full((len(images), len(used), dims), np.nan)
    for n, img in enumerate(images):
        index = {}
        for j, name in enumerate(_names(img, spec)):
            index.setdefault(normalise_name(name), j)
        for u, name in enumerate(used):
            j = index.get(normalise_name(name))
            if j is not None:
                pts[n, u] = img.points[j]
    if dims == 3:  # volumes: world millimetres
        spacing = None
    else:
        spacing = np.array([img.spacing or (np.nan, np.nan) for img in images],
                           dtype=np.float64).reshape(-1, 2)
    mirrored = np.array([img.mirrored for img in images], dtype=bool)
    values = measure_batch(spec, pts, used, spacing, mirrored, truncate)
    return MeasurementTable(spec, images, values, classify_batch(spec, values), truncate,
                            list(skipped or []))


def measure_file(path: str | Path, spec: MeasurementSpec | None = None,
                 domain: str | None = None, spacing: tuple[float, float] | None = None,
                 truncate: bool = False) -> MeasurementTable:
    """Read a prediction CSV, choose the spec (see :func:`choose_spec`) and measure. A
    volume table (see :func:`read_volume_images`) is measured in world mm: ``spacing`` and
    ``truncate`` apply to 2-D images only and are refused for it."""
    if is_volume_table(path):
        if spacing is not None or truncate:
            raise InputError(f"{path}: a volume table holds world millimetres; --spacing "
                             "and --truncate apply to 2-D images only")
        images = read_volume_images(path)
    else:
        images = read_landmark_images(path, spacing)
    if not images:
        raise InputError(f"{path}: no landmarks in this file")
    chosen, kept, skipped = choose_spec(images, domain, spec, str(path))
    unnamed = [img.image for img in kept if any(n is None for n in img.names)]
    if unnamed and chosen.landmarks is None:
        raise InputError(f"{path}: no landmark names for image(s) {unnamed[:5]} (no 'name' "
                         f"column) and spec {chosen.name} lists no landmark order "
                         "('landmarks'); add either")
    unknown = unknown_landmarks(chosen, list(dict.fromkeys(
        n for img in kept for n in _names(img, chosen) if n)))
    if unknown:
        raise InputError(f"{path}: {unknown}")
    faults = numbering_faults(str(path), chosen, kept, domain)
    if faults:
        raise PredictionError(str(path), faults)
    return measure_images(chosen, kept, truncate, skipped)


def numbering_faults(path: str, spec: MeasurementSpec, images: list[ImageLandmarks],
                     domain: str | None = None) -> list[Fault]:
    """Landmarks whose name in the file the spec's ordered ``landmarks`` gives another
    number (the file says 3 is sella, the spec says sella is 1): a mislabelled file.

    Checked for an image that claims the spec's numbering: its domain (``domain``, else
    the file's) is the spec's, or it has as many landmarks as the spec lists. A name the
    spec does not list is no disagreement (another naming); neither is a file without
    names (it is read in the spec's order).
    """
    order = spec.landmarks
    if not order:
        return []
    number = {normalise_name(n): j + 1 for j, n in enumerate(order)}
    faults = []
    for img in images:
        if not ((spec.domain is not None and (domain or img.domain) == spec.domain)
                or len(img.names) == len(order)):
            continue
        for j, name in enumerate(img.names):
            where = number.get(normalise_name(name)) if name is not None else None
            if where is None or where == j + 1:
                continue
            here = f" and {j + 1} {order[j]!r}" if j < len(order) else \
                f" (it lists {len(order)} landmarks)"
            faults.append(Fault(path, img.image, f"landmark {j + 1} is named {name!r}, but "
                                                 f"spec {spec.name} numbers {name!r} "
                                                 f"{where}{here}: the names and numbers "
                                                 "disagree"))
    return faults


def write_measurements(path: str | Path, table: MeasurementTable) -> None:
    """Write the one-row-per-image CSV atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=table.columns(), lineterminator="\n")
    writer.writeheader()
    writer.writerows(table.rows())
    atomic_write_text(path, buf.getvalue())


def default_output(predictions: str | Path) -> Path:
    """``<stem>_measurements.csv`` beside the prediction CSV."""
    p = Path(predictions)
    return p.with_name(f"{p.stem}_measurements.csv")
