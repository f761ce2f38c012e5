import numpy as np
import pytest
from typer.testing import CliRunner

from unilandmark import read_image, synthetic_dataset
from unilandmark.cli import app
from unilandmark.imageio.read import write_image
from unilandmark.inference.detector import Detector


@pytest.fixture(scope="module")
def detector(trained_run):
    return Detector.from_checkpoint(trained_run.best_path)


@pytest.fixture(scope="module")
def head_records(phantoms):
    return synthetic_dataset(phantoms, "head").split_records("test")


def test_path_and_array_give_the_same_landmarks(detector, head_records):
    rec = head_records[0]
    by_path = detector.predict(rec.image_path, "head")
    array, _ = read_image(rec.image_path)
    by_array = detector.predict(array, "head", spacing=(0.8, 0.8))
    np.testing.assert_allclose(by_path.points, by_array.points)
    assert by_path.names[0] == "sella" and by_path.points.shape == (8, 2)
    assert by_path.spacing is None  # a PNG carries no spacing
    assert by_array.points_mm is not None
    np.testing.assert_allclose(by_array.points_mm, by_array.points * 0.8)
    assert ((0 <= by_path.confidence) & (by_path.confidence <= 1)).all()


def test_any_size_and_format_maps_back_to_original_pixels(detector, head_records, tmp_path):
    rec = head_records[1]
    array, _ = read_image(rec.image_path)
    big = np.kron(array, np.ones((3, 3), dtype=array.dtype))  # 192 x 192, exact 3x upscale
    write_image(tmp_path / "big.mha", big, spacing=(0.2, 0.2))
    small = detector.predict(rec.image_path, "head")
    large = detector.predict(tmp_path / "big.mha", "head")
    # pixel-centre convention: x_big = 3 x + 1. The network inputs differ slightly (the big
    # image is downsampled with anti-aliasing), so compare on average; the exact mapping is
    # tested in test_geometry.py.
    # bounds: about 3 x and 1.5 x the worst of 5 seeds (docs/testing.md, "Measured spread")
    assert np.abs(large.points - (3 * small.points + 1)).mean() < 0.5
    truth_big = 3 * rec.points + 1
    assert np.linalg.norm(large.points - truth_big, axis=-1).mean() < 3.0
    assert large.spacing == pytest.approx((0.2, 0.2))
    np.testing.assert_allclose(large.points_mm, large.points * 0.2, rtol=1e-6)  # float32


def test_unknown_domain_and_missing_builtin_are_clear(detector):
    with pytest.raises(ValueError, match="unknown domain 'knee'"):
        detector.predict(np.zeros((10, 10)), "knee")
    with pytest.raises(ValueError, match="give a domain"):
        detector.predict(np.zeros((10, 10)))


