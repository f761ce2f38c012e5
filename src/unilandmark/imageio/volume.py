"""Volume reading and writing with the world geometry: ``read_volume(path) -> (array,
VolumeGeometry)``.

``array`` is ``(Z, Y, X)`` as stored (x the fastest axis), in the file's own dtype after
the file's own intensity scaling (NIfTI ``scl_slope``/``scl_inter`` and DICOM Rescale
Slope/Intercept are applied by SimpleITK, so a uint8 NIfTI with a slope is read as
float32). The geometry (:class:`~unilandmark.core.world.VolumeGeometry`) is in LPS
millimetres, as ITK reads every format (a NIfTI's RAS affine is converted by ITK).

Formats: NIfTI (``.nii``, ``.nii.gz``), NRRD (``.nrrd``, ``.nhdr``), MetaImage (``.mha``,
``.mhd``), a multi-frame DICOM file, and a DICOM series given as its folder (SimpleITK's
``ImageSeriesReader`` over the files GDCM lists for one SeriesInstanceUID). The container
is recognised by content where the extension disagrees (:mod:`.formats`).

Refused with :class:`~unilandmark.imageio.read.ImageReadError` (one sentence naming the
file or folder): a missing file, a 2-D image (a 2-D format, or a 3-D file with one
slice), a 4-D file with more than one volume (a 4-D file holding one volume is read as
3-D), more than one component per voxel, more voxels than the limit or a side below the
minimum (:mod:`..core.limits`), a corrupt or truncated file, a folder with no DICOM series
or with several (unless ``series`` names one), a series whose slices differ in size or
orientation, share a position, or are unevenly spaced. NaN and Inf voxels are set to the
background with a warning (:func:`~unilandmark.imageio.read.finite_pixels`).
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import locale
import logging
import os
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.atomic import atomic_path
from ..core.errors import InputError
from ..core.limits import SANE_SPACING_MM, size_fault
from ..core.world import VolumeGeometry
from .formats import KINDS, UnsupportedFormat, container_kind, image_suffix, sniff
from .read import ImageReadError, finite_pixels, itk_message

__all__ = ["VOLUME_KINDS", "WRITE_SUFFIXES", "read_volume", "read_volume_info",
           "write_volume", "geometry_of", "image_from_array", "dicom_series_ids",
           "holds_dicom_series", "volume_version", "SERIES_SNIFF_FILES"]

log = logging.getLogger(__name__)

#: container kinds that can hold a volume with its geometry (a DICOM folder aside)
VOLUME_KINDS = ("nifti", "nrrd", "metaimage", "dicom")
#: suffixes :func:`write_volume` writes (one file each, so the write can be atomic)
WRITE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha")

#: files of a folder sniffed at most when deciding whether it holds a DICOM series
SERIES_SNIFF_FILES = 64

#: slice positions of a DICOM series may differ from even steps by this fraction of the
#: step (plus :data:`_GAP_TOL_MM`) before the series is refused as unevenly spaced
_GAP_TOL_FRACTION = 0.01
_GAP_TOL_MM = 1e-3
#: a slice step this far (radians) from the slice normal is a tilted (sheared) stack
_TILT_TOL_RAD = 1e-4


# -- geometry <-> SimpleITK --------------------------------------------------------------


@contextlib.contextmanager
def kept_locale() -> Iterator[None]:
    """Restore the process's C locale after SimpleITK's DICOM code (GDCM) changes it: left
    changed, Python's default text encoding in the whole process falls to ASCII, and every
    later ``open()`` without an encoding fails on non-ASCII text."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        if locale.setlocale(locale.LC_ALL) != saved:
            locale.setlocale(locale.LC_ALL, saved)


