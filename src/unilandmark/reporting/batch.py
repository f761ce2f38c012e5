"""``unilandmark report``: predict the landmarks of each image, then write one HTML page
and one PDF per image and one CSV of every image's measurements (one row per image).

A batch survives bad files: an image that cannot be read or reported is listed with its
reason and the others go on (the caller exits non-zero at the end). Every file is
written atomically: a killed batch leaves whole files only.
"""

from __future__ import annotations

import csv
import io
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..core.atomic import atomic_write_text
from ..core.errors import InputError
from ..core.naming import unique_image_ids
from ..inference.results import READ_ERRORS, LandmarkResult
from ..measure.files import ImageLandmarks, measure_images
from ..measure.spec import MeasurementSpec
from .analyses import choose_analyses
from .content import ModelInfo, PatientReport, model_info, patient_report
from .figure import traced_png
from .html import render_html
from .pdf import render_pdf

#: the batch's CSV of measurements, in the output folder
TABLE_NAME = "measurements.csv"
#: columns of the batch CSV before the analyses' columns
LEAD_COLUMNS = ("image", "file", "qc", "flagged", "orientation", "spacing_x", "spacing_y",
                "spacing_source", "model")
#: the measurement table's own columns the batch CSV gives once (in ``LEAD_COLUMNS``)
_SHARED = {"image", "orientation", "spacing_x", "spacing_y", "coordinates", "spec"}


@dataclass
class BatchOutcome:
    """What a batch wrote: per image (id, html, pdf, report), the CSV (None when no image
    was reported), the inputs that failed (input, reason) and how many folder files were
    skipped as not images."""

    written: list[tuple[str, Path, Path, PatientReport]] = field(default_factory=list)
    table: Path | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)
    skipped: int = 0


def image_inputs(items: Sequence[str | os.PathLike]) -> tuple[list[Path], list[tuple[str, str]],
                                                             int]:
    """The image files to report, in order: files as given, every image file of a folder
    (sorted, not recursive, hidden files left out). Returns (paths, [(input, reason)] for
    inputs that do not exist or hold no image, number of folder files that are not
    images)."""
    from ..inference.inputs import image_paths

    return image_paths(items)


def report_images(inputs: Sequence[str | os.PathLike], out: str | os.PathLike,
                  checkpoint: str | os.PathLike | None = None,
                  analyses: Sequence[str] | None = None,
                  spacing: tuple[float, float] | None = None, domain: str | None = None,
                  device: str = "cpu", date: str | None = None,
                  on_report: Callable[[str, Path, Path, PatientReport], None] | None = None,
                  spacing_file: str | os.PathLike | None = None) -> BatchOutcome:
    """Report every image of ``inputs`` (files and folders) into the folder ``out``.

    ``checkpoint``: a model file or a built-in model name (default: the built-in head
    model). ``analyses``: built-in names or spec YAML paths (default: every built-in
    analysis of the model's domain that its landmarks allow). ``spacing``: mm per pixel
    (x, y) for images whose file gives none; ``spacing_file``: a CSV giving each image its
    own (``predict --spacing-file``, :func:`..imageio.spacing_file.read_spacing_table`).
    ``date``: the date printed (default: now).
    ``on_report`` is called as each image's files are written.
    """
    out = Path(out)
    asked = choose_analyses(analyses, "") if analyses else None  # refused before the model
    paths, failures, skipped = image_inputs(inputs)
    outcome = BatchOutcome(failures=failures, skipped=skipped)
    spacings = None
    if spacing_file is not None:
        from ..imageio.spacing_file import read_spacing_table, spacings_for

        spacings, _ = spacings_for(paths, read_spacing_table(spacing_file),
                                   Path(spacing_file).parent)
    detector = _detector(checkpoint, device)
    domain = _domain(detector, domain)
    chosen = asked or choose_analyses(None, domain)
    model = model_info(checkpoint)
    ids = defaultdict(list)
    for path, rid in zip(paths, unique_image_ids(paths), strict=True):
        ids[os.path.abspath(path)].append(rid)
    images: list[ImageLandmarks] = []
    results: list[LandmarkResult] = []
    for result in detector.iter_predict(
            paths, domain, spacing=spacing, batch_size=2, readers=0, spacings=spacings,
            on_failure=lambda f: outcome.failures.append((f.item, f.reason))):
        queue = ids.get(os.path.abspath(result.image_path or ""))
        rid = queue.pop(0) if queue else result.id
        try:
            html, pdf, report = _write_one(result, rid, out, chosen, model, date,
                                           detector.calibrations.get(domain))
        except READ_ERRORS as err:
            outcome.failures.append((str(result.image_path), str(err)))
            continue
        outcome.written.append((rid, html, pdf, report))
        results.append(result)
        images.append(ImageLandmarks(rid, result.points, tuple(result.names), result.spacing,
                                     result.orientation == "mirrored", result.domain))
        if on_report is not None:
            on_report(rid, html, pdf, report)
    if images:
        specs = [spec for spec, _ in chosen
                 if any(sec.spec.name == spec.name for _, _, _, r in outcome.written
                        for sec in r.sections)]
        outcome.table = out / TABLE_NAME
        write_table(outcome.table, images, results, specs, model)
    return outcome


