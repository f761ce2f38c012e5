"""A JPEG decoded at reduced size (libjpeg-turbo's DCT scaling) where the model needs
fewer pixels: the size chosen, the true extent kept through every resize, and the same
landmarks as a whole decode."""

import numpy as np
import pytest
import simplejpeg

from unilandmark.imageio.read import ImageReadError, read_image, read_image_reduced, write_image
from unilandmark.imageio.resample import resize_bilinear, resize_extent
from unilandmark.inference.detector import Detector
from unilandmark.inference.inputs import least_size_rule, read_input

W, H = 1001, 803  # odd sizes: the last reduced pixel reaches past the image's edge
BLOB = (900.3, 400.7)


def _blob_jpeg(path, size=(W, H), centre=BLOB, sigma=12.0):
    ys, xs = np.mgrid[0:size[1], 0:size[0]]
    img = 30 + 200 * np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2)
                            / (2 * sigma ** 2))
    grey = np.round(img).astype(np.uint8)[..., None]
    path.write_bytes(simplejpeg.encode_jpeg(grey, quality=98, colorspace="GRAY"))
    return path


def _centroid(image: np.ndarray) -> np.ndarray:
    """(x, y) intensity centroid above the background, in the image's pixels."""
    weight = np.clip(image - np.median(image), 0, None)
    ys, xs = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    return np.array([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()


def test_jpeg_decodes_at_the_smallest_eighth_that_has_the_pixels_asked_for(tmp_path):
    path = _blob_jpeg(tmp_path / "b.jpg")
    read = read_image_reduced(path, lambda size: (300, 200))
    # 2/8 would give 251 columns (< 300); 3/8 gives ceil(1001 * 3 / 8) = 376
    assert read.array.shape == (302, 376)
    assert read.pixel_scale == pytest.approx(8 / 3)
    assert read.original_size == (W, H) and read.spacing is None
    whole = read_image_reduced(path, lambda size: size)
    assert whole.pixel_scale == 1.0 and whole.array.shape == (H, W)
    np.testing.assert_array_equal(whole.array, read_image(path)[0])


def test_other_formats_are_read_whole(tmp_path):
    write_image(tmp_path / "b.png", np.zeros((80, 90), dtype=np.uint8))
    read = read_image_reduced(tmp_path / "b.png", lambda size: (10, 10))
    assert read.pixel_scale == 1.0 and read.array.shape == (80, 90)
    assert read.original_size == (90, 80)


def test_truncated_jpeg_is_refused_at_reduced_size_too(tmp_path, isbi_root):
    data = (isbi_root / "RawImage" / "TrainingData" / "001.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageReadError, match=r"t\.jpg: corrupt or truncated JPEG"):
        read_image_reduced(tmp_path / "t.jpg", lambda size: (200, 250))


def test_a_reduced_image_resizes_by_its_true_extent(tmp_path):
    path = _blob_jpeg(tmp_path / "b.jpg")
    whole = read_image(path)[0].astype(np.float32)
    reduced = read_image_reduced(path, lambda size: (300, 200))
    target = (250, 200)  # 4.004 x 4.015 original pixels per output pixel
    from_whole = _centroid(resize_extent(whole, (W, H), target))
    from_reduced = _centroid(resize_extent(reduced.array.astype(np.float32), (W, H), target,
                                           reduced.pixel_scale))
    assert np.abs(from_reduced - from_whole).max() < 0.02  # output pixels (measured 0.002)
    # stretching the reduced array over the output (its extent taken for the image's)
    # lands about 0.37 output pixels off at x = 900
    naive = _centroid(resize_bilinear(reduced.array.astype(np.float32), target))
    assert np.abs(naive - from_whole)[0] > 0.2


def test_least_size_covers_stage_one_and_every_patch_stage():
    rule = least_size_rule((208, 256), "stretch", [lambda sp: 3.0])
    assert rule((1935, 2400), None) == (645, 800)
    # a scale_mm stage: 0.2 mm per patch pixel at 0.1 mm per pixel -> s = 2
    rule_mm = least_size_rule((208, 256), "stretch",
                              [lambda sp: 0.2 / float(np.mean(sp)) if sp else
                               (_ for _ in ()).throw(ValueError("no spacing"))])
    assert rule_mm((1935, 2400), (0.1, 0.1)) == (968, 1200)
    assert rule_mm((1935, 2400), None) == (1935, 2400)  # cannot say: the whole image
    # letterbox: the content inside the input, never more than the image
    assert least_size_rule((256, 256), "letterbox", [])((1000, 500), None) == (256, 128)
    assert least_size_rule((256, 256), "stretch", [])((100, 500), None) == (100, 256)


def test_detector_reads_a_large_jpeg_reduced_with_the_landmarks_of_a_whole_decode(
        trained_run, phantoms, tmp_path):
    """A phantom upscaled 4x and stored as JPEG: the reduced decode (the model's input is
    64 x 64, so 2/8 is enough) gives the landmarks of the whole decode, in original
    pixels."""
    from unilandmark import synthetic_dataset

    detector = Detector.from_checkpoint(trained_run.best_path)
    record = synthetic_dataset(phantoms, "head").split_records("test")[0]
    array, _ = read_image(record.image_path)
    big = np.kron(array, np.ones((4, 4), dtype=array.dtype))
    (tmp_path / "big.jpg").write_bytes(simplejpeg.encode_jpeg(
        np.ascontiguousarray(big[..., None]), quality=98, colorspace="GRAY"))
    raw = read_input(tmp_path / "big.jpg", 0, None, "option", detector.least_size("head"))
    assert raw.pixel_scale > 1 and raw.original_size == (big.shape[1], big.shape[0])
    reduced = detector.predict(tmp_path / "big.jpg", "head")
    whole = detector.predict(tmp_path / "big.jpg", "head", reduced_decode=False)
    assert reduced.image_size == whole.image_size == (big.shape[1], big.shape[0])
    # the two network inputs differ by JPEG rounding and filtering only
    assert np.abs(reduced.points - whole.points).mean() < 0.5
    truth = 4 * record.points + 1.5  # pixel centres: x_big = 4 x + 1.5
    assert np.linalg.norm(reduced.points - truth, axis=-1).mean() < 4.0