def _keeps_locale(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with kept_locale():
            return fn(*args, **kwargs)

    return wrapper

def geometry_of(image: sitk.Image) -> VolumeGeometry:
    """The :class:`VolumeGeometry` of a 3-D SimpleITK image (its size, spacing, origin and
    direction, all LPS as ITK keeps them)."""
    return VolumeGeometry(size=image.GetSize(), spacing=image.GetSpacing(),
                          origin=image.GetOrigin(), direction=image.GetDirection())


def image_from_array(array: np.ndarray, geometry: VolumeGeometry) -> sitk.Image:
    """A SimpleITK image of ``array`` ``(Z, Y, X)`` with ``geometry``; ``bool`` becomes
    uint8 and float16 float32 (SimpleITK has neither). Raises InputError when the shape
    is not ``geometry.size`` reversed or the dtype has no SimpleITK pixel type."""
    array = np.asarray(array)
    if array.ndim != 3 or array.shape != geometry.shape:
        raise InputError(f"volume array of shape {array.shape} does not match the geometry's "
                         f"size {geometry.size} (expected (Z, Y, X) = {geometry.shape})")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    elif array.dtype == np.float16:
        array = array.astype(np.float32)
    try:
        image = sitk.GetImageFromArray(array, isVector=False)
    except (TypeError, RuntimeError) as err:
        raise InputError(f"volume array of dtype {array.dtype} cannot be stored "
                         f"({itk_message(err)})") from err
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(tuple(geometry.direction_matrix.ravel()))
    return image


# -- reading ------------------------------------------------------------------------------

@_keeps_locale
def read_volume(path: str | os.PathLike, series: str | None = None,
                max_voxels: int | None = None) -> tuple[np.ndarray, VolumeGeometry]:
    """Read a volume and its world geometry.

    ``path``: a NIfTI, NRRD or MetaImage file, a multi-frame DICOM file, or a folder
    holding a DICOM series. ``series``: the SeriesInstanceUID to read when the folder
    holds several (the error lists them; :func:`dicom_series_ids`). ``max_voxels`` caps
    X x Y x Z read from the header before any voxel is decoded (default
    ``$UNILANDMARK_MAX_PIXELS`` or 200 million).

    Returns ``(array (Z, Y, X), geometry)``: the array as stored (x fastest, the file's
    dtype after its intensity scaling; NaN/Inf voxels set to the background with a
    warning), the geometry in LPS millimetres.

    A DICOM series' geometry is built from each slice's ImagePositionPatient (0020,0032)
    and the first slice's ImageOrientationPatient (0020,0037) and PixelSpacing: the slice
    step is the mean step between consecutive positions in the order the slices are
    stacked, so a stack tilted from its normal (CT gantry tilt) gets a sheared direction
    and stays exact in millimetres.
    """
    path = Path(path)
    if path.is_dir():
        return _read_series(path, series, max_voxels)
    if series is not None:
        raise ImageReadError(f"{path}: series={series!r} applies to a folder holding a "
                             "DICOM series, not to a file")
    reader = _file_reader(path)
    _check_header(path, reader, max_voxels)
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise ImageReadError(f"{path}: corrupt or truncated volume ({itk_message(err)})") from err
    geometry = _geometry(path, image)
    array = sitk.GetArrayFromImage(image)
    if array.shape != geometry.shape:
        raise ImageReadError(f"{path}: decoded array of shape {array.shape} does not match "
                             f"the header's size {geometry.size}")
    return finite_pixels(array, path), geometry


@_keeps_locale
def read_volume_info(path: str | os.PathLike, series: str | None = None,
                     max_voxels: int | None = None) -> VolumeGeometry:
    """The geometry of a volume from its header(s) alone (no voxel decoded).

    Refuses (ImageReadError) what :func:`read_volume` refuses from the header. For a DICOM
    folder each slice's header is read (its position), not its pixels."""
    path = Path(path)
    if path.is_dir():
        files, _ = _series_files(path, series)
        first = _header_reader(path, files[0])
        _check_series_size(path, first, len(files), max_voxels)
        tags = [_slice_tags(path, name, _header_reader(path, name).GetMetaData)
                for name in files]
        return _series_geometry(path, first, tags)
    if series is not None:
        raise ImageReadError(f"{path}: series={series!r} applies to a folder holding a "
                             "DICOM series, not to a file")
    reader = _file_reader(path)
    size = _check_header(path, reader, max_voxels)
    if reader.GetDimension() == 3:
        return _checked_geometry(path, reader.GetSize(), reader.GetSpacing(),
                                 reader.GetOrigin(), reader.GetDirection())
    # a 4-D header holding one volume: its first three axes
    direction = np.array(reader.GetDirection()).reshape(4, 4)[:3, :3]
    return _checked_geometry(path, size, reader.GetSpacing()[:3], reader.GetOrigin()[:3],
                             direction)


@_keeps_locale
def dicom_series_ids(folder: str | os.PathLike) -> dict[str, int]:
    """``{SeriesInstanceUID: number of files}`` of the DICOM series GDCM finds in
    ``folder`` (not its sub-folders); empty when there is none."""
    folder = str(folder)
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder)
    return {uid: len(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid))
            for uid in ids}


