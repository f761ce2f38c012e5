"""DICOM read right: MONOCHROME1, VOI LUT / window, magnification, spacing range.

The must-show tests run the built-in model on one real ISBI image written as DICOM
(MONOCHROME1, 16-bit): the landmarks must not move.
"""

import logging

import numpy as np
import pytest
import SimpleITK as sitk

from tests.dicom_files import write_dicom
from unilandmark.imageio.read import ImageReadError, read_image, read_image_info

pytest.importorskip("pydicom")

RAMP = (np.arange(20 * 24, dtype=np.uint16).reshape(20, 24) * 8)  # 0..3832, 12-bit


def test_monochrome1_is_inverted_as_simpleitk_does(tmp_path):
    """Guard: GDCM inverts MONOCHROME1 stored values v to (2**BitsStored - 1) - v before
    the modality rescale. The VOI handling relies on it; an upgrade that changes it must
    fail here, not silently flip images."""
    write_dicom(tmp_path / "m2.dcm", RAMP, bits_stored=12)
    write_dicom(tmp_path / "m1.dcm", RAMP, "MONOCHROME1", bits_stored=12)
    write_dicom(tmp_path / "m1r.dcm", RAMP, "MONOCHROME1", bits_stored=12,
                RescaleSlope=2, RescaleIntercept=-100)
    m2, _ = read_image(tmp_path / "m2.dcm")
    m1, _ = read_image(tmp_path / "m1.dcm")
    m1r, _ = read_image(tmp_path / "m1r.dcm")
    np.testing.assert_array_equal(m2, RAMP)
    np.testing.assert_array_equal(m1, 4095 - RAMP.astype(np.int64))
    np.testing.assert_array_equal(m1r, 2 * (4095 - RAMP.astype(np.int64)) - 100)
    # the same relation straight from SimpleITK, without our reader in between
    raw = sitk.ReadImage(str(tmp_path / "m1.dcm"), imageIO="GDCMImageIO")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(raw)[0], 4095 - RAMP.astype(int))


def test_window_is_applied_and_monochrome1_stays_bright_bone(tmp_path):
    write_dicom(tmp_path / "w2.dcm", RAMP, bits_stored=12, WindowCenter=2000,
                WindowWidth=1000)
    write_dicom(tmp_path / "w1.dcm", 4095 - RAMP, "MONOCHROME1", bits_stored=12,
                WindowCenter=4096 - 2000, WindowWidth=1000)  # the mirror of (c - 0.5)
    w2, _ = read_image(tmp_path / "w2.dcm")
    w1, _ = read_image(tmp_path / "w1.dcm")
    below, above = RAMP < 1490, RAMP > 2510
    inside = ~below & ~above
    assert w2[below].max() == w2.min() and w2[above].min() == w2.max()  # clipped outside
    assert np.all(np.diff(w2[inside]) > 0)  # linear, increasing inside the window
    # MONOCHROME1 with the mirrored window is the same picture (up to an offset)
    np.testing.assert_allclose(w1 - w1.min(), w2 - w2.min(), atol=1.0)


def test_voi_lut_sequence_is_applied(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 16]
    table = (np.sqrt(np.arange(4096)) * 100).astype(int)
    lut.add_new(0x00283006, "US", [int(v) for v in table])
    write_dicom(tmp_path / "lut.dcm", RAMP, bits_stored=12, VOILUTSequence=Sequence([lut]))
    array, _ = read_image(tmp_path / "lut.dcm")
    np.testing.assert_array_equal(array, table[RAMP])


def test_imager_spacing_corrected_by_magnification(tmp_path, caplog):
    write_dicom(tmp_path / "mag.dcm", RAMP, ImagerPixelSpacing=[0.2, 0.15],
                EstimatedRadiographicMagnificationFactor=1.1)
    write_dicom(tmp_path / "det.dcm", RAMP, ImagerPixelSpacing=[0.2, 0.15])
    write_dicom(tmp_path / "both.dcm", RAMP, PixelSpacing=[0.1, 0.1],
                ImagerPixelSpacing=[0.2, 0.2], EstimatedRadiographicMagnificationFactor=1.1)
    with caplog.at_level(logging.WARNING):
        assert read_image(tmp_path / "mag.dcm")[1] == pytest.approx((0.15 / 1.1, 0.2 / 1.1))
    assert "EstimatedRadiographicMagnificationFactor" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert read_image(tmp_path / "det.dcm")[1] == pytest.approx((0.15, 0.2))
    assert "measured at the detector" in caplog.text
    assert read_image(tmp_path / "both.dcm")[1] == pytest.approx((0.1, 0.1))  # patient plane


