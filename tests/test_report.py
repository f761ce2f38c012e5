"""``unilandmark report``: one HTML page and one PDF per image, one CSV per batch
(docs/report.md). On a real ISBI 2015 image with the built-in model (the PDF read back
with poppler's ``pdftotext`` and ``pdftoppm``), and on phantom heads with a tiny trained
model (the batch CSV, a bad file in the batch, a user's own analysis)."""

from __future__ import annotations

import csv
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from unilandmark.cli import app
from unilandmark.reporting import TABLE_NAME, report_images
from unilandmark.reporting.text import reading_norm, value_text
from unilandmark.training.fit import fit

from .conftest import phantom_config

ISBI_IMAGE = Path("RawImage") / "Test1Data" / "151.jpg"
DATE = "2025-01-02 10:00"


def _poppler() -> None:
    missing = [tool for tool in ("pdftotext", "pdftoppm") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not found: install poppler-utils (apt-get "
                    "install -y poppler-utils; .ci/run does) to read the PDF back")


def _rows(path):
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, list(reader)


def _self_contained(html: str) -> None:
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"<(script|link|iframe|object)\b", html, re.I)
    assert not re.search(r"\b(src|href)\s*=\s*\"(?!data:)", html, re.I)
    assert "url(" not in html and "@import" not in html
    assert html.count("src=\"data:image/png;base64,") == 1


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- a real cephalogram, the built-in model --------------------------------------------------
@pytest.fixture(scope="module")
def isbi_report(isbi_root, tmp_path_factory):
    _poppler()
    image = isbi_root / ISBI_IMAGE
    if not image.is_file():
        pytest.skip(f"{image} not found (the ISBI 2015 Test1 images)")
    out = tmp_path_factory.mktemp("isbi-report")
    outcome = report_images([image], out, spacing=(0.1, 0.1), device="cpu", date=DATE)
    assert outcome.failures == []
    return out, outcome


def test_isbi_report_html_is_self_contained_and_complete(isbi_report):
    out, outcome = isbi_report
    (rid, html_path, pdf_path, report), = outcome.written
    assert rid == "151" and html_path == out / "151.html" and pdf_path == out / "151.pdf"
    html = html_path.read_text(encoding="utf-8")
    _self_contained(html)
    for name in report.names:
        assert f"<td>{name}</td>" in html
    titles = [sec.title for sec in report.sections]
    assert titles == ["Steiner analysis (skeletal)", "Downs analysis (skeletal pattern)",
                      "Björk-Jarabak analysis", "McNamara analysis (partial)",
                      "Holdaway analysis (partial)", "ISBI 2015 challenge measurements"]
    assert report.left_out == ()
    for sec in report.sections:
        for row in sec.rows:
            assert value_text(row.reading) in html
            assert math.isfinite(row.reading.value), (sec.title, row.reading.name)
    assert "0.1 x 0.1 mm per pixel, given by the user (--spacing)" in html
    assert report.model.name == "head-mean" and report.model.builtin and report.model.provenance
    assert "built-in model head-mean: ISBI 2015 cephalograms" in html
    assert "gu2net_isbi2015_head" in html and DATE in html
    headline = {"pass": "pass", "review": "check", "fail": "out of scope"}[report.qc]
    assert report.qc_words.startswith(headline)
    if report.qc == "review":
        for name in report.flagged_names:
            assert name in report.qc_words


def test_isbi_report_pdf_reads_back_with_names_values_and_norms(isbi_report):
    out, outcome = isbi_report
    (_, _, pdf_path, report), = outcome.written
    text = subprocess.run(["pdftotext", "-layout", str(pdf_path), "-"], check=True,
                          capture_output=True, text=True).stdout
    flat = _one_line(text)
    for name in report.names:
        assert name in flat, name
    for name in report.flagged_names:
        assert re.search(rf"{re.escape(name)} \(\d\.\d\d\) flagged", flat), name
    assert _one_line(f"Quality check: {report.qc_words}") in flat
    for sec in report.sections:
        assert sec.title in flat
        for row in sec.rows:
            r = row.reading
            assert re.search(rf"(^|\s){re.escape(r.name)}\s+{re.escape(value_text(r))}",
                             text, re.M), (sec.title, r.name)
            norm = reading_norm(r)
            if norm:  # a long norm wraps in its column: its first part is on the row
                assert norm.split(" (range")[0] in flat, (sec.title, r.name)
            if r.norm is not None:
                assert r.norm.source.split(" (")[0] in flat
    assert "Norms vary with age, sex and ethnicity" in flat
    assert "Substitution: articulare for condylion" in flat
    # and as pictures: an A4 page 1 (about 1:1.414)
    subprocess.run(["pdftoppm", "-r", "30", "-png", "-f", "1", "-l", "1", str(pdf_path),
                    str(out / "page")], check=True)
    page, = out.glob("page*.png")
    from PIL import Image

    with Image.open(page) as im:
        w, h = im.size
    assert h / w == pytest.approx(11.69 / 8.27, rel=0.02)