def holds_dicom_series(folder: str | os.PathLike, sniff_files: int = SERIES_SNIFF_FILES
                       ) -> bool:
    """Whether ``folder`` is a DICOM series folder: one of its first ``sniff_files`` files
    (sorted by name, hidden names skipped; regular files resolving inside it, so a link
    pointing elsewhere is never opened) starts as a DICOM file does
    (:func:`~.formats.sniff`). Cheap: no header is parsed, GDCM is not called; a folder
    that is none (or cannot be listed) gives False. Which series it holds is
    :func:`dicom_series_ids`' answer."""
    folder = Path(folder)
    try:
        inside = folder.resolve()
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except (OSError, RuntimeError):
        return False
    tried = 0
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if not entry.is_file():
                continue
            if entry.is_symlink() and Path(entry.path).resolve().parent != inside:
                continue
        except (OSError, RuntimeError):
            continue
        if sniff(entry.path) == "dicom":
            return True
        tried += 1
        if tried >= sniff_files:
            break
    return False


def volume_version(path: str | os.PathLike) -> str:
    """A token that changes when the volume changes: a file's modification time and size;
    for a DICOM series folder, the same over its files (any file rewritten, added or
    removed; the folder's own time alone misses a slice rewritten in place)."""
    path = Path(path)
    info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        return f"{info.st_mtime_ns}-{info.st_size}"
    digest = hashlib.blake2b(digest_size=8)
    newest, total = info.st_mtime_ns, 0
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        try:
            found = entry.stat()
        except OSError:  # a broken link: refused when read
            continue
        newest, total = max(newest, found.st_mtime_ns), total + found.st_size
        digest.update(f"{entry.name}\0{found.st_mtime_ns}\0{found.st_size}\0".encode(
            "utf-8", "surrogateescape"))
    return f"{newest}-{total}-{digest.hexdigest()}"


def _file_reader(path: Path) -> sitk.ImageFileReader:
    if not path.exists():
        raise ImageReadError(f"{path}: no such file or folder")
    if not path.is_file():
        raise ImageReadError(f"{path}: not a regular file")
    try:
        kind = container_kind(path)
    except UnsupportedFormat as err:
        raise ImageReadError(f"{err}; a volume is read from NIfTI, NRRD, MetaImage or a "
                             "folder holding a DICOM series") from None
    if kind not in VOLUME_KINDS:
        raise ImageReadError(f"{path}: a {kind.upper()} file is a 2-D image; a volume is read "
                             "from NIfTI, NRRD, MetaImage or a folder holding a DICOM series")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.SetImageIO(KINDS[kind][0])
    return reader


def _check_header(path: Path, reader: sitk.ImageFileReader,
                  max_voxels: int | None) -> tuple[int, int, int]:
    """Read the header; refuse 2-D, 4-D with several volumes, vector voxels, too many
    voxels or too small, before decoding. Returns the size ``(X, Y, Z)``; a 4-D file
    holding one volume is set to be read as 3-D."""
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise ImageReadError(f"{path}: corrupt or truncated volume: unreadable header "
                             f"({itk_message(err)})") from err
    size = tuple(int(v) for v in reader.GetSize())
    dim = reader.GetDimension()
    shown = " x ".join(str(v) for v in size)
    dicom = reader.GetImageIO() == "GDCMImageIO"
    if dim == 2 or (dim == 3 and size[2] == 1):
        hint = "; for a DICOM series give the folder that holds its files" if dicom else ""
        raise ImageReadError(f"{path}: a 2-D image ({shown} voxels); expected a volume{hint}")
    if dim == 4:
        if size[3] != 1:
            raise ImageReadError(f"{path}: a 4-D image ({shown}: {size[3]} volumes); expected "
                                 "one 3-D volume (split the series first)")
        reader.SetExtractIndex((0, 0, 0, 0))
        reader.SetExtractSize((*size[:3], 0))  # 0 collapses the fourth axis
        size = size[:3]
    elif dim != 3:
        raise ImageReadError(f"{path}: a {dim}-D image ({shown}); expected a 3-D volume")
    components = reader.GetNumberOfComponents()
    if components != 1:
        raise ImageReadError(f"{path}: {components} components per voxel (a vector or colour "
                             "image); expected one value per voxel")
    if min(size) == 0:
        raise ImageReadError(f"{path}: corrupt or truncated volume (the header gives no size)")
    fault = size_fault(size[0], size[1], size[2], max_voxels)
    if fault:
        raise ImageReadError(f"{path}: {fault}")
    if reader.GetImageIO() == "NiftiImageIO":
        _check_nifti_length(path, reader)
    return size


