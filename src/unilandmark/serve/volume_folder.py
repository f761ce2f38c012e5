"""The folder of volumes under review: which volumes it holds, and nothing outside it.

Volumes are the regular files directly inside the folder named ``*.nii``, ``*.nii.gz``,
``*.nrrd`` or ``*.mha`` (one file each: a header and its voxels together); hidden files
are skipped, and every lookup is confined to the folder as for images
(:class:`~unilandmark.serve.folder.ImageFolder`: ``..``, separators, absolute paths and
links that point outside are refused the same way).

Not listed: detached headers (``.mhd``, ``.nhdr``) and DICOM. A detached header names
another file that holds the voxels, which could lie anywhere; for the same reason an
``.mha`` or ``.nrrd`` whose header names a separate data file is refused when it is
opened (:func:`check_self_contained`). A DICOM series (a folder of slices) is not listed
either: convert it first (``read_volume(folder)`` then ``write_volume("scan.nrrd", ...)``).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..imageio.formats import image_suffix
from ..imageio.read import ImageReadError
from .folder import ImageFolder

#: the volume files the review app lists (suffix, lower case)
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha")
#: bytes of a header searched for a separate data file
_HEADER_BYTES = 64 * 1024
_METAIMAGE_DATA = re.compile(rb"^\s*ElementDataFile\s*=\s*(?P<value>\S.*?)\s*$",
                             re.MULTILINE)
_NRRD_DATA = re.compile(rb"^\s*data\s?file\s*:\s*(?P<value>\S.*?)\s*$",
                        re.MULTILINE | re.IGNORECASE)


class VolumeFolder(ImageFolder):
    """The volumes directly inside ``root`` (:data:`VOLUME_SUFFIXES`); every lookup is
    confined to ``root``. Uploads are not offered for volumes."""

    def accepts(self, name: str) -> bool:
        return image_suffix(name) in VOLUME_SUFFIXES

    def store_upload(self, filename: str, data: bytes) -> str:  # pragma: no cover - no route
        raise NotImplementedError("the volume review app takes no uploads")


def check_self_contained(path: Path) -> None:
    """Refuse (:class:`ImageReadError`) an ``.mha`` or ``.nrrd`` file whose header names a
    separate file for its voxels (``ElementDataFile`` other than ``LOCAL``; a NRRD ``data
    file`` field): the review app reads nothing outside its folder, and one file is the
    only way to be sure of that."""
    kind = image_suffix(path)
    if kind not in (".mha", ".nrrd"):
        return
    with open(path, "rb") as fh:
        head = fh.read(_HEADER_BYTES)
    if kind == ".nrrd":
        head = head.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]  # the header ends there
        match = _NRRD_DATA.search(head)
    else:
        match = _METAIMAGE_DATA.search(head)
        if match is not None and match.group("value").strip().upper() == b"LOCAL":
            match = None
    if match is not None:
        named = match.group("value").decode("latin-1")[:80]
        raise ImageReadError(f"{path.name}: its header names a separate data file "
                             f"({named!r}); the review app reads volumes held in one file "
                             "only (save it as .nii.gz, .nrrd or .mha with its voxels)")
