"""Bad inputs, part 2: image files, spacing, resources, prediction files, ids.

Each test asserts the exit code, that the message names the file and the fault, and that
nothing on disk was changed or left half-written (docs/refusals.md).
"""

import shutil
import struct
import zlib

import numpy as np
import pytest

from tests.bad_inputs import assert_refused, assert_unchanged, cli, phantom_images, snapshot
from tests.dicom_files import write_dicom
from unilandmark.imageio.read import ImageReadError, read_image, write_image


def _jpeg(path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256]
    image = 128 + 60 * np.sin(xx / 9.0) * np.cos(yy / 13.0) + rng.normal(0, 10, (256, 256))
    write_image(path, image.clip(0, 255).astype(np.uint8))
    return path


def _table(folder, images, spacing=""):
    rows = "".join(f"{p.name},{spacing},3,4\n" for p in images)
    (folder / "t.csv").write_text("image,spacing,x1,y1\n" + rows)
    return folder / "t.csv"


def test_jpeg_integrity_is_checked_by_decoding(tmp_path):
    good = _jpeg(tmp_path / "good.jpg")
    data = good.read_bytes()
    (tmp_path / "padded.jpg").write_bytes(data + b"\0" * 5120)  # valid, 5 KB of padding
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2] + b"\xff\xd9")  # truncated
    shutil.copy(tmp_path / "good.jpg", tmp_path / "jpeg.tif")  # misnamed: read by content
    png = tmp_path / "png.jpg"
    write_image(tmp_path / "x.png", read_image(good)[0])
    (tmp_path / "x.png").rename(png)
    reference, _ = read_image(good)
    for name in ("padded.jpg", "jpeg.tif", "png.jpg"):
        np.testing.assert_array_equal(read_image(tmp_path / name)[0], reference)
    table = _table(tmp_path, [tmp_path / n for n in
                              ("good.jpg", "padded.jpg", "cut.jpg", "jpeg.tif", "png.jpg")])
    before = snapshot(tmp_path)
    r = cli("datasets", "check", "csv", "--root", table)
    out = assert_refused(r, 1, "1 fault(s)", "cut.jpg: record cut: corrupt or truncated JPEG "
                                             "(Corrupt JPEG data: premature end of data segment)")
    assert "padded" not in out.split("fault(s)")[1]
    assert_unchanged(tmp_path, before)


def _png_declaring(path, width, height):
    """A small, valid 16 x 16 PNG whose header is then rewritten to declare W x H."""
    write_image(path, np.zeros((16, 16), np.uint8))
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def test_pixel_count_limit_from_the_header_before_decoding(tmp_path, monkeypatch):
    bomb = _png_declaring(tmp_path / "bomb.png", 40000, 40000)
    assert bomb.stat().st_size < 1000
    with pytest.raises(ImageReadError, match=r"bomb\.png: the header declares 40000 x 40000 "
                                             r"= 1600 megapixels, above the limit of 200"):
        read_image(bomb)
    table = _table(tmp_path, [bomb])
    before = snapshot(tmp_path)
    r = cli("datasets", "check", "csv", "--root", table)
    assert_refused(r, 1, "bomb.png: record bomb: the header declares 40000 x 40000",
                   "UNILANDMARK_MAX_PIXELS")
    assert_unchanged(tmp_path, before)
    # the limit is settable: a lower one refuses an ordinary image
    write_image(tmp_path / "small.png", np.zeros((64, 64), np.uint8))
    monkeypatch.setenv("UNILANDMARK_MAX_PIXELS", "1000")
    with pytest.raises(ImageReadError, match="above the limit of 0.001 megapixels"):
        read_image(tmp_path / "small.png")
    assert read_image(tmp_path / "small.png", max_pixels=5000)[0].shape == (64, 64)


def test_images_below_the_minimum_size_are_refused(tmp_path):
    write_image(tmp_path / "dot.png", np.zeros((1, 1), np.uint8))
    write_image(tmp_path / "line.png", np.zeros((4, 300), np.uint8))
    table = _table(tmp_path, [tmp_path / "dot.png", tmp_path / "line.png"])
    before = snapshot(tmp_path)
    r = cli("datasets", "check", "csv", "--root", table)
    assert_refused(r, 1, "dot.png: record dot: image of 1 x 1 pixels is too small",
                   "line.png: record line: image of 300 x 4 pixels is too small",
                   "at least 16 x 16")
    r = cli("predict", tmp_path / "dot.png", "--out", tmp_path / "p.csv")
    assert_refused(r, 2, "dot.png: image of 1 x 1 pixels is too small")
    assert_unchanged(tmp_path, before)