def test_cli_predict_then_evaluate(trained_run, phantoms, tmp_path):
    images = phantoms / "chest" / "images"
    out = tmp_path / "chest.csv"
    runner = CliRunner()
    r = runner.invoke(app, ["predict", str(images), "--domain", "chest", "--checkpoint",
                            str(trained_run.best_path), "--out", str(out), "--overlay",
                            str(tmp_path / "ov")])
    assert r.exit_code == 0, r.output
    header = out.read_text().splitlines()[0]
    assert header == ("image,landmark,x,y,name,confidence,domain,flag,qc,orientation,spacing_x,"
                      "spacing_y,spacing_source")
    assert len(out.read_text().splitlines()) == 1 + 40 * 6
    assert len(list((tmp_path / "ov").glob("*.png"))) == 40
    r = runner.invoke(app, ["evaluate", "csv", "--root", str(phantoms / "chest" / "landmarks.csv"),
                            "--split", "test", "--predictions", str(out),
                            "--json", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    import json

    report = json.loads((tmp_path / "r.json").read_text())
    assert report["unit"] == "px" and report["mre"] < 1.0  # bound: docs/testing.md


def test_cli_predict_missing_input(tmp_path, trained_run):
    r = CliRunner().invoke(app, ["predict", str(tmp_path / "nope.png"), "--domain", "head",
                                 "--checkpoint", str(trained_run.best_path), "--out",
                                 str(tmp_path / "p.csv")])
    assert r.exit_code == 2 and "no such file or folder" in r.output
    assert not (tmp_path / "p.csv").exists()


def test_cli_predict_spacing_fallback_gives_millimetres(trained_run, phantoms, tmp_path):
    image = sorted((phantoms / "head" / "images").glob("*.png"))[0]
    out = tmp_path / "p.csv"
    r = CliRunner().invoke(app, ["predict", str(image), "--domain", "head", "--checkpoint",
                                 str(trained_run.best_path), "--out", str(out),
                                 "--spacing", "0.5"])
    assert r.exit_code == 0, r.output
    header, first = out.read_text().splitlines()[:2]
    assert header == ("image,landmark,x,y,name,x_mm,y_mm,confidence,domain,flag,qc,orientation,"
                      "spacing_x,spacing_y,spacing_source")
    assert first.endswith(",original,0.5,0.5,option")
    cells = dict(zip(header.split(","), first.split(","), strict=True))
    assert float(cells["x_mm"]) == pytest.approx(0.5 * float(cells["x"]))
    assert (cells["spacing_x"], cells["spacing_y"], cells["spacing_source"]) == (
        "0.5", "0.5", "option")
    r = CliRunner().invoke(app, ["predict", str(image), "--domain", "head", "--checkpoint",
                                 str(trained_run.best_path), "--out", str(out),
                                 "--spacing", "-1"])
    assert r.exit_code == 2 and "--spacing must be positive" in r.output


def _csv(path):
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_cli_predict_records_the_spacing_and_its_source_per_image(trained_run, phantoms,
                                                                   tmp_path):
    """A header spacing wins over --spacing; a PNG takes --spacing; the source is written."""
    png = sorted((phantoms / "head" / "images").glob("*.png"))[0]
    array, _ = read_image(png)
    write_image(tmp_path / "scan.mha", array, spacing=(0.25, 0.3))
    out = tmp_path / "p.csv"
    r = CliRunner().invoke(app, ["predict", str(png), str(tmp_path / "scan.mha"), "--domain",
                                 "head", "--checkpoint", str(trained_run.best_path), "--out",
                                 str(out), "--spacing", "0.5"])
    assert r.exit_code == 0, r.output
    rows = _csv(out)
    by_image = {row["image"]: row for row in rows}
    assert (by_image[png.stem]["spacing_source"], by_image[png.stem]["spacing_x"]) == (
        "option", "0.5")
    scan = by_image["scan"]
    assert (scan["spacing_source"], float(scan["spacing_x"]), float(scan["spacing_y"])) == (
        "file", 0.25, 0.3)
    assert float(scan["y_mm"]) == pytest.approx(0.3 * float(scan["y"]))


def test_cli_predict_without_spacing_gives_pixels_only(trained_run, phantoms, tmp_path):
    png = sorted((phantoms / "head" / "images").glob("*.png"))[0]
    out = tmp_path / "p.csv"
    r = CliRunner().invoke(app, ["predict", str(png), "--domain", "head", "--checkpoint",
                                 str(trained_run.best_path), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "without a spacing" in r.stdout
    rows = _csv(out)
    assert "x_mm" not in rows[0]
    assert {(row["spacing_x"], row["spacing_source"]) for row in rows} == {("", "")}


def test_assume_training_spacing_uses_the_checkpoint_spacing(trained_run, phantoms, tmp_path):
    from unilandmark.checkpoints.checkpoint import load_checkpoint, save_checkpoint

    png = sorted((phantoms / "head" / "images").glob("*.png"))[0]
    args = ["predict", str(png), "--domain", "head", "--out", str(tmp_path / "p.csv")]
    state = load_checkpoint(trained_run.best_path)
    # a model that does not record its training spacing: a clear refusal
    state["domains"]["head"]["spacing"] = None
    bare = tmp_path / "without_spacing.pt"
    save_checkpoint(bare, {k: v for k, v in state.items() if k not in ("format", "versions")})
    r = CliRunner().invoke(app, [*args, "--checkpoint", str(bare), "--assume-training-spacing"])
    assert r.exit_code == 2 and "does not record the spacing" in r.output
    state["domains"]["head"]["spacing"] = [0.8, 0.7]
    ckpt = tmp_path / "with_spacing.pt"
    save_checkpoint(ckpt, {k: v for k, v in state.items() if k not in ("format", "versions")})
    r = CliRunner().invoke(app, [*args, "--checkpoint", str(ckpt), "--assume-training-spacing"])
    assert r.exit_code == 0, r.output
    row = _csv(tmp_path / "p.csv")[0]
    assert (row["spacing_x"], row["spacing_y"], row["spacing_source"]) == ("0.8", "0.7", "model")
    assert float(row["x_mm"]) == pytest.approx(0.8 * float(row["x"]))
    # not both, and --spacing must be a positive finite number
    r = CliRunner().invoke(app, [*args, "--checkpoint", str(ckpt), "--assume-training-spacing",
                                 "--spacing", "0.1"])
    assert r.exit_code == 2 and "not both" in r.output
    for bad in ("nan", "inf", "0"):
        r = CliRunner().invoke(app, [*args, "--checkpoint", str(ckpt), "--spacing", bad])
        assert r.exit_code == 2 and "positive and finite" in r.output, bad


def test_predict_reports_progress_when_stderr_is_not_a_terminal(trained_run, phantoms,
                                                                 tmp_path):
    r = CliRunner().invoke(app, ["predict", str(phantoms / "hand" / "images"), "--domain",
                                 "hand", "--checkpoint", str(trained_run.best_path), "--out",
                                 str(tmp_path / "p.csv")])
    assert r.exit_code == 0, r.output
    assert "predicting: 40/40 images" in r.stderr and "images/s" in r.stderr


def test_results_carry_the_spacing_source_and_arrive_one_by_one(detector, head_records):
    seen = []
    paths = [r.image_path for r in head_records[:3]]
    results = detector.predict_many(paths, "head", spacing=(0.5, 0.5), batch_size=2,
                                    on_result=seen.append)
    assert [r.id for r in seen] == [r.id for r in results] and len(seen) == 3
    assert {r.spacing_source for r in results} == {"option"}
    array, _ = read_image(paths[0])
    assert detector.predict(array, "head").spacing_source is None
    assert detector.predict(array, "head", spacing=(1.0, 1.0)).spacing_source == "option"
