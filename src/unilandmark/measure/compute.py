"""Compute a spec's measurements from landmark points, vectorised over images.

Points are ``(x, y)`` in original pixels (x right, y down), or ``(x, y, z)`` for volumes:
world millimetres (e.g. LPS), or voxel indices with a spacing ``(sx, sy, sz)``. The
formulas of ``angle``, ``distance``, ``projection`` and ``ratio`` are the same for D = 2
and 3; the plane kinds need D = 3 and ``signed_angle`` D = 2. Before computing:

1. ``truncate``: coordinates are truncated to integers (as the ISBI 2015 organisers'
   evaluation code does); off by default (floats).
2. ``mirrored``: images read as a left-right mirror of the spec's frame are brought into
   the patient's frame by ``x -> -x`` (measurements use vector differences only).
3. Spacing: where an image's pixel spacing ``(sx, sy)`` (mm) is known, points are scaled
   to millimetres, so angles and ratios are physical even for non-square pixels; without
   spacing they are computed in pixels (square pixels assumed) and mm distances are NaN.

A measurement is NaN for an image where a landmark it needs is missing (absent name or
NaN point) or a vector it needs has zero length.

Coordinates are checked first (:func:`coordinate_fault`, the one check for every way
into a measurement: a prediction file, :func:`measure_batch`, :func:`measure`): finite
and within :data:`MAX_COORDINATE_PX` of the origin; beyond that a point is a broken file
or a unit mix-up, and squaring it would overflow into angles that look like answers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..core.errors import InputError
from .spec import Measurement, MeasurementSpec, Plane, Segment, Term

#: the largest abs(x) or abs(y) (original pixels) a measurement accepts; images are at
#: most some tens of thousands of pixels wide
MAX_COORDINATE_PX = 1e6


def coordinate_fault(*xy: float) -> str | None:
    """Why the point ``(x, y)`` (original pixels; or ``(x, y, z)``) cannot be measured,
    or None: each must be finite and within +-:data:`MAX_COORDINATE_PX` (a missing
    landmark, NaN, is the caller's to leave out)."""
    xy = tuple(float(v) for v in xy)
    if not all(math.isfinite(v) for v in xy):
        return f"coordinates ({', '.join(f'{v:g}' for v in xy)}) are not finite numbers"
    if any(abs(v) > MAX_COORDINATE_PX for v in xy):
        return (f"coordinates ({', '.join(f'{v:.6g}' for v in xy)}) lie beyond "
                f"+-{MAX_COORDINATE_PX:g} pixels: "
                "a broken file or a unit mix-up, not a point to measure")
    return None


def check_points(points: np.ndarray, landmark_names: Sequence[str]) -> None:
    """Refuse (N, K, 2) points holding a :func:`coordinate_fault` (NaN, a missing
    landmark, passes); the message names the image index and the landmark."""
    given = ~np.isnan(points).any(axis=-1)
    bad = np.argwhere(given & ~(np.abs(points) <= MAX_COORDINATE_PX).all(axis=-1))
    if len(bad):
        shown = "; ".join(f"image {n}, landmark {landmark_names[k]!r}: "
                          f"{coordinate_fault(*points[n, k])}" for n, k in bad[:5])
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise InputError(f"points: {shown}{more}")


def normalise_name(name: str) -> str:
    """Landmark names match case-insensitively, with runs of spaces collapsed."""
    return " ".join(str(name).split()).casefold()


def gather_points(spec: MeasurementSpec, points: np.ndarray,
                  landmark_names: Sequence[str]) -> dict[str, np.ndarray]:
    """{landmark name the spec uses: (N, D) points}; NaN where the name is absent."""
    index = {}
    for k, name in enumerate(landmark_names):
        index.setdefault(normalise_name(name), k)
    n = points.shape[0]
    out = {}
    for name in spec.landmarks_used():
        k = index.get(normalise_name(name))
        out[name] = points[:, k, :] if k is not None else \
            np.full((n, points.shape[-1]), np.nan)
    return out


def _per_image(value, n: int, what: str, width: int | None = None) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64 if width else bool)
    shape = (n, width) if width else (n,)
    if arr.ndim == (1 if width else 0):
        arr = np.broadcast_to(arr, shape)
    if arr.shape != shape:
        raise InputError(f"{what}: expected one value per image ({n}), got shape {arr.shape}")
    return arr


