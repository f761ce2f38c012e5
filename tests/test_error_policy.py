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