def _nifti_data_bytes(reader: sitk.ImageFileReader) -> int | None:
    """Bytes a single-file NIfTI (``n+1``) must hold: ``vox_offset`` + every voxel of
    ``dim[1..dim[0]]`` at ``bitpix``; None when the header does not say."""
    try:
        if reader.GetMetaData("nifti_type") != "1":
            return None
        ndim = int(reader.GetMetaData("dim[0]"))
        count = 1
        for axis in range(1, ndim + 1):
            count *= max(1, int(reader.GetMetaData(f"dim[{axis}]")))
        return int(float(reader.GetMetaData("vox_offset"))) + \
            count * int(reader.GetMetaData("bitpix")) // 8
    except (RuntimeError, ValueError):
        return None


def _check_nifti_length(path: Path, reader: sitk.ImageFileReader) -> None:
    """Refuse a NIfTI file shorter than its header says. ITK's NIfTI reader fills the
    missing voxels of a truncated ``.nii`` or ``.nii.gz`` with zeros without a word, so
    the length is checked here: the file size of a ``.nii``; for a ``.nii.gz`` the gzip
    trailer's length (its last four bytes), and where that disagrees (a truncated file,
    or a file of several gzip members) the whole stream, decompressed and counted."""
    expected = _nifti_data_bytes(reader)
    if expected is None:
        return
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
        if not gzipped:
            actual = os.fstat(fh.fileno()).st_size
            if actual < expected:
                raise ImageReadError(f"{path}: corrupt or truncated volume: {actual} bytes, "
                                     f"the header declares {expected}")
            return
        fh.seek(-4, os.SEEK_END)
        if int.from_bytes(fh.read(4), "little") == expected % (1 << 32):
            return
    actual = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(1 << 22):
                actual += len(chunk)
    except (OSError, EOFError, zlib.error) as err:
        raise ImageReadError(f"{path}: corrupt or truncated volume: the gzip stream ends "
                             f"early ({err})") from err
    if actual < expected:
        raise ImageReadError(f"{path}: corrupt or truncated volume: {actual} bytes after "
                             f"decompression, the header declares {expected}")


def _geometry(path: Path, image: sitk.Image) -> VolumeGeometry:
    return _checked_geometry(path, image.GetSize(), image.GetSpacing(), image.GetOrigin(),
                             image.GetDirection())


def _checked_geometry(path, size, spacing, origin, direction) -> VolumeGeometry:
    """The geometry, refused as a sentence naming ``path`` when unusable; a spacing
    outside the plausible range is kept with a warning (the world frame needs it)."""
    try:
        geometry = VolumeGeometry(size=size, spacing=spacing, origin=origin,
                                  direction=direction)
    except InputError as err:
        raise ImageReadError(f"{path}: {err}") from None
    lo, hi = SANE_SPACING_MM
    if not all(lo <= s <= hi for s in geometry.spacing):
        log.warning("%s: implausible spacing (%s) mm in the header; expected %g..%g mm: "
                    "check the world millimetres of this volume", path,
                    ", ".join(f"{s:g}" for s in geometry.spacing), lo, hi)
    return geometry


# -- DICOM series -------------------------------------------------------------------------

