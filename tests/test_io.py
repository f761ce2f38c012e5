import logging

import numpy as np
import pytest
import SimpleITK as sitk

from unilandmark.imageio.read import ImageReadError, read_image, read_image_info, write_image


def test_reads_real_isbi_jpeg(isbi_root):
    array, spacing = read_image(isbi_root / "RawImage" / "TrainingData" / "001.jpg")
    assert array.shape == (2400, 1935) and array.dtype == np.uint8
    assert spacing is None  # JPEG carries no physical spacing


def test_reads_real_hand_mha_as_2d_with_header_spacing(hand_root):
    array, spacing = read_image(hand_root / "images" / "3167.mha")
    assert array.ndim == 2 and array.shape == (2350, 1600)
    assert spacing == pytest.approx((0.108075, 0.108075))
    assert read_image_info(hand_root / "images" / "3167.mha") == ((1600, 2350), spacing)


def test_reads_real_chest_png(chest_root):
    array, spacing = read_image(chest_root / "images" / "CHNCXR_0001_0.png")
    assert array.ndim == 2 and spacing is None and array.shape[1] == 750


@pytest.mark.parametrize("suffix,has_spacing", [
    (".png", False), (".bmp", False), (".tif", False), (".mha", True), (".mhd", True),
    (".nrrd", True), (".nii", True), (".nii.gz", True)])
def test_formats_roundtrip_with_spacing(tmp_path, suffix, has_spacing):
    rng = np.random.default_rng(0)
    dtype = np.uint8 if suffix == ".bmp" else np.uint16
    array = rng.integers(0, 255 if dtype == np.uint8 else 4000, (20, 30)).astype(dtype)
    path = tmp_path / f"img{suffix}"
    write_image(path, array, spacing=(0.25, 0.5))
    back, spacing = read_image(path)
    assert back.shape == (20, 30)
    assert back.dtype == dtype  # 16-bit stays 16-bit
    np.testing.assert_array_equal(back, array)
    assert spacing == ((0.25, 0.5) if has_spacing else None)


def test_grey_stored_as_rgb_becomes_one_channel(tmp_path):
    grey = (np.arange(400) % 256).astype(np.uint8).reshape(20, 20)
    rgb = sitk.GetImageFromArray(np.stack([grey] * 3, -1), isVector=True)
    sitk.WriteImage(rgb, str(tmp_path / "rgb.png"))
    back, _ = read_image(tmp_path / "rgb.png")
    np.testing.assert_array_equal(back, grey)


def test_3d_with_one_slice_is_2d(tmp_path):
    vol = sitk.GetImageFromArray(np.ones((1, 18, 19), dtype=np.uint8))
    vol.SetSpacing((0.2, 0.3, 1.0))
    sitk.WriteImage(vol, str(tmp_path / "one.mha"))
    back, spacing = read_image(tmp_path / "one.mha")
    assert back.shape == (18, 19) and spacing == pytest.approx((0.2, 0.3))


def test_3d_with_many_slices_is_refused(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((3, 8, 9), dtype=np.uint8)),
                    str(tmp_path / "vol.mha"))
    with pytest.raises(ImageReadError, match="vol.mha.*3 slices"):
        read_image(tmp_path / "vol.mha")


def _write_dicom(path, pixel_spacing=None, imager_spacing=None):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.PatientID = "test"
    ds.Rows, ds.Columns = 20, 24
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if pixel_spacing:
        ds.PixelSpacing = list(pixel_spacing)
    if imager_spacing:
        ds.ImagerPixelSpacing = list(imager_spacing)
    pixels = (np.arange(20 * 24, dtype=np.uint16).reshape(20, 24) * 7)
    ds.PixelData = pixels.tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    del pydicom
    return pixels


def test_dicom_pixel_spacing_is_row_column(tmp_path):
    pixels = _write_dicom(tmp_path / "a.dcm", pixel_spacing=(0.2, 0.3))
    array, spacing = read_image(tmp_path / "a.dcm")
    np.testing.assert_array_equal(array, pixels)
    assert array.dtype == np.uint16
    assert spacing == pytest.approx((0.3, 0.2))  # (x, y) = (column, row)


def test_dicom_imager_pixel_spacing_with_warning(tmp_path, caplog):
    _write_dicom(tmp_path / "b.dcm", imager_spacing=(0.15, 0.15))
    with caplog.at_level(logging.WARNING):
        _, spacing = read_image(tmp_path / "b.dcm")
    assert spacing == pytest.approx((0.15, 0.15))
    assert "ImagerPixelSpacing" in caplog.text


def test_dicom_without_spacing_is_none(tmp_path):
    _write_dicom(tmp_path / "c.dcm")
    assert read_image(tmp_path / "c.dcm")[1] is None


def test_truncated_jpeg_is_an_error(tmp_path, isbi_root):
    data = (isbi_root / "RawImage" / "TrainingData" / "001.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageReadError, match=r"t\.jpg: corrupt or truncated JPEG"):
        read_image(tmp_path / "t.jpg")


@pytest.mark.parametrize("name,content", [("bad.png", b"not an image" * 5), ("bad.mha", b"x")])
def test_corrupt_files_name_the_file(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ImageReadError, match=name.replace(".", r"\.")):
        read_image(tmp_path / name)


def test_truncated_png_and_missing_file(tmp_path):
    png = tmp_path / "full.png"
    write_image(png, np.random.default_rng(1).integers(0, 255, (64, 64)).astype(np.uint8))
    (tmp_path / "half.png").write_bytes(png.read_bytes()[: png.stat().st_size // 2])
    with pytest.raises(ImageReadError, match="half.png"):
        read_image(tmp_path / "half.png")
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "absent.png")
    text = tmp_path / "notes.txt"
    text.write_text("x")
    with pytest.raises(ImageReadError, match="unsupported image format"):
        read_image(text)
