"""Image reading with pixel spacing: ``read_image(path) -> (array, spacing)``.

``array`` is 2-D ``(H, W)`` in the file's own dtype (16-bit stays 16-bit; float32 where a
DICOM VOI LUT or window was applied); ``spacing`` is ``(sx, sy)`` in mm per pixel or None.

The container is recognised by content where the extension disagrees (:mod:`.formats`).
JPEG is decoded by libjpeg-turbo (simplejpeg) in strict mode, so a truncated or corrupt
file is refused by the decoder itself; everything else goes through SimpleITK, DICOM with
GDCM plus the header rules of :mod:`.dicom`. Before any pixel is decoded, the size read
from the header is checked against the pixel-count limit and the minimum image size
(:mod:`..core.limits`). A spacing outside the plausible range is dropped with a warning (or
refused, with ``bad_spacing="raise"``): no millimetres rather than wrong ones.

``read_image_reduced(path, least_size)`` reads no more pixels than its user needs: a JPEG
is decoded by libjpeg-turbo's DCT scaling at the smallest eighth of its size that still
has ``least_size((W, H))`` pixels, with its ``pixel_scale`` and original size
(:class:`ReducedRead`); other formats whole.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import SimpleITK as sitk

from ..core.atomic import atomic_path
from ..core.errors import InputError
from ..core.limits import size_fault, spacing_fault
from ..core.types import Spacing
from . import dicom
from .formats import (
    KINDS,
    SUFFIXES,
    UnsupportedFormat,
    container_kind,
    image_suffix,
    is_image_file,
)

__all__ = ["ImageReadError", "ReducedRead", "SUFFIXES", "image_suffix", "is_image_file",
           "read_image", "read_image_reduced", "read_image_info", "write_image",
           "normalise_intensity", "intensity_window"]

log = logging.getLogger(__name__)


class ImageReadError(InputError):
    """An image file could not be read; the message names the file and the fault."""


def read_image_info(path: str | os.PathLike, max_pixels: int | None = None,
                    bad_spacing: str = "warn") -> tuple[tuple[int, int], Spacing | None]:
    """Size ``(W, H)`` and spacing from the header alone (no pixel data decoded).

    Refuses (ImageReadError) what :func:`read_image` would refuse from the header: a
    3-D image, more pixels than the limit, an image below the minimum size.
    """
    path = _existing(path)
    kind = _kind(path)
    reader = _reader(path, kind)
    size = _header_size(path, reader, max_pixels)
    return size, _spacing(path, kind, reader, bad_spacing)


def read_image(path: str | os.PathLike, max_pixels: int | None = None,
               bad_spacing: str = "warn") -> tuple[np.ndarray, Spacing | None]:
    """Read a 2-D image and its pixel spacing.

    Returns ``(array (H, W), spacing (sx, sy) in mm or None)``. Greyscale stored as RGB(A)
    becomes one channel; colour becomes luminance (ITU-R 601). A 2-D image stored as 3-D
    with one slice is returned as 2-D. Formats without a physical header (PNG, JPEG, BMP,
    TIFF) give ``None``. DICOM: PixelSpacing (0028,0030), else ImagerPixelSpacing
    (0018,1164) corrected by EstimatedRadiographicMagnificationFactor (0018,1114) where
    given, with a warning, else None; MONOCHROME1 is inverted to MONOCHROME2; the first
    VOI LUT or window is applied where the header has one.

    ``max_pixels`` caps width x height read from the header before decoding (default:
    ``$UNILANDMARK_MAX_PIXELS`` or 200 megapixels). ``bad_spacing``: ``"warn"`` drops an
    implausible header spacing with a warning, ``"raise"`` refuses the file.
    """
    path = _existing(path)
    kind = _kind(path)
    if kind == "jpeg":
        array = _read_jpeg(path, max_pixels)
        if array is not None:
            return array, None
    reader = _reader(path, kind)
    _header_size(path, reader, max_pixels)
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise ImageReadError(f"{path}: corrupt or truncated image ({itk_message(err)})") from err
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
    array = finite_pixels(array, path)
    if kind != "dicom":
        return array, _spacing(path, kind, reader, bad_spacing)
    header = _dicom_header(path)
    spacing = _spacing(path, kind, reader, bad_spacing, header)
    if image.GetNumberOfComponentsPerPixel() == 1:
        try:
            array = dicom.apply_voi(array, header, path)
        except dicom.DicomHeaderError as err:
            raise ImageReadError(str(err)) from err
    return array, spacing


class ReducedRead(NamedTuple):
    """An image read at ``pixel_scale`` original pixels per array pixel: ``array``
    (h, w), the file's ``spacing`` (mm per *original* pixel, or None) and its
    ``original_size`` (W, H). Array pixel ``i`` covers original pixels ``[i k, (i + 1) k)``
    for ``k = pixel_scale`` (the last one may reach past the image's edge), so a position
    ``x`` in the array's continuous coordinates is ``x k`` in the original's."""

    array: np.ndarray
    spacing: Spacing | None
    original_size: tuple[int, int]
    pixel_scale: float


#: JPEG's DCT scaling decodes at ``n / 8`` of the stored size for n = 1..8
_JPEG_EIGHTHS = range(1, 9)


def read_image_reduced(path: str | os.PathLike,
                       least_size: Callable[[tuple[int, int]], tuple[int, int]],
                       max_pixels: int | None = None, bad_spacing: str = "warn") -> ReducedRead:
    """Read an image no larger than its user needs: a JPEG is decoded by libjpeg-turbo's
    DCT scaling at the smallest of 1/8, 2/8, ..., 8/8 of its size that still has at least
    ``least_size((W, H))`` = (w, h) pixels; every other format is read whole
    (``pixel_scale`` 1). The same checks and errors as :func:`read_image`.

    Decoding a 1935 x 2400 cephalogram at 3/8 makes its decode, intensity window and
    resizes about 3x cheaper when the network never looks at it finer than that.
    """
    path = _existing(path)
    if _kind(path) == "jpeg":
        reduced = _read_jpeg_reduced(path, least_size, max_pixels)
        if reduced is not None:
            return reduced
    array, spacing = read_image(path, max_pixels, bad_spacing)
    return ReducedRead(array, spacing, (array.shape[1], array.shape[0]), 1.0)


def _read_jpeg_reduced(path: Path, least_size, max_pixels) -> ReducedRead | None:
    data = path.read_bytes()
    width, height, colour = _jpeg_header(path, data, max_pixels)
    need_w, need_h = least_size((width, height))
    eighths = next((n for n in _JPEG_EIGHTHS if math.ceil(width * n / 8) >= need_w
                    and math.ceil(height * n / 8) >= need_h), 8)
    size = math.ceil(width * eighths / 8), math.ceil(height * eighths / 8)
    scaling = {} if eighths == 8 else {"min_width": size[0], "min_height": size[1]}
    array = _decode_jpeg(path, data, colour, **scaling)
    if array is None or (array.shape[1], array.shape[0]) != size:
        return None  # a colour model for SimpleITK, or not the scale asked for: read whole
    return ReducedRead(array, None, (width, height), 8 / eighths)


def write_image(path: str | os.PathLike, array: np.ndarray,
                spacing: Spacing | None = None) -> None:
    """Write a 2-D array atomically; spacing is stored where the format has a header."""
    path = Path(path)
    image = sitk.GetImageFromArray(np.asarray(array))
    if spacing is not None:
        image.SetSpacing(tuple(float(s) for s in spacing))
    with atomic_path(path, suffix=image_suffix(path)) as tmp:
        sitk.WriteImage(image, str(tmp))


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


def finite_pixels(array: np.ndarray, source: str | os.PathLike = "image") -> np.ndarray:
    """``array`` with NaN and Inf pixels set to the background (its smallest finite value),
    with a warning naming ``source`` and the count; an integer array is returned as it is.

    Float MetaImage/NIfTI/NRRD files often pad with NaN; left in, one NaN makes the
    intensity window NaN and the whole image blank. Raises :class:`ImageReadError` when
    no pixel is finite."""
    if array.dtype.kind != "f":
        return array
    finite = np.isfinite(array)
    bad = int(array.size - np.count_nonzero(finite))
    if not bad:
        return array
    if bad == array.size:
        raise ImageReadError(f"{source}: no finite pixel (all {bad} are NaN or Inf)")
    background = array[finite].min()
    log.warning("%s: %d NaN/Inf pixel%s set to the background (%g)", source, bad,
                "" if bad == 1 else "s", background)
    return np.where(finite, array, background)


def normalise_intensity(array: np.ndarray) -> np.ndarray:
    """Any-dtype image -> float32 in [0, 1]: the 0.5th..99.5th percentile window, clipped.

    One convention for every container: an 8-bit radiograph and its 16-bit copy reach the
    network identically (a fixed /255 for 8-bit but min-max for 16-bit would not), and a
    few saturated or dead pixels do not compress the contrast. A constant image gives 0.
    NaN and Inf pixels (an array not read by :func:`read_image`, which already sets them to
    the background) are left out of the window and become 0, the background.
    """
    array = np.asarray(array)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        array = finite_pixels(array, "array") if np.isfinite(array).any() else \
            np.zeros(array.shape, dtype=np.float32)
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


def _existing(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    return path


def _kind(path: Path) -> str:
    try:
        return container_kind(path)
    except UnsupportedFormat as err:
        raise ImageReadError(str(err)) from None


def _reader(path: Path, kind: str) -> sitk.ImageFileReader:
    """A SimpleITK reader with the ImageIO of ``kind`` (whatever the file is named)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.SetImageIO(KINDS[kind][0])
    reader.LoadPrivateTagsOn()
    return reader


def _header_size(path: Path, reader: sitk.ImageFileReader,
                 max_pixels: int | None) -> tuple[int, int]:
    """Read the header; refuse 3-D, too many pixels or too small before decoding."""
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise ImageReadError(f"{path}: corrupt or truncated image: unreadable header "
                             f"({itk_message(err)})") from err
    size = reader.GetSize()
    if len(size) == 3 and size[2] != 1:
        raise ImageReadError(f"{path}: a 3-D image with {size[2]} slices; expected a 2-D image")
    if len(size) < 2 or min(size[:2]) == 0:
        raise ImageReadError(f"{path}: corrupt or truncated image (the header gives no size)")
    fault = size_fault(size[0], size[1], 1, max_pixels)
    if fault:
        raise ImageReadError(f"{path}: {fault}")
    return int(size[0]), int(size[1])


def _jpeg_header(path: Path, data: bytes, max_pixels: int | None) -> tuple[int, int, str]:
    """(W, H, colour model) from a JPEG's header, the size checked against the limits."""
    import simplejpeg

    try:
        height, width, colour, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError as err:
        raise ImageReadError(f"{path}: corrupt JPEG header ({err})") from err
    fault = size_fault(width, height, 1, max_pixels)
    if fault:
        raise ImageReadError(f"{path}: {fault}")
    return width, height, colour


def _read_jpeg(path: Path, max_pixels: int | None) -> np.ndarray | None:
    """Decode a JPEG strictly (libjpeg-turbo's warnings are errors) to one channel.

    Returns None for colour models the strict decoder does not convert (CMYK, YCCK):
    those go through SimpleITK. A valid file with trailing bytes after its end-of-image
    marker is fine; missing or corrupt entropy-coded data is refused.
    """
    data = path.read_bytes()
    return _decode_jpeg(path, data, _jpeg_header(path, data, max_pixels)[2])


def _decode_jpeg(path: Path, data: bytes, colour: str, **scaling) -> np.ndarray | None:
    """One channel of a JPEG whose header was checked (``colour``: its colour model), at
    ``scaling`` (simplejpeg's ``min_width``/``min_height``); None for a colour model the
    strict decoder does not convert."""
    import simplejpeg

    if colour not in ("Gray", "YCbCr", "RGB"):
        return None
    try:
        array = simplejpeg.decode_jpeg(data, colorspace="GRAY", strict=True, **scaling)
    except ValueError as err:
        if "extraneous bytes" not in str(err):
            raise ImageReadError(f"{path}: corrupt or truncated JPEG ({err})") from err
        log.warning("%s: %s (harmless; decoded anyway)", path, err)
        array = simplejpeg.decode_jpeg(data, colorspace="GRAY", strict=False, **scaling)
    return np.ascontiguousarray(array[..., 0])


def _dicom_header(path: Path):
    try:
        return dicom.read_header(path)
    except dicom.DicomHeaderError as err:
        raise ImageReadError(str(err)) from err


def _spacing(path: Path, kind: str, reader: sitk.ImageFileReader, bad_spacing: str,
             header=None) -> Spacing | None:
    """The header's spacing, checked against the plausible range."""
    if not KINDS[kind][1]:
        return None
    if kind == "dicom":
        try:
            spacing = dicom.dicom_spacing(
                header if header is not None else _dicom_header(path), path)
        except dicom.DicomHeaderError as err:
            raise ImageReadError(str(err)) from err
        if spacing is None:
            return None
    else:
        values = reader.GetSpacing()
        spacing = (float(values[0]), float(values[1]))
    fault = spacing_fault(spacing)
    if fault is None:
        return spacing
    if bad_spacing == "raise":
        raise ImageReadError(f"{path}: spacing in the header: {fault}")
    log.warning("%s: spacing in the header: %s; ignored: no millimetres for this image",
                path, fault)
    return None


def _to_grey(array: np.ndarray) -> np.ndarray:
    rgb = array[..., :3]
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return np.ascontiguousarray(rgb[..., 0])
    grey = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.round(grey).astype(array.dtype)


def itk_message(err: Exception) -> str:
    """The telling line of an ITK error message (they run to several lines)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    for line in lines:
        if "ERROR" in line.upper() or "cannot" in line.lower() or "fail" in line.lower():
            return line[-200:]
    return lines[-1][-200:] if lines else type(err).__name__
