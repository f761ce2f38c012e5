"""``predict`` says what to do with each image (issue 23; docs/quality.md, "QC per image"):
images out of scope are error lines and exit code 2 unless --keep-going, images to review
are named with their landmarks; --spacing-file gives each image its own spacing; overlays
ring the flagged landmarks, at full resolution on request."""

from __future__ import annotations

import shutil

from PIL import Image
from typer.testing import CliRunner

from unilandmark.cli import app
from unilandmark.predictions.table import read_prediction_file


def test_a_hand_image_given_to_the_head_model_is_out_of_scope(hand_root, isbi_root,
                                                               tmp_path):
    images = tmp_path / "in"
    images.mkdir()
    hand = sorted((hand_root / "images").iterdir())[0]
    ceph = next((isbi_root / "RawImage" / "Test1Data").iterdir())
    shutil.copy(hand, images / f"hand{hand.suffix}")
    shutil.copy(ceph, images / f"ceph{ceph.suffix}")
    out = tmp_path / "p.csv"
    args = ["predict", str(images), "--out", str(out), "--spacing", "0.1", "--device", "cpu"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2, r.output
    assert f"error: {images / f'hand{hand.suffix}'}: out of scope: " in r.stderr
    assert "1 of 2 images out of scope for this model" in r.stderr
    rows = read_prediction_file(out).rows
    assert {row["image"] for row in rows} == {"hand", "ceph"}  # written either way
    assert {row["qc"] for row in rows if row["image"] == "hand"} == {"fail"}
    ceph_qc = {row["qc"] for row in rows if row["image"] == "ceph"}
    if ceph_qc == {"review"}:
        assert "ceph: check " in r.stdout  # the landmarks to check, named
    r = CliRunner().invoke(app, [*args, "--keep-going"])
    assert r.exit_code == 0, r.output
    assert "out of scope: " in r.stderr


def test_spacing_file_and_full_resolution_overlays(isbi_root, tmp_path):
    images = tmp_path / "in"
    images.mkdir()
    cephs = sorted((isbi_root / "RawImage" / "Test1Data").iterdir())[:2]
    for c in cephs:
        shutil.copy(c, images / c.name)
    table = tmp_path / "spacings.csv"
    table.write_text(f"image,spacing\n{cephs[0].name},0.11\n{cephs[1].stem},0.09\n"
                     "nothere.bmp,0.1\n")
    out, overlays = tmp_path / "p.csv", tmp_path / "overlays"
    r = CliRunner().invoke(app, ["predict", str(images), "--out", str(out), "--spacing-file",
                                 str(table), "--overlay", str(overlays),
                                 "--overlay-full-resolution", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert f"--spacing-file: 2 of 2 images given a spacing by {table}" in r.stdout
    assert "1 entry matched no image (nothere.bmp)" in r.stderr
    rows = read_prediction_file(out).rows
    by_image = {row["image"]: row for row in rows}
    assert by_image[cephs[0].stem]["spacing_x"] == "0.11"
    assert by_image[cephs[1].stem]["spacing_x"] == "0.09"
    assert {row["spacing_source"] for row in rows} == {"spacing-file"}
    width = Image.open(overlays / f"{cephs[0].stem}.png").size[0]
    assert width >= Image.open(cephs[0]).size[0]  # the image at its own pixel size
