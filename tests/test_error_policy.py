"""The error policy: the library's own errors (``core.errors.InputError`` and its kin),
pydantic's and OS errors are one sentence and exit code 2; anything else, a bare
``KeyError`` or ``ValueError`` included, is a bug: it keeps its traceback, ends with a
line saying it is a bug to report, and a batch never reports it as an unreadable file."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from unilandmark.cli import app
from unilandmark.cli.common import BUG_NOTE, expected_failure
from unilandmark.core.errors import InputError, UnknownNameError
from unilandmark.imageio.read import ImageReadError, write_image
from unilandmark.inference.detector import Detector


def test_only_the_librarys_errors_are_sentences():
    assert expected_failure(ImageReadError("a.png: corrupt")) == "a.png: corrupt"
    assert expected_failure(UnknownNameError("unknown model 'x'")) == "unknown model 'x'"
    assert expected_failure(FileNotFoundError(2, "No such file", "a.png")) == \
        "a.png: No such file"
    assert expected_failure(KeyError("input_size")) is None   # a bug, not a sentence
    assert expected_failure(ValueError("operands could not be broadcast")) is None
    assert issubclass(UnknownNameError, KeyError) and issubclass(InputError, ValueError)


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    good = tmp_path / "good.png"
    write_image(good, (rng.random((240, 200)) * 255).astype(np.uint8))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    return good, corrupt


def test_a_corrupt_file_is_one_sentence_and_the_batch_goes_on(images, tmp_path):
    good, corrupt = images
    out = tmp_path / "p.csv"
    r = CliRunner().invoke(app, ["predict", str(good), str(corrupt), "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert "corrupt.png" in r.output and "Traceback" not in r.output
    assert "good" in out.read_text()  # the good image was predicted and written


def test_a_bug_inside_prediction_shows_its_traceback_and_stops_the_batch(images, tmp_path,
                                                                         monkeypatch):
    good, _ = images

    def broken(self, *args, **kwargs):
        raise KeyError("input_size")  # as a model file missing a key used to read

    monkeypatch.setattr(Detector, "least_size", broken)
    r = CliRunner().invoke(app, ["predict", str(good), "--out", str(tmp_path / "p.csv")])
    assert isinstance(r.exception, KeyError)          # not turned into "error: input_size"
    assert BUG_NOTE in getattr(r.exception, "__notes__", [BUG_NOTE])
    assert not (tmp_path / "p.csv").exists()


def test_a_bug_while_reading_one_file_is_not_reported_as_an_unreadable_file(images, tmp_path,
                                                                          monkeypatch):
    """A ValueError from deeper code (numpy's broadcasting, say) while one file is read
    used to become "could not be predicted" for that file; now it stops the batch."""
    import unilandmark.inference.detector as detector_module

    good, _ = images

    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(detector_module, "read_input", broken)
    r = CliRunner().invoke(app, ["predict", str(good), "--out", str(tmp_path / "p.csv")])
    assert isinstance(r.exception, ValueError) and not isinstance(r.exception, InputError)
    assert "could not be predicted" not in r.output


@pytest.mark.parametrize("value", ["nan", "inf", "100", "-1"])
def test_measure_and_serve_check_the_spacing_as_predict_does(tmp_path, value):
    from unilandmark.predictions.table import write_predictions

    csv = tmp_path / "p.csv"
    write_predictions(csv, [{"image": "a", "landmark": 1, "x": 1.0, "y": 2.0}])
    for command in (["measure", str(csv)], ["serve", str(tmp_path)]):
        r = CliRunner().invoke(app, [*command, "--spacing", value])
        assert r.exit_code == 2, (command, r.output)
        assert "--spacing" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("value", ["nan", "inf", "0"])
def test_serve_refuses_an_upload_limit_that_is_not_a_size(tmp_path, value):
    r = CliRunner().invoke(app, ["serve", str(tmp_path), "--max-upload-mb", value])
    assert r.exit_code == 2 and "--max-upload-mb" in r.output, r.output


def test_measure_never_overwrites_its_input(tmp_path):
    from unilandmark.predictions.table import write_predictions

    csv = tmp_path / "p.csv"
    write_predictions(csv, [{"image": "a", "landmark": 1, "x": 1.0, "y": 2.0}])
    before = csv.read_bytes()
    r = CliRunner().invoke(app, ["measure", str(csv), "--out", str(csv)])
    assert r.exit_code == 2 and "would overwrite the input" in r.output, r.output
    assert csv.read_bytes() == before


def test_a_macos_resource_fork_beside_an_image_is_not_a_failed_image(images, tmp_path):
    good, _ = images
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / "scan.png").write_bytes(good.read_bytes())
    (folder / "._scan.png").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 80)  # AppleDouble
    r = CliRunner().invoke(app, ["predict", str(folder), "--out", str(tmp_path / "p.csv"),
                                 "--keep-going"])  # a phantom: out of scope for the head model
    assert r.exit_code == 0, r.output
    assert "._scan" not in r.output and "could not be predicted" not in r.output


@pytest.mark.parametrize("command", [["convert", "SRC", "OUT"], ["slim", "SRC", "OUT"],
                                     ["calibrate", "SRC", "--out", "OUT"]])
def test_model_writers_refuse_a_suffix_of_another_format(command, tmp_path):
    """convert, slim and calibrate write a safetensors model file or a torch checkpoint:
    a name ending in .onnx is refused before any work, and nothing is written."""
    from unilandmark.checkpoints.builtin import model_path

    out = tmp_path / "model.onnx"
    args = [str(model_path(None)) if a == "SRC" else str(out) if a == "OUT" else a
            for a in command]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2, r.output
    assert "model.onnx" in r.output and ".safetensors" in r.output
    assert not out.exists()