def _series_files(folder: Path, series: str | None) -> tuple[list[str], str]:
    found = dicom_series_ids(folder)
    if not found:
        raise ImageReadError(f"{folder}: no DICOM series in this folder (GDCM found no "
                             "readable DICOM image file; sub-folders are not searched)")
    if series is None:
        if len(found) > 1:
            listed = "; ".join(f"{uid} ({n} files)" for uid, n in found.items())
            raise ImageReadError(f"{folder}: {len(found)} DICOM series in this folder "
                                 f"({listed}); choose one with series=UID")
        series = next(iter(found))
    elif series not in found:
        listed = "; ".join(f"{uid} ({n} files)" for uid, n in found.items())
        raise ImageReadError(f"{folder}: no DICOM series {series!r} in this folder; "
                             f"it holds {listed}")
    files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series))
    return files, series


def _header_reader(folder: Path, name: str) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(name)
    reader.SetImageIO("GDCMImageIO")
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise ImageReadError(f"{folder}: DICOM file {Path(name).name}: unreadable header "
                             f"({itk_message(err)})") from err
    return reader


def _check_series_size(folder: Path, first: sitk.ImageFileReader, n_files: int,
                       max_voxels: int | None) -> None:
    size = first.GetSize()
    if first.GetDimension() != 3 or size[2] != 1:
        raise ImageReadError(f"{folder}: DICOM series of {n_files} files whose first file "
                             f"holds {' x '.join(map(str, size))} voxels; expected one "
                             "2-D slice per file")
    if n_files < 2:
        raise ImageReadError(f"{folder}: a DICOM series of one slice is a 2-D image; "
                             "expected a volume")
    if first.GetNumberOfComponents() != 1:
        raise ImageReadError(f"{folder}: DICOM series with {first.GetNumberOfComponents()} "
                             "components per voxel (colour); expected one value per voxel")
    fault = size_fault(size[0], size[1], n_files, max_voxels)
    if fault:
        raise ImageReadError(f"{folder}: {fault}")


def _slice_tags(folder: Path, name: str, get) -> tuple[np.ndarray, np.ndarray]:
    """``(position (3,), orientation (6,))`` of one slice: ImagePositionPatient and
    ImageOrientationPatient read with ``get(tag)`` (a SimpleITK metadata getter)."""
    values = []
    for tag, keyword, count in (("0020|0032", "ImagePositionPatient", 3),
                                ("0020|0037", "ImageOrientationPatient", 6)):
        try:
            text = str(get(tag)).strip()
        except RuntimeError:
            text = ""
        try:
            numbers = np.array([float(v) for v in text.split("\\")], dtype=np.float64)
        except ValueError:
            numbers = np.zeros(0)
        if numbers.shape != (count,) or not np.isfinite(numbers).all():
            raise ImageReadError(f"{folder}: DICOM file {Path(name).name} has no usable "
                                 f"{keyword} ({tag.replace('|', ',')}): {text!r}; no world "
                                 "geometry for the series")
        values.append(numbers)
    return values[0], values[1]


def _series_geometry(folder: Path, first, tags) -> VolumeGeometry:
    """Geometry of a slice stack: in-plane from ``first`` (the reader of the first slice),
    the third axis from the slices' positions in stack order; ``tags`` is
    ``[(position (3,) LPS mm, orientation (6,)), ...]`` per slice (:func:`_slice_tags`)."""
    positions = np.array([p for p, _ in tags], dtype=np.float64)
    orientations = np.array([o for _, o in tags], dtype=np.float64)
    n = len(positions)
    turned = np.abs(orientations - orientations[0]).max(axis=1)
    if turned.max() > 1e-4:
        k = int(np.argmax(turned))
        raise ImageReadError(f"{folder}: DICOM slice {k + 1} (of {n}, in stack order) is "
                             "oriented differently from the first (ImageOrientationPatient); "
                             "expected one stack of parallel slices")
    direction = np.array(first.GetDirection(), dtype=np.float64).reshape(3, 3)
    normal = direction[:, 2]
    steps = np.diff(positions, axis=0)
    along = steps @ normal
    if np.any(np.abs(along) < _GAP_TOL_MM):
        k = int(np.argmin(np.abs(along)))
        raise ImageReadError(f"{folder}: DICOM slices {k + 1} and {k + 2} (of {n}, in stack "
                             "order) lie at the same position; the series holds several "
                             "volumes (echoes, phases or repeats): split it first")
    step = (positions[-1] - positions[0]) / (n - 1)
    length = float(np.linalg.norm(step))
    deviation = float(np.abs(steps - step).max())
    if deviation > _GAP_TOL_FRACTION * length + _GAP_TOL_MM:
        gaps = np.linalg.norm(steps, axis=1)
        raise ImageReadError(f"{folder}: DICOM slices are unevenly spaced (gaps from "
                             f"{gaps.min():.4g} to {gaps.max():.4g} mm between {n} slices; "
                             "a missing slice?); expected one slice step")
    axis = step / length
    tilt = float(np.arccos(np.clip(abs(axis @ normal), -1.0, 1.0)))
    if tilt > _TILT_TOL_RAD:
        log.warning("%s: the slices are stacked %.2f degrees off their normal (gantry tilt); "
                    "the geometry is sheared to keep the millimetres exact", folder,
                    np.degrees(tilt))
    direction[:, 2] = axis
    spacing = (*first.GetSpacing()[:2], length)
    size = (*first.GetSize()[:2], n)
    return _checked_geometry(folder, size, spacing, positions[0], direction)


