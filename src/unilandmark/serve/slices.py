"""Slices of a volume for the review page: the display frame, three views, the window.

The page never receives a volume, only one slice per request, cut here from the volume
held in the server's memory.

**The display frame.** The volume's voxels turned by a permutation and flips of its axes
(no interpolation, a numpy view: nothing is copied) so that its index axes point towards
the patient's Left, Posterior and Superior: LPS, the orientation the volume models see
(:func:`unilandmark.inference.volume_inputs.canonical_axes`). A volume stored in any axis
order or orientation (RAS, PSR, a flipped axis) is therefore shown the same way, and the
letters at the edges of each view are derived from the display frame's direction
(:meth:`VolumeGeometry.anatomical_labels`), not from the stored axes. An oblique volume
is turned to its nearest anatomical axes; :attr:`LoadedVolume.obliquity_deg` says how far
those are from the true ones (the page shows it when it is above 1 degree).

**Display voxel points** are ``(x, y, z)`` floats in the display frame (x towards L, y
towards P, z towards S; the centre of the first voxel at 0), mapped to world LPS
millimetres by :attr:`LoadedVolume.display_geometry` (``world = origin + direction @
diag(spacing) @ index``, as every geometry of the package).

**The views** (radiological convention, as in 3D Slicer's default layout):

====================  ===========  ===================  ==========================
view                  slice axis   columns (left->right)   rows (top->bottom)
====================  ===========  ===================  ==========================
``axial``             z            x: R -> L              y: A -> P
``coronal``           y            x: R -> L              z reversed: S -> I
``sagittal``          x            y: A -> P              z reversed: S -> I
====================  ===========  ===================  ==========================

A slice is a ``(rows, cols)`` array; a display voxel point ``p`` is drawn in view ``v`` at
column ``p[cols]`` and row ``p[rows]`` (``n - 1 - p[rows]`` where the rows are reversed,
``n`` the size along that axis), in slice pixels whose centres are at whole numbers.

**The window**: a default from percentiles of the voxels (MR: the 0.5th to 99.5th
percentile of all voxels, as the model is fed; CT, recognised by air below -500 HU: the
same percentiles of the voxels above -500 HU, the body), and presets (CT brain, soft
tissue, bone, lung; the full range). The page windows the raw slice itself, so changing
the window costs no request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import InputError
from ..core.world import VolumeGeometry
from ..inference.volume_inputs import canonical_axes, canonical_geometry

#: view name -> (slice axis, column axis, row axis, rows reversed), axes of display voxels
VIEWS: dict[str, tuple[int, int, int, bool]] = {
    "axial": (2, 0, 1, False),
    "coronal": (1, 0, 2, True),
    "sagittal": (0, 1, 2, True),
}
#: the dtypes a slice is sent as (little-endian); any other is sent as float32
WIRE_DTYPES = {"uint8": "<u1", "int16": "<i2", "uint16": "<u2", "float32": "<f4"}
#: voxels sampled (about) for the window's percentiles
WINDOW_SAMPLE = 2_000_000
#: a volume whose 0.5th percentile is below this is taken for a CT in Hounsfield units
CT_AIR_HU = -500.0
#: CT presets: (name, window centre, window width) in Hounsfield units
CT_PRESETS = (("CT brain", 40.0, 80.0), ("CT soft tissue", 40.0, 400.0),
              ("CT bone", 400.0, 1800.0), ("CT lung", -600.0, 1500.0))


def view_spec(view: str) -> tuple[int, int, int, bool]:
    """``(slice axis, column axis, row axis, rows reversed)`` of a view name;
    :class:`KeyError` naming the views for any other name."""
    try:
        return VIEWS[view]
    except KeyError:
        raise KeyError(f"no view {view!r}; views: {', '.join(VIEWS)}") from None


def view_labels(geometry: VolumeGeometry, view: str) -> dict[str, str]:
    """The anatomical letters at the ``left``, ``right``, ``top`` and ``bottom`` edges of
    ``view`` of a volume whose (display) geometry is ``geometry``: e.g. ``{"left": "R",
    "right": "L", "top": "A", "bottom": "P"}`` for the axial view of the display frame."""
    _, cols, rows, reversed_rows = view_spec(view)
    ends = geometry.anatomical_labels()  # per index axis: (letter at 0, at the last index)
    top, bottom = ends[rows][::-1] if reversed_rows else ends[rows]
    return {"left": ends[cols][0], "right": ends[cols][1], "top": top, "bottom": bottom}


def display_view(array: np.ndarray, geometry: VolumeGeometry
                 ) -> tuple[np.ndarray, VolumeGeometry]:
    """``array`` (Z, Y, X) as stored -> the same voxels in the display frame (a numpy view
    of ``array``, ``(Z', Y', X')`` with x' towards L, y' towards P, z' towards S) and its
    geometry. Exactly what :func:`~unilandmark.inference.volume_inputs.canonical` gives,
    without the copy."""
    axes, flips = canonical_axes(geometry)
    out = np.transpose(array, [2 - axes[2], 2 - axes[1], 2 - axes[0]])
    for j, flipped in enumerate(flips):
        if flipped:
            out = np.flip(out, axis=2 - j)
    return out, canonical_geometry(geometry)


def _wire(slice_: np.ndarray) -> np.ndarray:
    """A slice as sent: contiguous, little-endian, one of :data:`WIRE_DTYPES`."""
    kind = slice_.dtype
    if kind == np.int8:
        target = "<i2"
    else:
        target = WIRE_DTYPES.get(kind.name, "<f4")
    return np.ascontiguousarray(slice_, dtype=target)


@dataclass(frozen=True)
class Slice:
    """One slice as sent: ``data`` the raw bytes (row-major, ``rows x cols`` values of
    ``dtype``, little-endian), ``index`` along the view's slice axis."""

    view: str
    index: int
    rows: int
    cols: int
    dtype: str
    data: bytes


@dataclass
class LoadedVolume:
    """A volume held in memory for the page.

    ``array`` (Z, Y, X) as stored and ``geometry`` its world frame (LPS mm);
    ``display`` the same voxels in the display frame (a view: no copy) and
    ``display_geometry`` its geometry; ``version`` names the file's version (modification
    time and size; of every file, for a DICOM series folder) so that the page's cached
    slices follow a changed file.
    """

    array: np.ndarray
    geometry: VolumeGeometry
    version: str = ""
    display: np.ndarray = field(init=False, repr=False)
    display_geometry: VolumeGeometry = field(init=False)
    window: dict = field(init=False)

    def __post_init__(self):
        self.display, self.display_geometry = display_view(self.array, self.geometry)
        self.window = window_defaults(self.display)

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes)

    @property
    def obliquity_deg(self) -> float:
        """The largest angle (degrees) between a display axis and the anatomical axis it
        stands for: 0 for a volume stored along the anatomical axes in any order."""
        d = self.display_geometry.direction_matrix
        cosines = np.clip(np.diag(d) / np.linalg.norm(d, axis=0), -1.0, 1.0)
        return float(np.degrees(np.arccos(cosines)).max())

    def slice(self, view: str, index: int) -> np.ndarray:
        """Slice ``index`` of ``view`` as a ``(rows, cols)`` array (a view of the volume);
        :class:`IndexError` naming the valid range when ``index`` lies outside it."""
        axis, _, _, reversed_rows = view_spec(view)
        count = self.display_geometry.size[axis]
        if not 0 <= index < count:
            raise IndexError(f"{view} slice {index} is outside 0..{count - 1}")
        d = self.display  # (z, y, x)
        if view == "axial":
            plane = d[index, :, :]  # rows y, cols x
        elif view == "coronal":
            plane = d[:, index, :]  # rows z, cols x
        else:
            plane = d[:, :, index]  # rows z, cols y
        return plane[::-1] if reversed_rows else plane

    def slice_bytes(self, view: str, index: int) -> Slice:
        """Slice ``index`` of ``view`` as raw bytes (:class:`Slice`)."""
        plane = _wire(self.slice(view, index))
        rows, cols = plane.shape
        name = {"<u1": "uint8", "<i2": "int16", "<u2": "uint16", "<f4": "float32"}[
            plane.dtype.str.replace("|", "<")]
        return Slice(view, index, rows, cols, name, plane.tobytes())

    def info(self) -> dict:
        """The JSON the page needs to draw the three views (no voxel data): the stored
        geometry (``size``, ``spacing``, ``origin``, ``direction`` rows, LPS) and
        ``to_voxel`` (4 x 4, world LPS mm -> stored voxel indices); ``display`` (its size,
        spacing, ``to_world`` and ``to_display`` 4 x 4 matrices between display voxels and
        world LPS mm); per view its slice axis, column and row axes, slice count, slice
        shape ``(rows, cols)``, pixel size in mm ``(column step, row step)`` and edge
        letters; the window."""
        g, d = self.geometry, self.display_geometry
        views = {}
        for view, (axis, cols, rows, reversed_rows) in VIEWS.items():
            views[view] = {
                "axis": axis, "cols": cols, "rows": rows, "reversed_rows": reversed_rows,
                "count": d.size[axis], "shape": [d.size[rows], d.size[cols]],
                "pixel_mm": [d.spacing[cols], d.spacing[rows]],
                "labels": view_labels(d, view)}
        return {
            "size": list(g.size), "spacing": list(g.spacing), "origin": list(g.origin),
            "direction": [list(r) for r in g.direction], "frame": "LPS",
            "orientation": g.orientation_code(), "dtype": self.array.dtype.name,
            "to_voxel": np.linalg.inv(g.affine).tolist(),
            "display": {"size": list(d.size), "spacing": list(d.spacing),
                        "orientation": d.orientation_code(),
                        "to_world": d.affine.tolist(),
                        "to_display": np.linalg.inv(d.affine).tolist(),
                        "obliquity_deg": round(self.obliquity_deg, 3)},
            "views": views, "window": self.window, "version": self.version}


