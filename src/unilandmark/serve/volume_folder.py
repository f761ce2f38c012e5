"""The folder of volumes under review: which volumes it holds, and nothing outside it.

Volumes are of two kinds, both directly inside the folder (hidden names, ``.name``, are
skipped):

- **files** named ``*.nii``, ``*.nii.gz``, ``*.nrrd`` or ``*.mha`` (one file each: a
  header and its voxels together), listed and looked up by their file name; record id
  the file's stem (``.nii.gz`` counted whole);
- **DICOM series folders**: a subfolder whose files are DICOM (one of its regular files
  inside it starts as a DICOM file does:
  :func:`~unilandmark.imageio.volume.holds_dicom_series`, the test the ``volume-csv``
  dataset adapter makes too),
  listed and looked up by the subfolder's name, which is also its record id
  (``patient1/`` is ``patient1``; a name with dots is kept whole). The check is cached per
  subfolder by its modification time, so listing does not rescan unchanged folders.

Every lookup is confined to the folder as for images
(:class:`~unilandmark.serve.folder.ImageFolder`: ``..``, separators, absolute paths and
links that point outside are refused the same way); a series subfolder must resolve
inside the folder too.

Before a volume is read (:func:`check_self_contained`):

- a series folder must hold regular files only, each inside it: a link to a file
  elsewhere (also elsewhere in the review folder), a broken link, a nested folder (not
  hidden) or a device is refused with one sentence, before GDCM opens any file (it would
  read every file of the folder, hidden ones included, to sort the series); a folder
  holding several series is refused naming them (the page shows one series per folder:
  split them);
- an ``.mha`` or ``.nrrd`` whose header names a separate data file is refused.

Not listed: detached headers (``.mhd``, ``.nhdr``): they name another file that holds
the voxels, which could lie anywhere; a single-file DICOM volume (convert it first:
``read_volume(path)`` then ``write_volume("scan.nrrd", ...)``); a subfolder without a
DICOM file (series in nested folders are not searched).
"""

from __future__ import annotations

import os
import re
import stat
import threading
from pathlib import Path

from ..core.naming import file_stem
from ..imageio.formats import image_suffix
from ..imageio.read import ImageReadError
from ..imageio.volume import dicom_series_ids, holds_dicom_series
from ..imageio.volume import volume_version as volume_version  # noqa: F401 - for volume_state
from .folder import ImageFolder, UnknownImage

#: the volume files the review app lists (suffix, lower case)
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha")
#: bytes of a header searched for a separate data file
_HEADER_BYTES = 64 * 1024
_METAIMAGE_DATA = re.compile(rb"^\s*ElementDataFile\s*=\s*(?P<value>\S.*?)\s*$",
                             re.MULTILINE)
_NRRD_DATA = re.compile(rb"^\s*data\s?file\s*:\s*(?P<value>\S.*?)\s*$",
                        re.MULTILINE | re.IGNORECASE)