def test_spacing_is_checked_wherever_it_enters(tmp_path):
    phantom_images(tmp_path, ["a.png"])
    table = _table(tmp_path, [tmp_path / "a.png"])
    write_dicom(tmp_path / "zero.dcm", np.zeros((20, 20), np.uint16), PixelSpacing=[0, 0])
    (tmp_path / "zero.json").write_text(
        '{"imagePath": "zero.dcm", "shapes": [{"label": "a", "points": [[1, 2]]}]}')
    before = snapshot(tmp_path)
    for value in ("nan", "inf", "-0.1", "0", "100"):
        r = cli("predict", tmp_path / "a.png", "--out", tmp_path / "p.csv", "--spacing", value)
        assert_refused(r, 2, "--spacing")
    r = cli("datasets", "check", "csv", "--root", table, "--opt", "spacing=nan")
    assert_refused(r, 2, "csv: option spacing must be positive and finite (mm per pixel), "
                         "got nan")
    (tmp_path / "t.csv").write_text("image,spacing,x1,y1\na.png,0.00001,1,2\n")
    before = snapshot(tmp_path)
    r = cli("datasets", "check", "csv", "--root", tmp_path / "t.csv")
    assert_refused(r, 1, "t.csv: record a: line 2: implausible spacing (1e-05, 1e-05) mm per "
                         "pixel; expected 0.001..10")
    r = cli("datasets", "check", "labelme", "--root", tmp_path)
    assert_refused(r, 1, "zero.dcm: record zero: spacing in the header: spacing must be "
                         "positive and finite, got (0, 0)")
    assert_unchanged(tmp_path, before)
    # a config's domain options reach the same adapter check
    from unilandmark.data.adapters.catalog import build_dataset

    with pytest.raises(ValueError, match="csv: option spacing must be positive and finite"):
        build_dataset("csv", tmp_path / "t.csv", spacing=float("inf"))


def test_evaluate_refuses_coordinates_far_outside_the_image(tmp_path):
    phantom_images(tmp_path, ["a.png", "b.png"], size=(48, 40))
    (tmp_path / "t.csv").write_text("image,x1,y1,x2,y2\na.png,3,4,5,6\nb.png,7,8,9,10\n")
    (tmp_path / "pred.csv").write_text("image,landmark,x,y\na,1,3,4\na,2,-100000,6\n"
                                       "b,1,7,1e9\nb,2,60,-20\n")  # last: outside, not far
    before = snapshot(tmp_path)
    r = cli("evaluate", "csv", "--root", tmp_path / "t.csv", "--split", "all",
            "--predictions", tmp_path / "pred.csv", "--json", tmp_path / "report.json")
    out = assert_refused(r, 2, "2 fault(s)",
                         "pred.csv: record a: landmark 2 (2): predicted point (-100000, 6) "
                         "lies far outside the 48x40 image",
                         "pred.csv: record b: landmark 1 (1): predicted point (7, 1e+09)")
    assert "(60, -20)" not in out and "a.png" in out
    assert_unchanged(tmp_path, before)


def test_prediction_ids_are_unique_when_stems_collide(tmp_path):
    """Two folders holding 001.png, and one file given twice: four ids, four overlays."""
    one = phantom_images(tmp_path / "site1", ["001.png"])[0]
    two = phantom_images(tmp_path / "site2", ["001.png", "002.png"])
    r = cli("predict", tmp_path / "site1", two[0], two[1], two[1], "--out",
            tmp_path / "p.csv", "--overlay", tmp_path / "ov", "--domain", "head",
            "--keep-going")  # phantoms are out of scope for the built-in head model
    assert r.exit_code == 0, r.output
    rows = (tmp_path / "p.csv").read_text().splitlines()[1:]
    ids = list(dict.fromkeys(row.split(",")[0] for row in rows))
    assert ids == ["site1/001", "site2/001", "002", "002-2"]
    overlays = sorted(p.relative_to(tmp_path / "ov").as_posix()
                      for p in (tmp_path / "ov").rglob("*.png"))
    assert overlays == ["002-2.png", "002.png", "site1/001.png", "site2/001.png"]
    assert one.is_file()
