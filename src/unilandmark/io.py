"""Image reading with pixel spacing, through SimpleITK: one suffix table.

``read_image(path) -> (array, spacing)``: ``array`` is 2-D ``(H, W)`` in the file's own
dtype (16-bit stays 16-bit); ``spacing`` is ``(sx, sy)`` in mm per pixel or None.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .types import Spacing

log = logging.getLogger(__name__)

#: suffix -> whether the format carries a physical pixel spacing in its header
SUFFIXES: dict[str, bool] = {
    ".png": False, ".jpg": False, ".jpeg": False, ".bmp": False, ".tif": False,
    ".tiff": False, ".mha": True, ".mhd": True, ".nrrd": True, ".nhdr": True,
    ".nii": True, ".nii.gz": True, ".dcm": True, ".dicom": True,
}

DICOM_PIXEL_SPACING = "0028|0030"
DICOM_IMAGER_PIXEL_SPACING = "0018|1164"


class ImageReadError(ValueError):
    """An image file could not be read; the message names the file and the fault."""


def image_suffix(path: str | os.PathLike) -> str:
    """The lower-case suffix that selects the reader ('' when unknown)."""
    name = Path(path).name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return Path(name).suffix


def is_image_file(path: str | os.PathLike) -> bool:
    return image_suffix(path) in SUFFIXES


def read_image_info(path: str | os.PathLike) -> tuple[tuple[int, int], Spacing | None]:
    """Size ``(W, H)`` and spacing from the header alone (no pixel data read)."""
    reader = _reader(path)
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise ImageReadError(f"{path}: unreadable image header ({_first_line(err)})") from err
    size = reader.GetSize()
    if len(size) == 3 and size[2] != 1:
        raise ImageReadError(f"{path}: a 3-D image with {size[2]} slices; expected a 2-D image")
    return (int(size[0]), int(size[1])), _spacing(path, reader)


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, Spacing | None]:
    """Read a 2-D image and its pixel spacing.

    Returns ``(array (H, W), spacing (sx, sy) in mm or None)``. Greyscale stored as RGB(A)
    becomes one channel; colour becomes luminance (ITU-R 601). A 2-D image stored as 3-D
    with one slice is returned as 2-D. Formats without a physical header (PNG, JPEG, BMP,
    TIFF) give ``None``. DICOM uses PixelSpacing (0028,0030), else ImagerPixelSpacing
    (0018,1164) with a warning, else None.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    if image_suffix(path) not in SUFFIXES:
        raise ImageReadError(f"{path}: unsupported image format {image_suffix(path)!r}; "
                             f"supported: {', '.join(sorted(SUFFIXES))}")
    if image_suffix(path) in (".jpg", ".jpeg"):
        _check_jpeg_complete(path)
    reader = _reader(path)
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise ImageReadError(f"{path}: corrupt or truncated image ({_first_line(err)})") from err
    array = sitk.GetArrayFromImage(image)
    if image.GetDimension() == 3:
        if array.shape[0] != 1:
            raise ImageReadError(
                f"{path}: a 3-D image with {array.shape[0]} slices; expected a 2-D image")
        array = array[0]
    if image.GetNumberOfComponentsPerPixel() > 1:
        array = _to_grey(array)
    if array.ndim != 2 or min(array.shape) == 0:
        raise ImageReadError(f"{path}: expected a 2-D image, got array of shape {array.shape}")
    return array, _spacing(path, reader)


