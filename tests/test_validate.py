from dataclasses import replace

import numpy as np
from typer.testing import CliRunner

from unilandmark import check_dataset, csv_dataset
from unilandmark.cli import app
from unilandmark.imageio.read import write_image


def _bad_dataset(tmp_path):
    write_image(tmp_path / "ok.png", np.zeros((20, 30), np.uint8))
    (tmp_path / "corrupt.png").write_bytes(b"garbage" * 10)
    (tmp_path / "t.csv").write_text("image,spacing,x1,y1,x2,y2\nok.png,0.1,1,2,31,5\n"
                                    "corrupt.png,0.2,1,2,3,4\n")
    spec = csv_dataset(tmp_path / "t.csv")
    # a Record built through the Python API is not checked by an adapter: check is
    bad = replace(spec.records[1], spacing=(20.0, 20.0))
    return replace(spec, records=(spec.records[0], bad))


def test_check_lists_every_fault(tmp_path):
    summary, faults = check_dataset(_bad_dataset(tmp_path))
    text = "\n".join(str(f) for f in faults)
    assert len(faults) == 3, text
    assert "record ok: landmark 2: point (31, 5) outside the 30x20 image" in text
    assert "corrupt.png: record corrupt: corrupt or truncated image" in text
    assert "record corrupt: implausible spacing (20, 20) mm per pixel" in text
    assert summary["records"] == 2 and summary["landmarks"] == 2


def test_cli_check_exits_nonzero_and_prints_all(tmp_path):
    _bad_dataset(tmp_path)
    result = CliRunner().invoke(app, ["datasets", "check", "csv", "--root",
                                      str(tmp_path / "t.csv")])
    assert result.exit_code == 1
    assert "2 fault(s)" in result.output and "outside the 30x20 image" in result.output


def test_cli_check_real_isbi(isbi_root):
    result = CliRunner().invoke(app, ["datasets", "check", "isbi2015", "--root", str(isbi_root),
                                      "--header-only"])
    assert result.exit_code == 0, result.output
    assert "records: 400" in result.output and "test1 150" in result.output
    assert "no faults" in result.output


def test_cli_check_real_hand_and_chest(hand_root, chest_root):
    r = CliRunner().invoke(app, ["datasets", "check", "dha_hand", "--root", str(hand_root)])
    assert r.exit_code == 0, r.output
    assert "with image: 9" in r.output and "labelled without image: 901" in r.output
    r = CliRunner().invoke(app, ["datasets", "check", "shenzhen_chest", "--root",
                                 str(chest_root)])
    assert r.exit_code == 0, r.output
    assert "with image: 11" in r.output


def test_cli_check_dataset_build_faults(tmp_path):
    r = CliRunner().invoke(app, ["datasets", "check", "isbi2015", "--root", str(tmp_path)])
    assert r.exit_code == 1
    assert r.output.count("no image files found") == 3