def _read_series(folder: Path, series: str | None,
                 max_voxels: int | None) -> tuple[np.ndarray, VolumeGeometry]:
    files, uid = _series_files(folder, series)
    first = _header_reader(folder, files[0])
    _check_series_size(folder, first, len(files), max_voxels)
    reader = sitk.ImageSeriesReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise ImageReadError(f"{folder}: DICOM series {uid} could not be read: slices that "
                             f"differ in size or type, or a corrupt file ({itk_message(err)})") \
            from err
    if image.GetDimension() != 3 or image.GetSize()[2] != len(files):
        raise ImageReadError(f"{folder}: DICOM series {uid}: read {image.GetSize()} voxels "
                             f"from {len(files)} files; expected one slice per file")
    tags = [_slice_tags(folder, name, lambda key, k=k: reader.GetMetaData(k, key))
            for k, name in enumerate(files)]
    geometry = _series_geometry(folder, first, tags)
    array = sitk.GetArrayFromImage(image)
    return finite_pixels(array, folder), geometry


# -- writing ------------------------------------------------------------------------------

@_keeps_locale
def write_volume(path: str | os.PathLike, array: np.ndarray, geometry: VolumeGeometry,
                 compress: bool = True) -> None:
    """Write ``array`` ``(Z, Y, X)`` with ``geometry`` atomically (a temporary file in the
    same folder, then ``os.replace``).

    Suffixes: :data:`WRITE_SUFFIXES` (``.nii``, ``.nii.gz``, ``.nrrd``, ``.mha``); a
    detached header (``.mhd``, ``.nhdr``) is refused, as its data file could not be
    replaced in the same step. ITK writes the geometry in each format's own frame (a
    NIfTI gets a RAS affine). ``compress``: zlib for ``.nrrd`` and ``.mha`` (``.nii.gz``
    is always compressed, ``.nii`` never). NIfTI can hold only an orthonormal direction;
    a sheared geometry is refused there (write ``.nrrd`` or ``.mha``).
    """
    path = Path(path)
    suffix = image_suffix(path)
    if suffix not in WRITE_SUFFIXES:
        raise InputError(f"{path}: cannot write a volume as {suffix or '(no extension)'!r}; "
                         f"write one of {', '.join(WRITE_SUFFIXES)}")
    if suffix.startswith(".nii") and not geometry.is_orthonormal():
        d = geometry.direction_matrix
        if np.abs(d.T @ d - np.eye(3)).max() > 1e-6:
            raise InputError(f"{path}: NIfTI holds only an orthonormal direction; this "
                             "geometry is sheared: write .nrrd or .mha")
    image = image_from_array(array, geometry)
    with atomic_path(path, suffix=suffix) as tmp:
        writer = sitk.ImageFileWriter()
        writer.SetFileName(str(tmp))
        writer.SetUseCompression(bool(compress))
        try:
            writer.Execute(image)
        except RuntimeError as err:
            raise InputError(f"{path}: the volume could not be written ({itk_message(err)})") \
                from err