def _detector(checkpoint, device: str):
    """The 2-D model to predict with; a volume model is refused (a report is of a 2-D
    radiograph)."""
    from ..checkpoints.builtin import model_path
    from ..checkpoints.checkpoint import load_checkpoint
    from ..inference.detector import Detector
    from ..inference.volume_detector import is_volume_model

    path = model_path(checkpoint)
    state = load_checkpoint(path)
    if is_volume_model(state):
        raise InputError(f"{path}: a volume model; report is for 2-D images (for volumes: "
                         "predict, then measure)")
    return Detector.from_checkpoint_state(state, device, source=str(path))


def _domain(detector, domain: str | None) -> str:
    if domain is not None:
        if domain not in detector.domains:
            raise InputError(f"unknown domain {domain!r}; this model knows "
                             f"{sorted(detector.domains)}")
        return domain
    if len(detector.domains) != 1:
        raise InputError(f"give --domain; this model knows {sorted(detector.domains)}")
    return next(iter(detector.domains))


def _write_one(result: LandmarkResult, rid: str, out: Path,
               analyses: list[tuple[MeasurementSpec, bool]], model: ModelInfo,
               date: str | None, calibration: dict | None = None,
               ) -> tuple[Path, Path, PatientReport]:
    from dataclasses import replace

    report = patient_report(replace(result, id=rid), analyses, model, date, calibration)
    html = out / f"{rid}.html"
    atomic_write_text(html, render_html(report, traced_png(report)))
    pdf = render_pdf(report, out / f"{rid}.pdf")
    return html, pdf, report


def write_table(path: Path, images: list[ImageLandmarks], results: list[LandmarkResult],
                specs: list[MeasurementSpec], model: ModelInfo) -> None:
    """One row per image: :data:`LEAD_COLUMNS`, then per analysis its measurement CSV
    columns (values, classes and their words, deviations in SD; docs/measurements.md),
    each prefixed with ``<analysis>.``; written atomically."""
    rows = []
    for img, result in zip(images, results, strict=True):
        flagged = [] if result.flags is None else \
            [n for n, f in zip(result.names, result.flags, strict=True) if f]
        sp = result.spacing
        rows.append({"image": img.image, "file": str(result.image_path or ""),
                     "qc": result.qc or "", "flagged": "; ".join(flagged),
                     "orientation": result.orientation,
                     "spacing_x": f"{sp[0]:g}" if sp else "",
                     "spacing_y": f"{sp[1]:g}" if sp else "",
                     "spacing_source": result.spacing_source or "", "model": model.words()})
    columns = list(LEAD_COLUMNS)
    for spec in specs:
        table = measure_images(spec, images)
        own = [c for c in table.columns() if c not in _SHARED]
        columns += [f"{spec.name}.{c}" for c in own]
        for row, measured in zip(rows, table.rows(), strict=True):
            row.update({f"{spec.name}.{c}": measured[c] for c in own})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