def test_isbi_report_csv_has_every_analysis(isbi_report):
    out, outcome = isbi_report
    header, (row,) = _rows(out / TABLE_NAME)
    (_, _, _, report), = outcome.written
    assert header[:9] == ["image", "file", "qc", "flagged", "orientation", "spacing_x",
                          "spacing_y", "spacing_source", "model"]
    assert row["image"] == "151" and row["spacing_source"] == "option"
    for sec in report.sections:
        for r in sec.rows:
            assert float(row[f"{sec.spec.name}.{r.reading.name}"]) == \
                pytest.approx(r.reading.value, abs=1e-5)
    assert row["isbi2015.ANB_class_label"] in {"skeletal class I (normal)",
                                               "skeletal class II", "skeletal class III"}
    assert row["steiner.ANB_norm_sd"] != ""


# -- phantom heads, a tiny model: the batch ------------------------------------------------
@pytest.fixture(scope="module")
def tiny_head_model(phantoms, tmp_path_factory):
    """A 2-epoch head model on 32 x 32 inputs: for the mechanics, not the accuracy."""
    out = tmp_path_factory.mktemp("tiny-report")
    cfg = phantom_config(phantoms, out, domains=("head",), epochs=2, size=32, threads=1)
    return fit(cfg, progress=False, log=lambda *_: None).best_path


USER_SPEC = """\
name: phantom-face
title: Phantom face (a user's analysis)
analysis: true
domain: head
notes: [made-up norms for a test]
points: {S: sella, N: nasion, I: incisor, Me: menton}
measurements:
  - name: lower_third
    description: 100 |I - Me| / |N - Me|
    ratio: [[I, Me], [N, Me]]
    unit: percent
    norm: {mean: 30, sd: 5, source: this test, population: phantoms}
    interpretation: {below: short lower third, within: fine, above: long lower third}
  - name: SN
    distance: [S, N]
    norm: {min: 1, max: 2, source: this test}
not_computed:
  - {name: ANB, reason: the phantoms have no A and B points}
"""


def _hand_ratio(report, a, b, c, d, spacing):
    pts = dict(zip(report.names, report.points, strict=True))

    def length(p, q):
        return math.hypot((pts[q][0] - pts[p][0]) * spacing[0],
                          (pts[q][1] - pts[p][1]) * spacing[1])

    return length(a, b) / length(c, d)


