"""What one patient's report says, as plain data: the image, the landmarks and their
flags, the QC verdict and the spacing in words, the model, and each analysis read
against its norms. The renderers (:mod:`.html`, :mod:`.pdf`) only lay this out.

Conventions: points are ``(x, y)`` original pixels, x right, y down; the analyses assume
the patient facing right (a mirrored image is measured in that frame); angles are in
degrees, distances in mm (they need the pixel spacing).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.version import __version__
from ..inference.results import LandmarkResult
from ..measure.compute import measure, normalise_name
from ..measure.norms import Reading, readings
from ..measure.spec import MeasurementSpec
from ..quality.verdict import habitual, verdict

#: the source of a result's spacing, in words (``LandmarkResult.spacing_source``)
SPACING_SOURCES = {
    "ruler": "measured with a ruler on this image (its NAME.spacing.json)",
    "spacing-file": "given per image (--spacing-file)",
    "file": "from the image file's header",
    "option": "given by the user (--spacing)",
    "model": "assumed: the model's training spacing (--assume-training-spacing)",
}


@dataclass(frozen=True)
class ModelInfo:
    """The model that placed the landmarks: ``name`` (a built-in name or the file name),
    ``description`` of what it learned, ``file``, ``provenance`` (the built-in model's
    provenance name), the first 12 hex digits of the file's ``sha256`` (identifies the
    weights), the unilandmark ``version`` that ran it, and whether it is ``builtin``."""

    name: str
    description: str
    file: str
    provenance: str
    sha256: str
    version: str = __version__
    builtin: bool = False

    def words(self) -> str:
        """One line: ``built-in model head: ISBI 2015 ...; gu2net_isbi2015_head; weights
        sha256 654523b9d2d3; unilandmark 0.1.0``."""
        first = f"built-in model {self.name}" if self.builtin else self.file
        parts = [first + (f": {self.description}" if self.description else "")]
        if self.provenance:
            parts.append(self.provenance)
        parts.append(f"weights sha256 {self.sha256}")
        parts.append(f"unilandmark {self.version}")
        return "; ".join(parts)


def model_info(checkpoint: str | os.PathLike | None) -> ModelInfo:
    """:class:`ModelInfo` of a model given as prediction takes it (a path, a built-in
    name, or None for the default built-in model)."""
    from ..checkpoints.builtin import BUILTIN_DESCRIPTIONS, builtin_name, model_path, provenance

    path = model_path(checkpoint)
    name = builtin_name(path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if name is not None:
        return ModelInfo(name, BUILTIN_DESCRIPTIONS.get(name, ""), path.name,
                         str(provenance(name).get("name", "")), digest.hexdigest()[:12],
                         builtin=True)
    return ModelInfo(path.name, "", str(path), "", digest.hexdigest()[:12])


@dataclass(frozen=True)
class Row:
    """One measurement of an analysis: its :class:`Reading`, ``why`` it has no value
    ('' where it has one), the landmarks it reads that the model lacks (``missing``) and
    the ``flagged`` landmarks it reads."""

    reading: Reading
    why: str
    missing: tuple[str, ...]
    flagged: tuple[str, ...]


@dataclass(frozen=True)
class Section:
    """One analysis of one image: the spec's words, its rows, what it leaves out."""

    spec: MeasurementSpec
    rows: tuple[Row, ...]

    @property
    def title(self) -> str:
        return self.spec.title or self.spec.name


@dataclass(frozen=True)
class PatientReport:
    """Everything one report shows (see the module doc for the conventions)."""

    image_id: str
    image_path: str
    domain: str
    names: tuple[str, ...]
    points: np.ndarray
    confidence: np.ndarray
    flags: np.ndarray
    qc: str | None
    qc_words: str
    spacing: tuple[float, float] | None
    spacing_words: str
    orientation: str
    model: ModelInfo
    date: str
    sections: tuple[Section, ...]
    left_out: tuple[tuple[str, str], ...]

    @property
    def flagged_names(self) -> tuple[str, ...]:
        return tuple(n for n, f in zip(self.names, self.flags, strict=True) if f)