class VolumeFolder(ImageFolder):
    """The volumes directly inside ``root``: files (:data:`VOLUME_SUFFIXES`) and DICOM
    series subfolders; every lookup is confined to ``root``. Uploads are not offered for
    volumes."""

    def __init__(self, root: str | os.PathLike):
        super().__init__(root)
        #: subfolder -> (its mtime_ns, whether it holds a DICOM file)
        self._series_cache: dict[str, tuple[int, bool]] = {}
        self._series_lock = threading.Lock()

    def accepts(self, name: str) -> bool:
        return image_suffix(name) in VOLUME_SUFFIXES

    def names(self) -> list[str]:
        """Names of the folder's volumes, sorted: files and series subfolders."""
        out = []
        for entry in os.scandir(self.root):
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if path.is_dir():
                if self.is_series(path):
                    out.append(entry.name)
            elif self.accepts(entry.name) and path.is_file() and self._inside(path):
                out.append(entry.name)
        return sorted(out)

    def path(self, name: str) -> Path:
        """The file or series folder of volume ``name``; :class:`UnknownImage` unless it
        is listed and inside."""
        if (not name or "/" in name or "\\" in name or "\0" in name or name in (".", "..")
                or name.startswith(".")):
            raise UnknownImage(f"{name!r}: not a volume of this folder")
        path = self.root / name
        if path.is_dir():
            if self.is_series(path):
                return path
            raise UnknownImage(f"{name!r}: not a volume of this folder")
        return super().path(name)

    def record_id(self, name: str) -> str:
        """The record id of volume ``name``: a series folder's name, a file's stem."""
        return name if (self.root / name).is_dir() else file_stem(name)

    def shared_stem(self, name: str) -> list[str]:
        """Other volumes whose record id equals that of ``name`` (``lps`` and
        ``lps.nii.gz``; ``scan.nii`` and ``scan.nii.gz``)."""
        rid = self.record_id(name)
        return [n for n in self.names() if n != name and self.record_id(n) == rid]

    def is_series(self, path: Path) -> bool:
        """Whether subfolder ``path`` is listed as a DICOM series: not hidden, inside the
        folder, and one of its regular files (inside it) sniffs as DICOM. Cached by the
        subfolder's modification time (files added, removed or renamed change it)."""
        if path.name.startswith(".") or path.parent != self.root or not self._inside(path):
            return False
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return False
        key = str(path)
        with self._series_lock:
            cached = self._series_cache.get(key)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        found = holds_dicom_series(path)
        with self._series_lock:
            self._series_cache[key] = (mtime, found)
        return found

    def store_upload(self, filename: str, data: bytes) -> str:  # pragma: no cover - no route
        raise NotImplementedError("the volume review app takes no uploads")


def check_self_contained(path: Path) -> None:
    """Refuse (:class:`ImageReadError`) a volume that would read something outside its
    place: a series folder that holds anything but regular files inside it, or several
    series (:func:`check_series_folder`); an ``.mha`` or ``.nrrd`` file whose header names
    a separate file for its voxels (``ElementDataFile`` other than ``LOCAL``; a NRRD
    ``data file`` field): the review app reads nothing outside its folder, and one file is
    the only way to be sure of that."""
    if path.is_dir():
        check_series_folder(path)
        return
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


def check_series_folder(folder: Path) -> None:
    """Refuse (:class:`ImageReadError`, one sentence naming the folder and the entry) a
    DICOM series folder holding anything but regular files inside it (a link to a file
    elsewhere, a broken link, a nested folder, a device or pipe; hidden files too, as GDCM
    reads them all; a hidden folder is left alone), or several series. Nothing is opened
    before the entries pass."""
    inside = folder.resolve()
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        where = f"{folder.name}/{entry.name}"
        try:
            linked = entry.is_symlink()
            target = Path(entry.path).resolve(strict=True) if linked else None
            mode = os.stat(entry.path).st_mode
        except (OSError, RuntimeError):
            raise ImageReadError(f"{where}: a broken link in this DICOM series folder; the "
                                 "review app reads a series from the regular files inside "
                                 "its folder only (remove the link)") from None
        if stat.S_ISDIR(mode):
            if entry.name.startswith("."):
                continue  # never read (sub-folders are not searched), never listed
            raise ImageReadError(f"{where}: a folder inside this DICOM series folder; the "
                                 "review app reads a series from the files directly in its "
                                 "folder only (move the nested folder out: each series in a "
                                 "folder of its own, side by side)")
        if not stat.S_ISREG(mode):
            raise ImageReadError(f"{where}: not a regular file; the review app reads a DICOM "
                                 "series from the regular files inside its folder only")
        if target is not None and target.parent != inside:
            raise ImageReadError(f"{where}: a link to a file outside this DICOM series folder; "
                                 "the review app reads a series from the regular files "
                                 "inside its folder only (copy the file in instead)")
    found = dicom_series_ids(folder)
    if len(found) > 1:
        listed = "; ".join(f"{uid} ({n} files)" for uid, n in found.items())
        raise ImageReadError(f"{folder.name}: {len(found)} DICOM series in this folder "
                             f"({listed}); the review app shows one series per folder: "
                             "split them, each series in a folder of its own")