def test_a_batch_writes_one_csv_row_per_image_and_survives_a_bad_file(
        tiny_head_model, phantoms, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("head_0000.png", "head_0001.png", "head_0002.png"):
        shutil.copy(phantoms / "head" / "images" / name, images / name)
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    spec = tmp_path / "phantom.yaml"
    spec.write_text(USER_SPEC)
    out = tmp_path / "reports"
    outcome = report_images([images], out, tiny_head_model, spacing=(0.8, 0.8),
                            device="cpu", date=DATE)
    assert [item for item, _ in outcome.failures] == [str(images / "broken.png")]
    assert [rid for rid, *_ in outcome.written] == ["head_0000", "head_0001", "head_0002"]
    header, rows = _rows(out / TABLE_NAME)
    assert [r["image"] for r in rows] == ["head_0000", "head_0001", "head_0002"]
    # the default analyses the phantom's landmarks allow (sella, nasion, gonion, menton):
    # Björk-Jarabak's polygon in part, and the ISBI facial height index
    (_, _, _, first), = [w for w in outcome.written if w[0] == "head_0000"]
    assert [sec.spec.name for sec in first.sections] == ["bjork-jarabak", "isbi2015"]
    assert {name for name, _ in first.left_out} == {
        "Steiner analysis (skeletal)", "Downs analysis (skeletal pattern)",
        "McNamara analysis (partial)", "Holdaway analysis (partial)"}
    for rid, html, pdf, report in outcome.written:
        assert html.is_file() and pdf.read_bytes().startswith(b"%PDF")
        _self_contained(html.read_text(encoding="utf-8"))
        row = next(r for r in rows if r["image"] == rid)
        ratio = 100 * _hand_ratio(report, "sella", "gonion", "nasion", "menton", (0.8, 0.8))
        assert float(row["bjork-jarabak.facial_height_ratio"]) == pytest.approx(ratio,
                                                                               abs=1e-4)
        assert float(row["isbi2015.FHI"]) == pytest.approx(ratio / 100, abs=1e-5)
        assert row["bjork-jarabak.saddle_angle"] == ""  # no articulare
        assert row["isbi2015.FHI_class_label"] in {"normal", "short face tendency",
                                                   "long face tendency"}
    # the same batch through the command, with the user's analysis: the bad file is named,
    # the exit code is 2, the others are reported
    r = CliRunner().invoke(app, ["report", str(images), "--out", str(out), "--checkpoint",
                                 str(tiny_head_model), "--spacing", "0.8", "--device",
                                 "cpu", "--analysis", str(spec), "--analysis",
                                 "bjork-jarabak", "--date", DATE])
    assert r.exit_code == 2, r.output
    assert "1 of 4 input(s) could not be reported" in r.output
    assert f"{images / 'broken.png'}:" in r.output
    assert f"wrote 3 reports to {out}" in r.output
    header, rows = _rows(out / TABLE_NAME)
    assert len(rows) == 3
    assert [c for c in header if c.startswith("phantom-face.")] == [
        "phantom-face.lower_third", "phantom-face.SN", "phantom-face.lower_third_norm_sd"]
    assert not any(c.startswith("isbi2015.") for c in header)
    html = (out / "head_0001.html").read_text(encoding="utf-8")
    assert "Phantom face (a user&#x27;s analysis)" in html
    assert "the phantoms have no A and B points" in html
    assert "30 ± 5 %" in html and "1 to 2 mm" in html


def test_report_refuses_an_unknown_analysis_before_predicting(tiny_head_model, tmp_path):
    r = CliRunner().invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "o"),
                                 "--checkpoint", str(tiny_head_model), "--analysis",
                                 "stiener", "--device", "cpu"])
    assert r.exit_code == 2
    assert "no built-in measurement spec or analysis 'stiener' (closest: steiner" in r.output
    assert not (tmp_path / "o" / TABLE_NAME).exists()


def test_report_refuses_a_volume_model(tmp_path):
    r = CliRunner().invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "o"),
                                 "--checkpoint", "brain", "--device", "cpu"])
    assert r.exit_code == 2
    assert "a volume model; report is for 2-D images" in r.output


def _result(flags, qc, risk=True):
    import numpy as np

    from unilandmark.inference.results import LandmarkResult

    k = len(flags)
    return LandmarkResult("x", "head", tuple(f"l{j}" for j in range(k)),
                          np.zeros((k, 2), np.float32), np.ones(k, np.float32), (0.1, 0.1),
                          None, spacing_source="file", flags=np.asarray(flags, bool), qc=qc,
                          risk=np.zeros(k, np.float32) if risk else None)


def test_qc_and_spacing_in_words():
    from unilandmark.reporting import qc_words
    from unilandmark.reporting.content import spacing_words

    assert qc_words(_result([0, 0, 0], "pass")) == \
        "pass: every landmark as confident as on the validation images"
    assert qc_words(_result([0, 1, 1], "review")) == "check 2 landmarks: l1, l2"
    assert qc_words(_result([1, 1, 1], "fail")).startswith(
        "out of scope: 3 of 3 landmarks flagged, the image as a whole was not understood")
    assert qc_words(_result([0, 0], None)) == "not assessed (this model gives no QC verdict)"
    assert qc_words(_result([0, 0], "pass", risk=False)).startswith(
        "pass: no hard rule fired (this model is uncalibrated")
    assert spacing_words(_result([0], "pass")) == \
        "0.1 x 0.1 mm per pixel, from the image file's header"
