"""``datasets make-synthetic --volumes`` and ``datasets export`` of a volume dataset: the
phantoms pass ``datasets check``, the exported ground truth scores 0 mm with every
annotated-absent landmark found absent, and bad values are one sentence, exit 2."""

import csv
import json

import pytest
from typer.testing import CliRunner

from unilandmark.cli import app


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    root = tmp_path_factory.mktemp("vols") / "phantoms3d"
    r = cli("datasets", "make-synthetic", "--volumes", "--out", root, "--size", "24x28x24",
            "--spacing", "1.5x1.5x3", "--train", 3, "--val", 1, "--test", 2,
            "--absent-fraction", 0.2, "--absent-mode", "removed", "--seed", 5)
    assert r.exit_code == 0, r.output
    return root, r.output


def test_make_synthetic_volumes_then_check(phantoms):
    root, out = phantoms
    images = sorted(p.name for p in (root / "images").iterdir())
    assert images == [f"vol_{n:04d}.nii.gz" for n in range(6)]
    assert (root / "landmarks.csv").is_file()
    assert "6 volumes (train 3, val 1, test 2)" in out and "24x28x24 voxels" in out
    assert "10 absent (removed)" in out  # round(0.2 * 6 volumes * 8 landmarks)
    assert "unilandmark datasets check synthetic-volumes --root" in out
    r = cli("datasets", "check", "synthetic-volumes", "--root", root)
    assert r.exit_code == 0, r.output
    assert "records: 6" in r.output and "visible points: 38" in r.output
    assert "splits: train 3, val 1, test 2, all 6" in r.output and "no faults" in r.output


def test_export_then_evaluate_scores_zero(phantoms, tmp_path):
    root, _ = phantoms
    table = tmp_path / "truth.csv"
    r = cli("datasets", "export", "synthetic-volumes", "--root", root, "--split", "test",
            "--out", table)
    assert r.exit_code == 0, r.output
    assert "2 volumes x 8 landmarks" in r.output
    with open(table, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["image", "landmark", "name", "x", "y", "z", "frame", "x_mm",
                             "y_mm", "z_mm", "confidence", "present", "domain"]
    assert len(rows) == 16 and {r["frame"] for r in rows} == {"voxel"}
    absent = [r for r in rows if r["present"] == "0"]
    assert absent and all(r["x"] == r["x_mm"] == "" for r in absent)
    r = cli("evaluate", "synthetic-volumes", "--root", root, "--split", "test",
            "--predictions", table, "--json", tmp_path / "report.json")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "report.json").read_text())
    # the table keeps 4 decimals of a voxel: 0 mm up to that rounding
    assert report["mre"] < 1e-3 and report["n_points"] == 16 - len(absent)
    assert "MRE 0.000" in r.output
    presence = report["presence"]
    assert presence["truth_absent"] == presence["correctly_absent"] == len(absent)
    assert presence["precision"] == presence["recall"] == 1.0
    assert f"{len(absent)} both: precision 1.000, recall 1.000" in r.output


@pytest.mark.parametrize("args, needle", [
    (["--train", "-3"], "Invalid value for '--train'"),
    (["--train", "0", "--val", "0", "--test", "0"], "at least one volume"),
    (["--absent-fraction", "1.5"], "--absent-fraction 1.5: expected a share in [0, 1)"),
    (["--size", "2"], "--size '2': each side needs at least 24 voxels"),
    (["--size", "24x24"], "--size '24x24': expected three positive whole numbers"),
    (["--spacing", "0x1x1"], "--spacing '0x1x1': expected three positive numbers"),
    (["--absent-mode", "gone"], "expected one of removed, unlabelled"),
    (["--domains", "head"], "--domains is for the 2-D phantoms"),
])
def test_bad_volume_arguments_are_one_sentence(tmp_path, args, needle):
    r = cli("datasets", "make-synthetic", "--volumes", "--out", tmp_path / "v", *args)
    assert r.exit_code == 2, r.output
    assert isinstance(r.exception, SystemExit) and "Traceback" not in r.output
    assert needle in r.output
    errors = [line for line in r.output.splitlines() if line.lower().startswith("error")]
    assert len(errors) == 1, r.output
    assert not (tmp_path / "v").exists()


def test_volume_options_need_volumes(tmp_path):
    r = cli("datasets", "make-synthetic", "--out", tmp_path / "s", "--absent-fraction", "0.1")
    assert r.exit_code == 2 and "--absent-fraction: only with --volumes" in r.output
    assert not (tmp_path / "s").exists()
