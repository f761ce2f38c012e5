"""An image's own calibration beside it (imageio.spacing_file; docs/prediction.md,
"Spacing"): a ruler's two ends and length give mm per pixel, written atomically beside the
image and read by prediction before the file's header and --spacing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from unilandmark.core.errors import InputError
from unilandmark.imageio.spacing_file import (
    read_spacing_file,
    ruler_spacing,
    spacing_file,
    write_ruler_spacing,
)
from unilandmark.inference.inputs import read_input


def _image(tmp_path, name="scan.png"):
    path = tmp_path / name
    Image.fromarray((np.arange(64 * 48) % 251).astype(np.uint8).reshape(48, 64)).save(path)
    return path


def test_a_ruler_gives_mm_per_pixel_and_round_trips(tmp_path):
    image = _image(tmp_path)
    assert ruler_spacing((10, 10), (10, 410), 40.0) == pytest.approx(0.1)
    assert ruler_spacing((0, 0), (300, 400), 50.0) == pytest.approx(0.1)  # a slanted ruler
    assert read_spacing_file(image) is None
    spacing = write_ruler_spacing(image, (3, 4), (303, 404), 50.0)
    assert spacing == pytest.approx((0.1, 0.1))
    assert spacing_file(image).name == "scan.png.spacing.json"
    saved = json.loads(spacing_file(image).read_text())
    assert saved["source"] == "ruler" and saved["ruler"]["length_px"] == pytest.approx(500.0)
    assert read_spacing_file(image) == (pytest.approx((0.1, 0.1)), "ruler")


def test_prediction_reads_the_calibration_before_the_option(tmp_path):
    image = _image(tmp_path)
    raw = read_input(str(image), 0, (0.5, 0.5), "option")
    assert raw.spacing == (0.5, 0.5) and raw.spacing_source == "option"
    write_ruler_spacing(image, (0, 0), (0, 200), 20.0)
    raw = read_input(str(image), 0, (0.5, 0.5), "option")
    assert raw.spacing == pytest.approx((0.1, 0.1)) and raw.spacing_source == "ruler"
    other = _image(tmp_path, "other.png")  # its neighbour's calibration is not its own
    assert read_input(str(other), 0, None, "option").spacing is None


@pytest.mark.parametrize("content, needle", [
    ("{not json", "not valid JSON"),
    ('{"spacing": [0.1]}', "spacing must be 2 numbers"),
    ('{"spacing": [NaN, 0.1]}', "positive and finite"),
    ('{"spacing": [0.1, 400]}', "implausible spacing"),
    ('[0.1, 0.1]', "expected a JSON object with 'spacing'"),
    ("[" * 5000 + "]" * 5000, "nested 5000 levels deep"),
])
def test_a_bad_calibration_file_is_refused_naming_it(tmp_path, content, needle):
    image = _image(tmp_path)
    spacing_file(image).write_text(content)
    with pytest.raises(InputError) as info:
        read_spacing_file(image)
    assert str(info.value).startswith(f"{spacing_file(image)}: ") and needle in str(info.value)


@pytest.mark.parametrize("start, end, length, needle", [
    ((5, 5), (5.5, 5), 10.0, "less than 2 pixels apart"),
    ((0, 0), (100, 0), 0.0, "ruler length must be a positive number"),
    ((0, 0), (100, 0), float("nan"), "ruler length must be a positive number"),
    ((0, 0), (100, 0), 100000.0, "implausible spacing"),
])
def test_a_bad_ruler_is_refused_and_nothing_written(tmp_path, start, end, length, needle):
    image = _image(tmp_path)
    with pytest.raises(InputError, match=needle):
        write_ruler_spacing(image, start, end, length)
    assert not spacing_file(image).exists()


def test_a_spacing_table_gives_each_image_its_own(tmp_path):
    from unilandmark.imageio.spacing_file import read_spacing_table, spacings_for

    images = [_image(tmp_path, n) for n in ("a.png", "b.png", "c.png", "d.png")]
    sub = tmp_path / "more"
    sub.mkdir()
    table = tmp_path / "spacings.csv"
    table.write_text("image,spacing_x,spacing_y\na.png,0.1,0.1\nb,0.2,0.25\n"
                     f"{images[2]},0.3,0.3\nghost.png,0.4,0.4\n")
    found, unused = spacings_for(images, read_spacing_table(table), tmp_path)
    assert found == {str(images[0]): (0.1, 0.1), str(images[1]): (0.2, 0.25),
                     str(images[2]): (0.3, 0.3)}
    assert unused == ["ghost.png"]
    raw = read_input(str(images[1]), 0, (0.5, 0.5), "option", spacings=found)
    assert raw.spacing == (0.2, 0.25) and raw.spacing_source == "spacing-file"
    one = tmp_path / "one.csv"
    one.write_text("image,spacing\nd.png,0.15\n")
    assert read_spacing_table(one) == {"d.png": (0.15, 0.15)}


def test_a_bad_spacing_table_lists_every_faulty_line(tmp_path):
    from unilandmark.imageio.spacing_file import read_spacing_table

    table = tmp_path / "s.csv"
    table.write_text("image,spacing\na.png,0.1\n,0.1\nb.png,abc\nc.png,nan\na.png,0.2\n"
                     "d.png,0.1,0.2\n")
    with pytest.raises(InputError) as info:
        read_spacing_table(table)
    text = str(info.value)
    assert text.startswith(f"{table}: line 3: no image; line 4: spacing 'abc,abc' is not a "
                           "number; line 5: spacing must be positive and finite")
    assert "line 6: image 'a.png' is listed twice; line 7: 3 cells, the header has 2" in text
    (tmp_path / "h.csv").write_text("file,mm\n")
    with pytest.raises(InputError, match="line 1: the header must be image,spacing"):
        read_spacing_table(tmp_path / "h.csv")


def test_report_words_name_a_ruler_and_a_spacing_file():
    from unilandmark.inference.detector import LandmarkResult
    from unilandmark.reporting.content import spacing_words

    def result(source):
        return LandmarkResult("x", "head", ("a",), np.zeros((1, 2), np.float32),
                              np.ones(1, np.float32), (0.1, 0.1), None,
                              spacing_source=source)

    assert spacing_words(result("ruler")).endswith("measured with a ruler on this image "
                                                   "(its NAME.spacing.json)")
    assert spacing_words(result("spacing-file")).endswith("given per image (--spacing-file)")