@pytest.mark.parametrize("spacing", [[0, 0], [-0.1, 0.1], [100, 100]])
def test_implausible_header_spacing_gives_no_millimetres(tmp_path, caplog, spacing):
    write_dicom(tmp_path / "s.dcm", RAMP, PixelSpacing=spacing)
    with caplog.at_level(logging.WARNING):
        assert read_image(tmp_path / "s.dcm")[1] is None
    assert "s.dcm: spacing in the header" in caplog.text and "no millimetres" in caplog.text
    with pytest.raises(ImageReadError, match=r"s\.dcm: spacing in the header"):
        read_image_info(tmp_path / "s.dcm", bad_spacing="raise")


def test_dicom_by_content_without_or_with_a_wrong_extension(tmp_path):
    from unilandmark.imageio.read import is_image_file

    write_dicom(tmp_path / "a.dcm", RAMP, PixelSpacing=[0.1, 0.2])
    write_dicom(tmp_path / "bare.dcm", RAMP, PixelSpacing=[0.1, 0.2], preamble=False)
    (tmp_path / "IM0001").write_bytes((tmp_path / "a.dcm").read_bytes())
    (tmp_path / "scan.png").write_bytes((tmp_path / "a.dcm").read_bytes())
    (tmp_path / "IM0002").write_bytes((tmp_path / "bare.dcm").read_bytes())
    (tmp_path / "notes").write_text("not an image")
    for name in ("IM0001", "scan.png", "IM0002"):
        array, spacing = read_image(tmp_path / name)
        np.testing.assert_array_equal(array, RAMP)
        assert spacing == pytest.approx((0.2, 0.1))
    assert is_image_file(tmp_path / "IM0001") and not is_image_file(tmp_path / "notes")


# ---- must show: the built-in model on one real ISBI image written as DICOM ----------


@pytest.fixture(scope="module")
def builtin():
    from unilandmark.inference.detector import Detector

    return Detector.from_checkpoint(None)


@pytest.fixture(scope="module")
def isbi_image(isbi_root):
    array, _ = read_image(isbi_root / "RawImage" / "TrainingData" / "001.jpg")
    return array


def _landmarks(detector, path):
    # every container's pixels whole (a JPEG is otherwise decoded at reduced size, which
    # DICOM never is): the comparison is of the intensity convention alone
    return detector.predict(path, "head", reduced_decode=False).points


def test_monochrome1_gives_the_landmarks_of_the_monochrome2_original(tmp_path, builtin,
                                                                     isbi_image):
    assert isbi_image.dtype == np.uint8
    write_dicom(tmp_path / "m2.dcm", isbi_image, PixelSpacing=[0.1, 0.1])
    write_dicom(tmp_path / "m1.dcm", 255 - isbi_image, "MONOCHROME1", PixelSpacing=[0.1, 0.1])
    m1, _ = read_image(tmp_path / "m1.dcm")
    np.testing.assert_array_equal(m1, isbi_image)  # inverted back to MONOCHROME2
    original = _landmarks(builtin, tmp_path / "m2.dcm")
    inverted = _landmarks(builtin, tmp_path / "m1.dcm")
    assert np.abs(inverted - original).max() <= 0.5


def test_16_bit_copy_gives_the_landmarks_of_the_8_bit_image(tmp_path, builtin, isbi_image,
                                                           isbi_root):
    write_dicom(tmp_path / "16.dcm", isbi_image.astype(np.uint16) * 257,
                PixelSpacing=[0.1, 0.1])
    write_dicom(tmp_path / "12.dcm", isbi_image.astype(np.uint16) * 16, bits_stored=12,
                PixelSpacing=[0.1, 0.1])
    eight = _landmarks(builtin, isbi_root / "RawImage" / "TrainingData" / "001.jpg")
    sixteen = _landmarks(builtin, tmp_path / "16.dcm")
    twelve = _landmarks(builtin, tmp_path / "12.dcm")
    assert np.abs(sixteen - eight).max() <= 0.5
    assert np.abs(twelve - eight).max() <= 0.5