def measure_batch(spec: MeasurementSpec, points, landmark_names: Sequence[str],
                  spacing=None, mirrored=False, truncate: bool = False,
                  ) -> dict[str, np.ndarray]:
    """Measurements of N images.

    Parameters
    ----------
    points : (N, K, 2) original pixels, NaN where a landmark is missing; or (N, K, 3)
        3-D points: world millimetres (``spacing`` None) or voxel indices (``spacing``
        ``(sx, sy, sz)`` mm per voxel).
    landmark_names : the K names, in the order of ``points``' second axis.
    spacing : None, one ``(sx, sy)`` for all images, or (N, 2) with NaN rows where unknown
        (3-D: None for world mm, or ``(sx, sy, sz)`` / (N, 3)).
    mirrored : bool or (N,) bool: the image is a left-right mirror of the spec's frame.
    truncate : truncate coordinates to integers first (the ISBI organisers' convention).

    Returns
    -------
    {measurement name: (N,) float64} in the spec's order, each in ``spec.unit(name)``;
    plus ``<name>_px`` (pixels) for mm measurements whose spec allows a pixel fallback.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[2] not in (2, 3) or pts.shape[1] != len(landmark_names):
        raise InputError(f"points: expected (N, {len(landmark_names)}, 2) (or 3 for "
                         f"volumes) for {len(landmark_names)} landmark names, got shape "
                         f"{pts.shape}")
    dims = pts.shape[2]
    need = spec.dimensions()
    if need is not None and need != dims:
        raise InputError(f"spec {spec.name}: its measurements need {need}-D points, got "
                         f"{dims}-D points")
    check_points(pts, landmark_names)
    n = pts.shape[0]
    if truncate:
        pts = np.trunc(pts)
    flip = _per_image(mirrored, n, "mirrored")
    pts = pts.copy()
    pts[flip, :, 0] *= -1.0
    if spacing is None:
        sp = np.full((n, dims), np.nan if dims == 2 else 1.0)  # 3-D: world mm
    else:
        sp = _per_image(spacing, n, "spacing", width=dims)
    known = np.all(np.isfinite(sp) & (sp > 0), axis=1)
    scale = np.where(known[:, None], sp, 1.0)[:, None, :]
    pixel = gather_points(spec, pts, landmark_names)
    physical = {k: v * scale[:, 0, :] for k, v in pixel.items()}
    calc = _Calculator(spec, physical, pixel, known)
    out = {m.name: calc.value(m) for m in spec.measurements}
    for name in spec.pixel_fallbacks():
        out[f"{name}_px"] = calc.value(spec.measurement(name), in_pixels=True)
    return out


def measure(spec: MeasurementSpec, points, landmark_names: Sequence[str], spacing=None,
            mirrored: bool = False, truncate: bool = False) -> dict[str, float]:
    """Measurements of one image: ``points`` (K, 2) original pixels (see
    :func:`measure_batch`); ``spacing`` ``(sx, sy)`` mm per pixel or None. NaN where a
    measurement is undefined."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2:
        raise InputError(f"points: expected (K, 2) for one image, got shape {pts.shape}")
    values = measure_batch(spec, pts[None], landmark_names,
                           None if spacing is None else np.asarray(spacing, float)[None],
                           bool(mirrored), truncate)
    return {k: float(v[0]) for k, v in values.items()}


