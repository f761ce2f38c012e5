"""DICOM header rules: pixel spacing and the VOI LUT / window, read with pydicom.

The pixels themselves are decoded by SimpleITK (GDCM: every transfer syntax, the modality
rescale, and MONOCHROME1 inverted to MONOCHROME2); this module reads what GDCM leaves
out, from the header alone (``stop_before_pixels``; loading never runs code from a file).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from ..core.errors import InputError
from ..core.types import Spacing

log = logging.getLogger(__name__)


class DicomHeaderError(InputError):
    """A DICOM header that cannot be read or holds a malformed value."""


def read_header(path: str | os.PathLike):
    """The DICOM data set of ``path`` without its pixel data (a pydicom Dataset)."""
    try:
        import pydicom
    except ImportError as err:  # pragma: no cover - pydicom is a dependency
        raise DicomHeaderError(f"{path}: reading DICOM needs pydicom "
                               "(pip install pydicom)") from err
    try:
        return pydicom.dcmread(os.fspath(path), stop_before_pixels=True, force=True)
    except Exception as err:  # noqa: BLE001 - pydicom raises many kinds on a bad header
        raise DicomHeaderError(f"{path}: unreadable DICOM header ({err})") from err


def _pair(ds, keyword: str, tag: str, path) -> tuple[float, float] | None:
    """Two numbers of a header element, or None when it is absent or empty."""
    if keyword not in ds:
        return None
    try:
        raw = ds[keyword].value
        if raw is None or raw == "":
            return None
        items = list(raw) if isinstance(raw, Sequence) and not isinstance(raw, str) else [raw]
        if len(items) == 1 and isinstance(items[0], str):
            items = items[0].split("\\")
        row, col = float(items[0]), float(items[1])
    except (TypeError, ValueError, IndexError) as err:
        raise DicomHeaderError(f"{path}: DICOM tag {tag} ({keyword}) is not two numbers: "
                               f"{ds[keyword].repval}") from err
    return row, col


def dicom_spacing(ds, path) -> Spacing | None:
    """``(sx, sy)`` in mm per pixel from the header, as the DICOM standard describes.

    PixelSpacing (0028,0030), spacing in the patient plane, wins. Otherwise
    ImagerPixelSpacing (0018,1164), measured at the detector, is divided by the
    EstimatedRadiographicMagnificationFactor (0018,1114) where one is given (with a
    warning that says so), or used as it is with a warning that distances in the patient
    are smaller by the magnification. DICOM stores (row, column) = (y, x).
    """
    pixel = _pair(ds, "PixelSpacing", "(0028,0030)", path)
    if pixel is not None:
        return pixel[1], pixel[0]
    imager = _pair(ds, "ImagerPixelSpacing", "(0018,1164)", path)
    if imager is None:
        return None
    factor = None
    if "EstimatedRadiographicMagnificationFactor" in ds:
        try:
            factor = float(ds.EstimatedRadiographicMagnificationFactor)
        except (TypeError, ValueError):
            factor = None
    if factor is not None and np.isfinite(factor) and factor > 0:
        log.warning("%s: no PixelSpacing (0028,0030); using ImagerPixelSpacing (0018,1164) "
                    "divided by EstimatedRadiographicMagnificationFactor (0018,1114) %g",
                    path, factor)
        return imager[1] / factor, imager[0] / factor
    log.warning("%s: no PixelSpacing (0028,0030); using ImagerPixelSpacing (0018,1164), "
                "which is measured at the detector (distances in the patient are smaller by "
                "the magnification, which the file does not give)", path)
    return imager[1], imager[0]


def has_voi(ds) -> bool:
    """True where the header carries a VOI LUT Sequence or a Window Center/Width."""
    return "VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds)


def apply_voi(array: np.ndarray, ds, path) -> np.ndarray:
    """The image as a radiologist sees it: the first VOI LUT or window of the header.

    ``array`` is what SimpleITK returns: modality values (rescale applied) and, for
    MONOCHROME1, GDCM's inversion of the stored values ``(2**BitsStored - 1) - v``
    before the rescale. That inversion is undone, the VOI applied to the modality values
    (as the standard orders it), and the result inverted again for MONOCHROME1, so bright
    stays bone. Returns float32; unchanged ``array`` when there is no VOI.
    """
    if not has_voi(ds):
        return array
    try:
        from pydicom.pixels import apply_voi_lut
    except ImportError:  # pragma: no cover - pydicom < 3
        from pydicom.pixel_data_handlers.util import apply_voi_lut
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    values = array.astype(np.float64)
    try:
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
        if photometric == "MONOCHROME1":
            top = 2 ** int(ds.BitsStored) - 1
            values = slope * top + 2 * intercept - values
        if np.array_equal(values, np.round(values)):  # a LUT is indexed by integers
            values = values.astype(np.int64)
        out = np.asarray(apply_voi_lut(values, ds, index=0), dtype=np.float64)
    except Exception as err:  # noqa: BLE001 - a malformed VOI element of any kind
        raise DicomHeaderError(f"{path}: cannot apply the DICOM VOI LUT / window "
                               f"({type(err).__name__}: {err})") from err
    if photometric == "MONOCHROME1":
        out = -out
    return out.astype(np.float32)
