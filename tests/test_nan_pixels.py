"""NaN and Inf pixels (float MHA/NIfTI/NRRD padding) are left out of the intensity window
and set to the background, with a warning naming the file and the count; a file with no
finite pixel is refused."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from unilandmark import Detector, ImageReadError, read_image
from unilandmark.imageio.read import normalise_intensity, write_image


def _cephalogram_like(h: int = 320, w: int = 260) -> np.ndarray:
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:h, 0:w]
    skull = np.exp(-(((x - 130) / 90.0) ** 2 + ((y - 150) / 120.0) ** 2)) * 900.0
    return (skull + 50.0 + rng.normal(0, 10, (h, w))).astype(np.float32)


def test_one_nan_pixel_no_longer_blanks_the_image():
    image = _cephalogram_like()
    with_nan = image.copy()
    with_nan[0, 0] = np.nan
    out = normalise_intensity(with_nan)
    assert np.isfinite(out).all() and out.max() == 1.0
    assert out[0, 0] == 0.0  # the background


def test_an_image_with_nan_padding_predicts_like_the_same_image_with_background(tmp_path,
                                                                                caplog):
    image = _cephalogram_like()
    padded = image.copy()
    padded[:, :30] = np.nan     # a NaN border, as resampled volumes and scanners write
    padded[-5:, :] = np.inf
    background = image.copy()
    finite_min = np.nanmin(np.where(np.isfinite(padded), padded, np.nan))
    background[:, :30] = finite_min
    background[-5:, :] = finite_min
    write_image(tmp_path / "nan.mha", padded, (0.1, 0.1))
    write_image(tmp_path / "bg.mha", background, (0.1, 0.1))

    with caplog.at_level(logging.WARNING):
        array, _ = read_image(tmp_path / "nan.mha")
    warned = [r.getMessage() for r in caplog.records if "NaN/Inf" in r.getMessage()]
    bad = 30 * 320 + 5 * (260 - 30)
    assert warned and "nan.mha" in warned[0] and f"{bad} NaN/Inf pixels" in warned[0]
    assert np.isfinite(array).all()

    detector = Detector.from_checkpoint(None)
    a = detector.predict(tmp_path / "nan.mha")
    b = detector.predict(tmp_path / "bg.mha")
    np.testing.assert_array_equal(a.points, b.points)
    assert np.isfinite(a.points).all()


def test_a_file_with_no_finite_pixel_is_refused_naming_it(tmp_path):
    write_image(tmp_path / "void.mha", np.full((40, 50), np.nan, np.float32))
    with pytest.raises(ImageReadError, match=r"void\.mha: no finite pixel \(all 2000"):
        read_image(tmp_path / "void.mha")