def qc_words(result: LandmarkResult, calibration: dict | None = None) -> str:
    """The QC verdict in words, as ``predict`` prints it (:mod:`..quality.verdict`):
    ``pass: ...``, ``check N landmarks: X, Y`` (those the model always flags named so,
    given its ``calibration``) or ``out of scope: ...``; ``not assessed`` without a QC."""
    if result.qc is None:
        return "not assessed (this model gives no QC verdict)"
    return verdict(result, always=habitual(calibration, len(result.names))).sentence


def spacing_words(result: LandmarkResult) -> str:
    """``0.1 x 0.1 mm per pixel, given by the user (--spacing)`` or why there is none."""
    if result.spacing is None:
        return ("unknown: no millimetres (give --spacing); angles and ratios computed in "
                "pixels, square pixels assumed")
    sx, sy = (float(v) for v in result.spacing)
    where = SPACING_SOURCES.get(result.spacing_source or "", result.spacing_source or "")
    return f"{sx:g} x {sy:g} mm per pixel, {where}" if where else \
        f"{sx:g} x {sy:g} mm per pixel"


def section(spec: MeasurementSpec, result: LandmarkResult) -> Section:
    """One analysis read on one result: values, norms, meanings, and for each value that
    is missing the reason (a landmark the model lacks, no spacing, undefined)."""
    have = {normalise_name(n): n for n in result.names}
    flags = np.zeros(len(result.names), bool) if result.flags is None else \
        np.asarray(result.flags, bool)
    flagged = {normalise_name(n) for n, f in zip(result.names, flags, strict=True) if f}
    spacing = None if result.spacing is None else tuple(float(v) for v in result.spacing)
    values = measure(spec, result.points, list(result.names), spacing,
                     mirrored=result.orientation == "mirrored")
    rows = []
    for reading in readings(spec, values):
        used = spec.landmarks_of(reading.name)
        missing = [n for n in used if normalise_name(n) not in have]
        why = ""
        if missing:
            why = f"needs {', '.join(missing)}: not among the model's landmarks"
        elif not math.isfinite(reading.value):
            why = ("needs the pixel spacing (give --spacing)" if reading.unit == "mm" and
                   spacing is None else "undefined for these points (a zero-length line)")
        rows.append(Row(reading, why, tuple(missing),
                        tuple(have[normalise_name(n)] for n in used
                              if normalise_name(n) in flagged)))
    return Section(spec, tuple(rows))


def patient_report(result: LandmarkResult, analyses: list[tuple[MeasurementSpec, bool]],
                   model: ModelInfo, date: str | None = None,
                   calibration: dict | None = None) -> PatientReport:
    """The report of one result. ``analyses``: (spec, requested) pairs; a spec not
    requested by name (a default) is shown only where the model's landmarks give at least
    one of its measurements, and listed in ``left_out`` otherwise. ``calibration``: the
    model's quality calibration for the result's domain (names the landmarks it always
    flags)."""
    sections, left_out = [], []
    for spec, requested in analyses:
        sec = section(spec, result)
        if requested or any(not r.missing for r in sec.rows):
            sections.append(sec)
        else:
            have = {normalise_name(n) for n in result.names}
            missing = [n for n in spec.landmarks_used() if normalise_name(n) not in have]
            left_out.append((sec.title, f"needs {', '.join(missing)}, which the model does "
                                        "not mark"))
    flags = np.zeros(len(result.names), bool) if result.flags is None else \
        np.asarray(result.flags, bool)
    return PatientReport(
        image_id=result.id, image_path=str(result.image_path or ""), domain=result.domain,
        names=tuple(result.names), points=np.asarray(result.points, np.float64),
        confidence=np.asarray(result.confidence, np.float64), flags=flags, qc=result.qc,
        qc_words=qc_words(result, calibration),
        spacing=None if result.spacing is None else tuple(float(v) for v in result.spacing),
        spacing_words=spacing_words(result), orientation=result.orientation, model=model,
        date=date or _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        sections=tuple(sections), left_out=tuple(left_out))


def image_label(report: PatientReport) -> str:
    """The image's name for a page title: its id, and the file name where it differs."""
    name = Path(report.image_path).name if report.image_path else ""
    return report.image_id if not name or Path(name).stem == report.image_id else \
        f"{report.image_id} ({name})"


def report_title(report: PatientReport) -> str:
    """``Cephalometric report: 001`` (a head), ``Landmark report: ...`` otherwise."""
    kind = "Cephalometric report" if report.domain == "head" else "Landmark report"
    return f"{kind}: {image_label(report)}"
