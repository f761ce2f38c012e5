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

Output columns: ``image``, one per measurement (spec order), ``<name>_class`` for each
measurement with classes, ``<name>_px`` for pixel fallbacks, then ``orientation``,
``spacing_x``, ``spacing_y``, ``coordinates`` (``float`` or ``truncated to integers``) and
``spec``.
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
from ..data.faults import Fault
from ..predictions.table import (
    PredictionError,
    PredictionFile,
    parse_point,
    read_predictions,
)
from .builtin import builtin_specs, covers, spec_for, specs_for_domain, unknown_landmarks
from .classes import classify_batch
from .compute import coordinate_fault, measure_batch, normalise_name
from .scoring import COORDINATES
from .spec import MeasurementSpec

ORIENTATIONS = ("original", "mirrored")


@dataclass(frozen=True)
class ImageLandmarks:
    """One image of a prediction CSV: points (K, 2) original pixels (NaN where absent),
    names (K,) (None where the file names none), spacing (sx, sy) mm or None."""

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
        rows = []
        for n, img in enumerate(self.images):
            row = {"image": img.image}
            for name in self.spec.names:
                row[name] = _fmt(self.values[name][n])
            for name in self.spec.classified():
                c = int(self.classes[name][n])
                row[f"{name}_class"] = str(c) if c > 0 else ""
            for name in self.spec.pixel_fallbacks():
                row[f"{name}_px"] = _fmt(self.values[f"{name}_px"][n])
            row["orientation"] = ORIENTATIONS[int(img.mirrored)]
            sp = img.spacing
            row["spacing_x"], row["spacing_y"] = (_fmt(sp[0]), _fmt(sp[1])) if sp else ("", "")
            row["coordinates"] = COORDINATES[self.truncate]
            row["spec"] = self.spec.name
            rows.append(row)
        return rows


def measurement_columns(spec: MeasurementSpec) -> list[str]:
    return ["image", *spec.names, *(f"{n}_class" for n in spec.classified()),
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
    if domain is not None and not specs_for_domain(domain):
        domain = None  # no built-in spec declares this domain: the names decide
    if all(n is not None for n in img.names):
        return spec_for(img.names, domain)
    for spec in builtin_specs().values():  # unnamed landmarks: the spec's order decides
        if (domain is None or spec.domain == domain) and spec.landmarks and \
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
    pts = np.full((len(images), len(used), 2), np.nan)
    for n, img in enumerate(images):
        index = {}
        for j, name in enumerate(_names(img, spec)):
            index.setdefault(normalise_name(name), j)
        for u, name in enumerate(used):
            j = index.get(normalise_name(name))
            if j is not None:
                pts[n, u] = img.points[j]
    spacing = np.array([img.spacing or (np.nan, np.nan) for img in images], dtype=np.float64)
    mirrored = np.array([img.mirrored for img in images], dtype=bool)
    values = measure_batch(spec, pts, used, spacing.reshape(-1, 2), mirrored, truncate)
    return MeasurementTable(spec, images, values, classify_batch(spec, values), truncate,
                            list(skipped or []))


def measure_file(path: str | Path, spec: MeasurementSpec | None = None,
                 domain: str | None = None, spacing: tuple[float, float] | None = None,
                 truncate: bool = False) -> MeasurementTable:
    """Read a prediction CSV, choose the spec (see :func:`choose_spec`) and measure."""
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
