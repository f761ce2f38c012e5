"""One patient, one report: the landmarks of an image traced on it, every analysis read
against its norms (value, norm with its source, deviation in SD, meaning in words), the
QC verdict, the model and the spacing, as a self-contained HTML page and a PDF; a batch
also writes one CSV of all measurements (docs/report.md).

    from unilandmark.reporting import report_images
    outcome = report_images(["scan.jpg"], "reports", spacing=(0.1, 0.1))

Layer: beside ``workflows`` (it predicts with ``inference`` and measures with
``measure``); the CLI's ``report`` command is a thin wrapper over :func:`report_images`.
"""

from .analyses import choose_analyses, default_analyses
from .batch import TABLE_NAME, BatchOutcome, image_inputs, report_images, write_table
from .content import ModelInfo, PatientReport, model_info, patient_report, qc_words
from .html import render_html
from .pdf import render_pdf

__all__ = ["BatchOutcome", "ModelInfo", "PatientReport", "TABLE_NAME", "choose_analyses",
           "default_analyses", "image_inputs", "model_info", "patient_report", "qc_words",
           "render_html", "render_pdf", "report_images", "write_table"]