def write_image(path: str | os.PathLike, array: np.ndarray,
                spacing: Spacing | None = None) -> None:
    """Write a 2-D array atomically; spacing is stored where the format has a header."""
    path = Path(path)
    image = sitk.GetImageFromArray(np.asarray(array))
    if spacing is not None:
        image.SetSpacing(tuple(float(s) for s in spacing))
    suffix = image_suffix(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    try:
        sitk.WriteImage(image, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


#: intensity percentiles mapped to 0 and 1 by :func:`normalise_intensity`
INTENSITY_PERCENTILES = (0.5, 99.5)
#: at most this many pixels (an even subsample) estimate the percentiles
_PERCENTILE_SAMPLES = 1 << 18


def intensity_window(array: np.ndarray) -> tuple[float, float]:
    """``(low, high)``: the 0.5th and 99.5th intensity percentiles of ``array``.

    Estimated on an even subsample of at most 2**18 pixels (deterministic), so the cost
    does not grow with the image; the same image in any container (8-bit, 16-bit, float)
    gets the same window up to the container's scale.
    """
    flat = np.asarray(array).reshape(-1)
    step = max(1, flat.size // _PERCENTILE_SAMPLES)
    sample = flat[::step].astype(np.float64)
    lo, hi = np.percentile(sample, INTENSITY_PERCENTILES)
    return float(lo), float(hi)


def normalise_intensity(array: np.ndarray) -> np.ndarray:
    """Any-dtype image -> float32 in [0, 1]: the 0.5th..99.5th percentile window, clipped.

    One convention for every container: an 8-bit radiograph and its 16-bit copy reach the
    network identically (a fixed /255 for 8-bit but min-max for 16-bit would not), and a
    few saturated or dead pixels do not compress the contrast. A constant image gives 0.
    """
    array = np.asarray(array)
    lo, hi = intensity_window(array)
    if not hi > lo:
        lo, hi = float(np.min(array)), float(np.max(array))
        if not hi > lo:
            return np.zeros(array.shape, dtype=np.float32)
    if array.dtype in (np.uint8, np.uint16):  # a lookup table: one gather per pixel
        levels = np.arange(np.iinfo(array.dtype).max + 1, dtype=np.float32)
        table = np.clip((levels - np.float32(lo)) * np.float32(1.0 / (hi - lo)), 0.0, 1.0)
        return table[array]
    out = (array.astype(np.float32) - np.float32(lo)) * np.float32(1.0 / (hi - lo))
    return np.clip(out, 0.0, 1.0, out=out)


def _reader(path) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    if image_suffix(path) in (".dcm", ".dicom"):
        reader.SetImageIO("GDCMImageIO")
    reader.LoadPrivateTagsOn()
    return reader


def _spacing(path, reader: sitk.ImageFileReader) -> Spacing | None:
    suffix = image_suffix(path)
    if suffix in (".dcm", ".dicom") or reader.GetImageIO() == "GDCMImageIO":
        return _dicom_spacing(path, reader)
    if not SUFFIXES.get(suffix, False):
        return None
    spacing = reader.GetSpacing()
    return float(spacing[0]), float(spacing[1])


def _dicom_spacing(path, reader: sitk.ImageFileReader) -> Spacing | None:
    keys = set(reader.GetMetaDataKeys())
    for tag in (DICOM_PIXEL_SPACING, DICOM_IMAGER_PIXEL_SPACING):
        if tag in keys and reader.GetMetaData(tag).strip():
            values = reader.GetMetaData(tag).replace(" ", "").split("\\")
            try:
                row, col = float(values[0]), float(values[1])
            except (ValueError, IndexError) as err:
                raise ImageReadError(
                    f"{path}: DICOM tag ({tag.replace('|', ',')}) is not two numbers: "
                    f"{reader.GetMetaData(tag)!r}") from err
            if tag == DICOM_IMAGER_PIXEL_SPACING:
                log.warning("%s: no PixelSpacing (0028,0030); using ImagerPixelSpacing "
                            "(0018,1164), which is measured at the detector", path)
            # DICOM stores (row spacing, column spacing) = (y, x)
            return col, row
    return None


def _check_jpeg_complete(path: Path) -> None:
    """libjpeg fills a truncated JPEG with grey and only warns: check the EOI marker."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(2)
        fh.seek(max(0, size - 4096))
        tail = fh.read()
    if head != b"\xff\xd8":
        raise ImageReadError(f"{path}: corrupt JPEG (no start-of-image marker)")
    if b"\xff\xd9" not in tail:
        raise ImageReadError(f"{path}: truncated JPEG (no end-of-image marker)")


def _to_grey(array: np.ndarray) -> np.ndarray:
    rgb = array[..., :3]
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return np.ascontiguousarray(rgb[..., 0])
    grey = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.round(grey).astype(array.dtype)


def _first_line(err: Exception) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    for line in lines:
        if "ERROR" in line.upper() or "cannot" in line.lower() or "fail" in line.lower():
            return line[-200:]
    return lines[-1][-200:] if lines else type(err).__name__
