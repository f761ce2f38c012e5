"""The world frame of a volume: voxel indices <-> world millimetres in LPS (numpy only).

Conventions (one legend for every volume in the package):

- **Voxel points** are ``(..., 3)`` floats ``(x, y, z)``: the array's axes reversed, so an
  array stored ``(Z, Y, X)`` is indexed ``array[z, y, x]`` and x is the fastest axis. The
  centre of the first voxel is ``(0, 0, 0)``; voxel ``(i, j, k)`` covers
  ``[i - 0.5, i + 0.5) x [j - 0.5, j + 0.5) x [k - 0.5, k + 0.5)``.
- **World points** are ``(..., 3)`` floats in millimetres in ONE declared frame, **LPS**
  (as ITK and SimpleITK): +x towards the patient's left, +y towards posterior, +z
  towards superior. Formats and tools that use **RAS** (NIfTI's own affine, Slicer's
  markups, FSL, nibabel) are converted at the edges with :func:`ras_to_lps` /
  :func:`lps_to_ras`: x and y change sign, z is kept.
- **Geometry** (:class:`VolumeGeometry`): ``world = origin + direction @ diag(spacing) @
  index`` with ``origin`` the world position of the centre of voxel ``(0, 0, 0)`` and the
  columns of ``direction`` the unit LPS directions of the index axes x, y, z (ITK's
  ``GetDirection()`` reshaped to 3 x 3, row-major).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import InputError

__all__ = ["VolumeGeometry", "ras_to_lps", "lps_to_ras", "ORIENTATION_LETTERS",
           "orientation_code"]

#: world axis (LPS x, y, z) -> (letter when an index axis points along +axis, along -axis)
ORIENTATION_LETTERS = (("L", "R"), ("P", "A"), ("S", "I"))

_OPPOSITE = {"L": "R", "R": "L", "P": "A", "A": "P", "S": "I", "I": "S"}
_RAS_FLIP = np.array([-1.0, -1.0, 1.0])
#: |det(direction)| below this is a singular (unusable) direction matrix
_SINGULAR = 1e-6
#: D^T D within this of the identity counts as orthonormal (the inverse is then D^T)
_ORTHONORMAL_TOL = 1e-12


def ras_to_lps(points) -> np.ndarray:
    """World points ``(..., 3)`` in RAS millimetres -> the same points in LPS (float64).

    RAS and LPS differ in the sign of x and y; z is the same. The conversion is its own
    inverse, so :func:`lps_to_ras` is the same operation.
    """
    points = _points(points, "points")
    return points * _RAS_FLIP


def lps_to_ras(points) -> np.ndarray:
    """World points ``(..., 3)`` in LPS millimetres -> RAS (x and y change sign)."""
    points = _points(points, "points")
    return points * _RAS_FLIP


def orientation_code(direction) -> str:
    """Three letters: the anatomical direction each index axis (x, y, z) points towards.

    ``direction`` is ``(3, 3)`` with the LPS directions of the index axes as columns. The
    letters are those of ITK's ``DICOMOrientImageFilter`` (the DICOM convention: a letter
    names where the axis points *towards*, so the identity is ``"LPS"`` and a NIfTI in
    RAS+ is ``"RAS"``; nibabel's ``aff2axcodes`` gives the same letters; ITK's older
    ``itk::SpatialOrientation`` names the opposite ends, ``RAI`` for the identity).

    An oblique direction gets the closest code, chosen as ITK chooses it: the largest
    remaining ``|direction[world, index]|`` is assigned first and its row and column are
    removed, so the three letters always name three different world axes.
    """
    matrix = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    letters = [""] * 3
    rows, cols = [0, 1, 2], [0, 1, 2]
    for _ in range(3):
        world, index = max(((r, c) for r in rows for c in cols),
                           key=lambda rc: (abs(matrix[rc]), rc))  # ties: ITK's order
        letters[index] = ORIENTATION_LETTERS[world][0 if matrix[world, index] >= 0 else 1]
        rows.remove(world)
        cols.remove(index)
    return "".join(letters)


def _points(points, name: str) -> np.ndarray:
    array = np.asarray(points, dtype=np.float64)
    if array.ndim == 0 or array.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (..., 3) as (x, y, z), got {array.shape}")
    return array


def _triple(value, name: str, kind=float) -> tuple:
    try:
        items = tuple(kind(v) for v in np.asarray(value).reshape(-1).tolist())
    except (TypeError, ValueError):
        raise InputError(f"volume geometry: {name} must be three numbers, got {value!r}") \
            from None
    if len(items) != 3:
        raise InputError(f"volume geometry: {name} must be three numbers (x, y, z), "
                         f"got {len(items)}")
    return items


@dataclass(frozen=True)
class VolumeGeometry:
    """Where a volume's voxels are in the world (LPS millimetres).

    Attributes (all plain tuples, so the geometry is hashable and compares exactly):

    - ``size``: ``(X, Y, Z)`` voxels, the array ``(Z, Y, X)``'s shape reversed.
    - ``spacing``: ``(sx, sy, sz)`` mm between voxel centres along the index axes.
    - ``origin``: ``(3,)`` LPS mm of the centre of voxel ``(0, 0, 0)``.
    - ``direction``: ``(3, 3)`` row-major, its columns the unit LPS directions of the
      index axes x, y, z (ITK's ``GetDirection()`` reshaped). Any non-singular matrix is
      accepted: permuted, flipped, oblique (rotated) or sheared (a CT with gantry tilt).

    ``world = origin + direction @ diag(spacing) @ index`` for ``index`` = ``(x, y, z)``.
    The constructor accepts numpy arrays and ITK's flat 9-tuple for ``direction``.
    """

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0),
                                                         (0.0, 0.0, 1.0))

    def __post_init__(self):
        size = _triple(self.size, "size", float)
        if not all(math.isfinite(v) and v == int(v) and v >= 1 for v in size):
            raise InputError(f"volume geometry: size must be three positive whole numbers "
                             f"of voxels, got {self.size!r}")
        spacing = _triple(self.spacing, "spacing")
        if not all(math.isfinite(v) and v > 0 for v in spacing):
            raise InputError(f"volume geometry: spacing must be positive and finite (mm), "
                             f"got {spacing}")
        origin = _triple(self.origin, "origin")
        if not all(math.isfinite(v) for v in origin):
            raise InputError(f"volume geometry: origin must be finite (mm), got {origin}")
        try:
            matrix = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        except (TypeError, ValueError):
            raise InputError(f"volume geometry: direction must be 3 x 3 numbers, got "
                             f"{self.direction!r}") from None
        if not np.isfinite(matrix).all() or abs(np.linalg.det(matrix)) < _SINGULAR:
            raise InputError(f"volume geometry: direction {matrix.round(6).tolist()} is "
                             "singular or not finite")
        object.__setattr__(self, "size", tuple(int(v) for v in size))
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "direction", tuple(tuple(float(v) for v in row)
                                                    for row in matrix))

    # -- matrices ------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int, int]:
        """The array shape ``(Z, Y, X)`` this geometry describes (``size`` reversed)."""
        return self.size[::-1]

    @property
    def direction_matrix(self) -> np.ndarray:
        """``(3, 3)`` float64: the columns are the LPS unit directions of x, y, z."""
        return np.array(self.direction, dtype=np.float64)

    @property
    def matrix(self) -> np.ndarray:
        """``(3, 3)`` float64 ``direction @ diag(spacing)``: mm per voxel step, in LPS."""
        return self.direction_matrix * np.array(self.spacing)

    @property
    def affine(self) -> np.ndarray:
        """``(4, 4)`` float64 homogeneous matrix from voxel ``(x, y, z, 1)`` to LPS mm."""
        out = np.eye(4)
        out[:3, :3] = self.matrix
        out[:3, 3] = self.origin
        return out

    def is_orthonormal(self) -> bool:
        """True when ``direction`` is a rotation or reflection (``D^T D = I``)."""
        d = self.direction_matrix
        return bool(np.abs(d.T @ d - np.eye(3)).max() <= _ORTHONORMAL_TOL)

    def _inverse_matrix(self) -> np.ndarray:
        d = self.direction_matrix
        inverse = d.T if self.is_orthonormal() else np.linalg.inv(d)
        return inverse / np.array(self.spacing)[:, None]

    # -- points --------------------------------------------------------------------------

    def index_to_world(self, points) -> np.ndarray:
        """Voxel points ``(..., 3)`` ``(x, y, z)`` -> LPS millimetres ``(..., 3)`` float64."""
        points = _points(points, "voxel points")
        return points @ self.matrix.T + np.array(self.origin)

    def world_to_index(self, points) -> np.ndarray:
        """LPS millimetres ``(..., 3)`` -> voxel points ``(..., 3)`` ``(x, y, z)`` float64.

        The exact inverse of :meth:`index_to_world`: ``direction^T`` where the direction
        is orthonormal, its matrix inverse where it is not (oblique shear)."""
        points = _points(points, "world points")
        return (points - np.array(self.origin)) @ self._inverse_matrix().T

    def contains(self, points) -> np.ndarray:
        """``(...,)`` bool: voxel points ``(..., 3)`` inside the volume, every index
        within ``[-0.5, size - 0.5]`` (the outer faces of the first and last voxels)."""
        points = _points(points, "voxel points")
        size = np.array(self.size)
        return ((points >= -0.5) & (points <= size - 0.5)).all(axis=-1)

    ras_to_lps = staticmethod(ras_to_lps)
    lps_to_ras = staticmethod(lps_to_ras)

    # -- orientation ---------------------------------------------------------------------

    def orientation_code(self) -> str:
        """Three letters, the anatomical direction each index axis x, y, z points towards
        (DICOM / ITK ``DICOMOrientImageFilter`` convention: the identity is ``"LPS"``, a
        NIfTI stored RAS+ is ``"RAS"``); see :func:`orientation_code`."""
        return orientation_code(self.direction_matrix)

    def anatomical_labels(self) -> tuple[tuple[str, str], tuple[str, str], tuple[str, str]]:
        """For viewers: per index axis x, y, z, the letters at its two ends ``(at index
        0, at the last index)``, e.g. ``(("R", "L"), ("A", "P"), ("I", "S"))`` for LPS:
        a slice shown with x to the right of the screen has "R" on its left edge and "L"
        on its right edge."""
        code = self.orientation_code()
        return tuple((_OPPOSITE[letter], letter) for letter in code)  # type: ignore[return-value]

    # -- JSON ----------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """A JSON-ready dict: ``{"frame": "LPS", "size": [X, Y, Z], "spacing": [..],
        "origin": [..], "direction": [[row 0], [row 1], [row 2]]}`` (direction rows, so
        its columns are the axis directions as in the object)."""
        return {"frame": "LPS", "size": list(self.size), "spacing": list(self.spacing),
                "origin": list(self.origin), "direction": [list(r) for r in self.direction]}

    @classmethod
    def from_dict(cls, data: dict) -> VolumeGeometry:
        """The inverse of :meth:`to_dict`. ``frame`` may be ``"LPS"`` (the default) or
        ``"RAS"``; a RAS origin and direction are converted to LPS (x and y rows change
        sign)."""
        if not isinstance(data, dict):
            raise InputError(f"volume geometry: expected a mapping, got {type(data).__name__}")
        missing = [k for k in ("size", "spacing", "origin", "direction") if k not in data]
        if missing:
            raise InputError(f"volume geometry: missing {', '.join(missing)}")
        frame = str(data.get("frame", "LPS")).upper()
        if frame not in ("LPS", "RAS"):
            raise InputError(f"volume geometry: frame must be 'LPS' or 'RAS', got {frame!r}")
        origin, direction = data["origin"], data["direction"]
        if frame == "RAS":
            origin = ras_to_lps(_triple(origin, "origin"))
            try:
                direction = np.asarray(direction, dtype=np.float64).reshape(3, 3) \
                    * _RAS_FLIP[:, None]
            except (TypeError, ValueError):
                raise InputError(f"volume geometry: direction must be 3 x 3 numbers, got "
                                 f"{direction!r}") from None
        return cls(size=data["size"], spacing=data["spacing"], origin=origin,
                   direction=direction)
