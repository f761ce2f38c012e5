"""Batch prediction that survives bad files (docs/prediction.md), and calibrated quality
flags end to end on a phantom-trained model (docs/quality.md)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from unilandmark.cli import app
from unilandmark.imageio.read import read_image, write_image
from unilandmark.inference.detector import Detector
from unilandmark.predictions.table import read_predictions


@pytest.fixture(scope="module")
def batch_folder(phantoms, tmp_path_factory):
    """20 images: 18 phantom PNGs, one JPEG named ``.png`` and one truncated PNG."""
    folder = tmp_path_factory.mktemp("batch")
    sources = sorted((phantoms / "head" / "images").glob("*.png"))[:19]
    for src in sources[:18]:
        shutil.copy(src, folder / src.name)
    array, _ = read_image(sources[18])
    write_image(folder / "misnamed.jpg", array)
    (folder / "misnamed.jpg").rename(folder / "misnamed.png")
    data = sources[0].read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    (folder / "notes.txt").write_text("not an image\n")
    return folder


def test_folder_with_bad_files_predicts_every_readable_one(trained_run, batch_folder, tmp_path):
    out = tmp_path / "pred.csv"
    out.write_text("stale content from an earlier run\n")
    r = CliRunner().invoke(app, ["predict", str(batch_folder), "--domain", "head",
                                 "--checkpoint", str(trained_run.best_path), "--out", str(out),
                                 "--batch-size", "3", "--device", "auto"])
    assert r.exit_code == 2, r.output
    assert "1 of 20 input(s) could not be predicted" in r.output
    assert f"{batch_folder / 'truncated.png'}: " in r.output
    assert "skipped 1 file(s) in the folders that are not images" in r.output
    table = read_predictions(out)
    images = {rid for rid, _ in table.points}
    assert len(images) == 19 and "misnamed" in images and "truncated" not in images
    k = len({lm for _, lm in table.points})
    assert len(table.points) == 19 * k
    assert set(table.qc) == images  # a QC status for every image
    assert [p.name for p in tmp_path.iterdir()] == ["pred.csv"]  # no temporary left


def test_reading_ahead_in_threads_changes_nothing(trained_run, batch_folder):
    detector = Detector.from_checkpoint(trained_run.best_path)
    paths = sorted(batch_folder.glob("*.png"))
    failed = {}
    results = {}
    for readers in (0, 3):
        failures = []
        results[readers] = detector.predict_many(paths, "head", batch_size=4, readers=readers,
                                                 on_failure=failures.append)
        failed[readers] = [(f.index, f.item) for f in failures]
    assert failed[0] == failed[3] == [(paths.index(batch_folder / "truncated.png"),
                                       str(batch_folder / "truncated.png"))]
    assert [r.id for r in results[0]] == [r.id for r in results[3]]
    for a, b in zip(results[0], results[3], strict=True):
        np.testing.assert_array_equal(a.points, b.points)
        assert a.points.dtype == np.float32
    with pytest.raises(ValueError, match="truncated"):  # without on_failure: raise
        detector.predict_many(paths, "head")


def test_all_inputs_failing_writes_nothing(trained_run, batch_folder, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two bad inputs\n{batch_folder / 'truncated.png'}\n\nmissing.png\n")
    out = tmp_path / "pred.csv"
    r = CliRunner().invoke(app, ["predict", "--list", str(listing), "--domain", "head",
                                 "--checkpoint", str(trained_run.best_path), "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert "2 of 2 input(s) could not be predicted; nothing written" in r.output
    assert f"{tmp_path / 'missing.png'}: no such file or folder" in r.output
    assert not out.exists()


def test_calibrate_then_predict_flags_and_evaluate_scores_them(trained_run, phantoms, tmp_path):
    runner = CliRunner()
    cal = tmp_path / "calibrated.pt"
    r = runner.invoke(app, ["calibrate", str(trained_run.best_path), "--out", str(cal),
                            "--domain", "chest", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "chest: risk of an error above" in r.output
    detector = Detector.from_checkpoint(cal)
    c = detector.calibrations["chest"]
    assert set(detector.calibrations) == {"chest"}
    assert c["validation"]["n_images"] == 8 and c["validation"]["split"] == "val"
    assert 0 < c["threshold"] <= 1 and len(c["weights"]) == len(c["features"])
    out = tmp_path / "chest.csv"
    r = runner.invoke(app, ["predict", str(phantoms / "chest" / "images"), "--domain", "chest",
                            "--checkpoint", str(cal), "--out", str(out)])
    assert r.exit_code == 0, r.output
    header = out.read_text().splitlines()[0]
    assert header.startswith("image,landmark,x,y,name,confidence,domain,risk,flag,qc,")
    r = runner.invoke(app, ["evaluate", "csv", "--root", str(phantoms / "chest" /
                                                             "landmarks.csv"),
                            "--split", "test", "--predictions", str(out), "--json",
                            str(tmp_path / "r.json"), "--figures", str(tmp_path / "fig")])
    assert r.exit_code == 0, r.output
    assert "flags (wrong = error >" in r.output and "risk-coverage (ordered by risk)" in r.output
    report = json.loads((tmp_path / "r.json").read_text())
    q = report["quality"]
    assert q["flags"]["n_points"] == 8 * 6 and set(q["qc"]) == {"pass", "review", "fail"}
    assert len(q["risk_coverage"]["coverage"]) == 20
    assert (tmp_path / "fig" / "risk_coverage.png").stat().st_size > 1000


def test_calibrate_refusals(trained_run, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["calibrate", str(trained_run.best_path), "--out",
                            str(tmp_path / "c.pt"), "--split", "test"])
    assert r.exit_code == 2 and "several domains" in r.output
    r = runner.invoke(app, ["calibrate", str(trained_run.best_path), "--out",
                            str(tmp_path / "c.pt"), "--domain", "knee"])
    assert r.exit_code == 2 and "unknown domain 'knee'" in r.output
    assert not (tmp_path / "c.pt").exists()


def test_calibration_on_easy_data_warns_and_never_flags_less_out_of_domain(
        trained_run, phantoms, tmp_path):
    """calibrate on a small, easy split (8 images) says why its flags are weak, and the
    calibrated model flags at least what the uncalibrated one flags on inputs unlike its
    validation images: an all-black image and another anatomy (issue 22, item 1)."""
    from PIL import Image

    cal = tmp_path / "calibrated.pt"
    r = CliRunner().invoke(app, ["calibrate", str(trained_run.best_path), "--out", str(cal),
                                 "--domain", "head", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "warning: head: only 8 validation images" in r.stderr
    n_wrong = Detector.from_checkpoint(cal).calibrations["head"]["validation"]["n_wrong"]
    assert ("validation points are wrong" in r.stderr) == (n_wrong < 5)
    black = tmp_path / "black.png"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(black)
    chest = sorted((phantoms / "chest" / "images").iterdir())[:4]
    inputs = [black, *chest]
    plain = Detector.from_checkpoint(trained_run.best_path).predict_many(inputs, "head")
    calibrated = Detector.from_checkpoint(cal).predict_many(inputs, "head")
    order = {"pass": 0, "review": 1, "fail": 2}
    for u, c in zip(plain, calibrated, strict=True):
        assert c.risk is not None and u.risk is None
        assert not (u.flags & ~c.flags).any(), (u.id, u.flags, c.flags)
        assert order[c.qc] >= order[u.qc]