class _Calculator:
    """Evaluates measurements over (N, 2) point arrays, caching referenced ones."""

    def __init__(self, spec, physical, pixel, known):
        self.spec, self.physical, self.pixel, self.known = spec, physical, pixel, known
        self.cache: dict[tuple[str, bool], np.ndarray] = {}

    def value(self, m: Measurement, in_pixels: bool = False) -> np.ndarray:
        key = (m.name, in_pixels)
        if key not in self.cache:
            self.cache[key] = self._compute(m, m.unit or "mm", in_pixels)
        return self.cache[key]

    def _compute(self, m: Measurement | Term, distance_unit: str, in_pixels: bool):
        if isinstance(m, Measurement) and m.sum is not None:
            total = 0.0
            for term in m.sum:
                if term.ref is not None:
                    part = self.value(self.spec.measurement(term.ref), in_pixels)
                else:
                    part = self._compute(term, distance_unit, in_pixels)
                total = total + term.weight * part
            return np.asarray(total, dtype=np.float64)
        pts = self.pixel if in_pixels or distance_unit == "px" else self.physical
        if m.angle is not None:
            return angle(self._vec(pts, m.angle[0]), self._vec(pts, m.angle[1]))
        if getattr(m, "line_plane_angle", None) is not None:
            seg, plane = m.line_plane_angle
            return line_plane_angle(self._vec(pts, seg), self._normal(pts, plane),
                                    signed=m.sign == "normal")
        if getattr(m, "plane_angle", None) is not None:
            return plane_angle(*(self._normal(pts, p) for p in m.plane_angle))
        if getattr(m, "plane_distance", None) is not None:
            point, plane = m.plane_distance
            dist = plane_distance(pts[self.spec.resolve(point)] - pts[self.spec.resolve(
                plane[0])], self._normal(pts, plane), signed=m.sign == "normal")
            return np.where(self.known, dist, np.nan)
        if getattr(m, "projected_distance", None) is not None:
            seg, plane = m.projected_distance
            dist = projected_length(self._vec(pts, seg), self._normal(pts, plane))
            return np.where(self.known, dist, np.nan)
        if m.signed_angle is not None:
            return signed_angle(self._vec(pts, m.signed_angle[0]),
                                self._vec(pts, m.signed_angle[1]))
        if getattr(m, "ratio", None) is not None:
            num, den = (np.linalg.norm(self._vec(self.physical, s), axis=-1) for s in m.ratio)
            with np.errstate(divide="ignore", invalid="ignore"):
                value = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
            return value * 100.0 if m.unit == "percent" else value
        if getattr(m, "line_distance", None) is not None:
            point, (a, b) = m.line_distance
            start = pts[self.spec.resolve(a)]
            dist = line_distance(pts[self.spec.resolve(point)] - start,
                                 pts[self.spec.resolve(b)] - start, signed=m.sign == "side")
            if distance_unit == "mm" and not in_pixels:
                dist = np.where(self.known, dist, np.nan)
            return dist
        if getattr(m, "projection", None) is not None:
            length = projection(self._vec(pts, m.projection[0]),
                                self._vec(pts, m.projection[1]))
            if distance_unit == "mm" and not in_pixels:
                length = np.where(self.known, length, np.nan)
            return length
        vec = self._vec(pts, m.distance)
        dist = np.linalg.norm(vec, axis=-1)
        if m.sign is not None:
            axis = 0 if m.sign == "x" else 1
            dist = np.where(vec[:, axis] < 0, -dist, dist)
        if distance_unit == "mm" and not in_pixels:
            dist = np.where(self.known, dist, np.nan)
        return dist

    def _vec(self, pts, segment: Segment) -> np.ndarray:
        p, q = (pts[self.spec.resolve(s)] for s in segment)
        return q - p

    def _normal(self, pts, plane: Plane) -> np.ndarray:
        a, b, c = (pts[self.spec.resolve(s)] for s in plane)
        return np.cross(b - a, c - a)


def angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Unsigned angle in degrees (0..180) between (N, D) vectors, D = 2 or 3; NaN for a
    zero vector."""
    if u.shape[-1] == 2:
        cross = u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]
    else:
        cross = np.linalg.norm(np.cross(u, v), axis=-1)
    dot = np.sum(u * v, axis=-1)
    deg = np.degrees(np.arctan2(np.abs(cross), dot))
    zero = (np.linalg.norm(u, axis=-1) == 0) | (np.linalg.norm(v, axis=-1) == 0)
    return np.where(zero, np.nan, deg)


def signed_angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """:func:`angle`, negative where ``cross(u, v) = u.x v.y - u.y v.x < 0`` (x right,
    y down: negative when turning u to v is counter-clockwise on screen). 2-D only."""
    if u.shape[-1] != 2:
        raise InputError("signed_angle is defined for 2-D points only")
    cross = u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]
    return np.where(cross < 0, -1.0, 1.0) * angle(u, v)


def projection(u: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Signed length of (N, D) vectors ``u`` along the directions ``d`` (``u . d / |d|``):
    positive where u points the way d does; NaN where d is zero."""
    length = np.linalg.norm(d, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(length > 0, np.sum(u * d, axis=-1) / np.where(length > 0, length, 1.0),
                        np.nan)


def line_distance(d: np.ndarray, u: np.ndarray, signed: bool = False) -> np.ndarray:
    """Distance of points from lines: ``d`` (N, D) is the point minus a point A of the
    line, ``u`` (N, D) the line's direction B - A; D = 2 or 3. ``signed`` (2-D only):
    negative where ``cross(u, d) = u.x d.y - u.y d.x < 0`` (left of A->B on screen, x
    right, y down). NaN where A and B coincide."""
    length = np.linalg.norm(u, axis=-1)
    if u.shape[-1] == 2:
        cross = u[:, 0] * d[:, 1] - u[:, 1] * d[:, 0]
    elif signed:
        raise InputError("a line_distance with 'sign: side' is defined for 2-D points only")
    else:
        cross = np.linalg.norm(np.cross(u, d), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.where(length > 0, cross / np.where(length > 0, length, 1.0), np.nan)
    return dist if signed else np.abs(dist)


def _unit_normal(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit normals, degenerate mask): a plane of three exactly collinear (or
    coincident) points has no normal (NaN)."""
    length = np.linalg.norm(n, axis=-1)
    bad = ~(length > 0)
    return n / np.where(bad, 1.0, length)[:, None], bad


def line_plane_angle(u: np.ndarray, n: np.ndarray, signed: bool = False) -> np.ndarray:
    """Angle in degrees between (N, 3) lines ``u`` and planes of normal ``n``: 0..90
    (``signed``: -90..90, negative where u points against n); NaN where u is zero or the
    plane is degenerate."""
    nhat, bad = _unit_normal(n)
    along = np.sum(u * nhat, axis=-1)
    across = np.linalg.norm(u - along[:, None] * nhat, axis=-1)
    deg = np.degrees(np.arctan2(along if signed else np.abs(along), across))
    zero = np.linalg.norm(u, axis=-1) == 0
    return np.where(bad | zero, np.nan, deg)


def plane_angle(n1: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """Angle in degrees (0..90) between planes of (N, 3) normals ``n1``, ``n2``; NaN for a
    degenerate plane."""
    a, bad1 = _unit_normal(n1)
    b, bad2 = _unit_normal(n2)
    cross = np.linalg.norm(np.cross(a, b), axis=-1)
    dot = np.abs(np.sum(a * b, axis=-1))
    return np.where(bad1 | bad2, np.nan, np.degrees(np.arctan2(cross, dot)))


def plane_distance(d: np.ndarray, n: np.ndarray, signed: bool = False) -> np.ndarray:
    """Distance of points from planes: ``d`` (N, 3) is the point minus a point of the
    plane, ``n`` the normal; ``signed``: negative on the side opposite n."""
    nhat, bad = _unit_normal(n)
    along = np.sum(d * nhat, axis=-1)
    return np.where(bad, np.nan, along if signed else np.abs(along))


def projected_length(u: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Length of (N, 3) vectors ``u`` projected onto planes of normal ``n``."""
    nhat, bad = _unit_normal(n)
    along = np.sum(u * nhat, axis=-1)
    return np.where(bad, np.nan, np.linalg.norm(u - along[:, None] * nhat, axis=-1))
