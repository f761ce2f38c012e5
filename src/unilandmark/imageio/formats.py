"""Which image container a file holds: by its suffix, and by its first bytes.

A JPEG named ``.tif``, a PNG named ``.jpg`` or a DICOM file without an extension is read
by what it contains; the suffix decides only where the content says nothing (a gzipped
NIfTI, a corrupt file).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from ..core.errors import InputError

log = logging.getLogger(__name__)

#: container kind -> (SimpleITK ImageIO, whether its header carries a physical spacing)
KINDS: dict[str, tuple[str, bool]] = {
    "png": ("PNGImageIO", False),
    "jpeg": ("JPEGImageIO", False),
    "bmp": ("BMPImageIO", False),
    "tiff": ("TIFFImageIO", False),
    "dicom": ("GDCMImageIO", True),
    "metaimage": ("MetaImageIO", True),
    "nrrd": ("NrrdImageIO", True),
    "nifti": ("NiftiImageIO", True),
}

#: lower-case suffix -> container kind
SUFFIXES: dict[str, str] = {
    ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".bmp": "bmp", ".tif": "tiff",
    ".tiff": "tiff", ".mha": "metaimage", ".mhd": "metaimage", ".nrrd": "nrrd",
    ".nhdr": "nrrd", ".nii": "nifti", ".nii.gz": "nifti", ".dcm": "dicom", ".dicom": "dicom",
}

_HEAD_BYTES = 512
_BMP_DIB_SIZES = {12, 40, 52, 56, 64, 108, 124}
_METAIMAGE = re.compile(rb"^\s*(ObjectType|NDims|ObjectSubType)\s*=")
_DICOM_VR = re.compile(rb"^[A-Z]{2}$")


class UnsupportedFormat(InputError):
    """Neither the suffix nor the content names a supported image container."""


def image_suffix(path: str | os.PathLike) -> str:
    """The lower-case suffix that names the container ('' when none)."""
    name = Path(path).name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return Path(name).suffix


def content_kind(head: bytes) -> str | None:
    """The container kind named by a file's first bytes, or None when they name none."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[128:132] == b"DICM":
        return "dicom"
    if head[:2] in (b"\x02\x00", b"\x08\x00") and _DICOM_VR.match(head[4:6]):
        return "dicom"  # no preamble: a group 0002/0008 element in explicit VR
    if head.startswith(b"NRRD000"):
        return "nrrd"
    if _METAIMAGE.match(head):
        return "metaimage"
    if len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00") and (
            head[:4] in (b"\x5c\x01\x00\x00", b"\x00\x00\x01\x5c")):
        return "nifti"
    if head.startswith(b"BM") and len(head) >= 18 and \
            int.from_bytes(head[14:18], "little") in _BMP_DIB_SIZES:
        return "bmp"
    return None


def sniff(path: str | os.PathLike) -> str | None:
    """The kind named by the content of ``path`` (None when unreadable or unknown)."""
    try:
        with open(path, "rb") as fh:
            return content_kind(fh.read(_HEAD_BYTES))
    except OSError:
        return None


def is_image_file(path: str | os.PathLike) -> bool:
    """True for a supported suffix, or a file whose content is a supported container."""
    if image_suffix(path) in SUFFIXES:
        return True
    path = Path(path)
    return path.is_file() and sniff(path) is not None


def container_kind(path: str | os.PathLike) -> str:
    """The kind to read ``path`` as: the content's where it names one, else the suffix's.

    A disagreement is logged (the file is read by its content). Raises UnsupportedFormat
    when neither names a supported container.
    """
    by_suffix = SUFFIXES.get(image_suffix(path))
    by_content = sniff(path)
    if by_content is not None:
        if by_suffix is not None and by_suffix != by_content:
            log.warning("%s: the content is %s although the name says %s; reading it as %s",
                        path, by_content.upper(), by_suffix.upper(), by_content.upper())
        return by_content
    if by_suffix is not None:
        return by_suffix
    shown = image_suffix(path) or "(no extension)"
    raise UnsupportedFormat(
        f"{path}: unsupported image format {shown!r} and content not recognised; "
        f"supported: {', '.join(sorted(SUFFIXES))} (or DICOM by content)")