def window_defaults(volume: np.ndarray) -> dict:
    """The window of a volume (any axis order): ``{"modality": "ct"|"mr", "default":
    [centre, width], "range": [min, max], "presets": [{name, centre, width}]}``, from
    percentiles of about :data:`WINDOW_SAMPLE` voxels (a regular subsample)."""
    step = max(1, int(math.ceil((volume.size / WINDOW_SAMPLE) ** (1 / 3))))
    sample = np.asarray(volume[::step, ::step, ::step], dtype=np.float64).ravel()
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        raise InputError("the volume has no finite voxel to show")
    low, high = float(sample.min()), float(sample.max())
    p_low, p_high = np.percentile(sample, [0.5, 99.5])
    modality = "ct" if p_low < CT_AIR_HU else "mr"
    if modality == "ct":
        body = sample[sample > CT_AIR_HU]
        if body.size:
            p_low, p_high = np.percentile(body, [0.5, 99.5])
    presets = [_preset("Auto (0.5-99.5 %)", p_low, p_high),
               _preset("Full range", low, high)]
    if modality == "ct":
        presets += [{"name": n, "centre": c, "width": w} for n, c, w in CT_PRESETS]
    else:
        p2, p98 = np.percentile(sample, [2.0, 98.0])
        presets.append(_preset("High contrast (2-98 %)", p2, p98))
    auto = presets[0]
    return {"modality": modality, "default": [auto["centre"], auto["width"]],
            "range": [low, high], "presets": presets}


def _preset(name: str, low: float, high: float) -> dict:
    width = max(float(high) - float(low), 1e-6)
    return {"name": name, "centre": (float(low) + float(high)) / 2.0, "width": width}
