"""Procedural 3-D head phantoms: volumes with their true geometry, for learning tests of
3-D models on a small CPU.

The phantom (canonical frame: millimetres, axes LPS: x to the patient's left, y
posterior, z superior, the head centred at 0) is an ellipsoidal skull shell around a
darker "brain", with internal structures, each with its own intensity level
(:data:`LEVELS`, int16 units):

- two symmetric ventricles (dark, elongated front to back), left and right of the midline;
- a midline brainstem (a capsule rising from the skull base) and a thin falx (a midline
  plate in the upper brain), both mid-grey;
- a bright pineal sphere on the midline behind the ventricles, and two brighter eye
  spheres in front, left and right.

Eight landmarks (:data:`LANDMARKS`) lie on these structures: the ventricle centres, the
eye centres, the top of the brainstem, the pineal centre, and two points in the middle of
the skull shell (the vertex, top, and the occiput, back). Left and right structures look
alike (:data:`FLIP_PAIRS`), so a landmark is told by its appearance AND its context, not
by its position alone. :data:`LANDMARK_STRUCTURE` names the structure each one sits on.

The head radii follow the field of view (0.66 of its half-extent on each world axis, so a
default volume holds an egg-shaped head), with a per-volume shape change (radii +-5 %,
structure centres +-3 % of the radii). A random rigid pose (rotation about a random axis
by up to 15 degrees, translation up to 3 mm per axis) and a scale of 0.9-1.1 act in WORLD
coordinates: ``world = centre + translation + scale * rotation @ canonical`` where
``centre`` is the centre of the field of view. Each voxel is rendered by mapping its
world position back through the pose into the canonical frame and evaluating analytic
shapes there (anti-aliased over a quarter of the smallest voxel side), so the landmark
positions are exact: no resampling anywhere. Then a smooth multiplicative bias field
(within +-6 %) and Gaussian noise (SD 8-20 units) are applied, and the volume is rounded
to int16.

Small volumes: the skull shell is at least two voxels thick (largest voxel side) and the
small structures at least 1.2 voxels in radius, so the voxel nearest a landmark shows its
structure's level; sides of 24 voxels and up are accepted, and the default grid (48 x 56
x 44 voxels of 1.5 x 1.5 x 3 mm) resolves every structure.

Absent landmarks (``absent_fraction``): ``removed`` mode also leaves the structure out of
the image (an eye, a ventricle, the pineal or the brainstem not drawn; a hole through the
skull at the vertex or the occiput), so image and table agree; ``unlabelled`` mode keeps
the image and only empties the annotation (a partly annotated set).

Geometry: anisotropic spacing (default 1.5 x 1.5 x 3.0 mm), direction identity unless
given, origin such that the field of view is centred on world (0, 0, 0). Spacing and
origin are rounded to float32 first: NIfTI stores them as float32, so the volume is
rendered on exactly the grid its header declares.

:func:`make_synthetic_volumes` writes ``ROOT/images/vol_NNNN.nii.gz`` and one long
``ROOT/landmarks.csv`` (``image,landmark,x,y,z,frame,name,split``; x, y, z in world LPS
millimetres, frame ``world-lps``; the ``split`` column declares the splits as the 2-D
phantoms' table does), read back by :func:`synthetic_volumes_dataset` (the volume CSV
adapter plus the splits and flip pairs). Absent landmarks are rows with EMPTY x, y, z
cells (the row, its name and frame stay), which the volume CSV adapter reads as NaN, not
visible.

Seed rule (as the 2-D phantoms): volume ``n`` of a set written with ``seed`` is rendered
from ``numpy.random.default_rng([seed * 100003 + n, 3])``; which landmarks are absent is
drawn from a separate generator, so volumes and the present landmarks are the same
whatever ``absent_fraction`` is (in ``removed`` mode only the removed structures differ).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import SimpleITK as sitk

from ..core.atomic import atomic_path, atomic_write_text
from ..core.errors import InputError
from ..imageio.formats import image_suffix
from ..imageio.read import itk_message

LANDMARKS = ("ventricle_left", "ventricle_right", "eye_left", "eye_right", "brainstem_top",
             "pineal", "vertex", "occiput")
#: landmark pairs that swap names under a left-right mirror (x -> -x in LPS)
FLIP_PAIRS = (("ventricle_left", "ventricle_right"), ("eye_left", "eye_right"))
#: intensity level of each structure (int16 units, before bias and noise)
LEVELS = {"air": 0, "ventricle": 100, "brain": 400, "falx": 700, "brainstem": 700,
          "skull": 1000, "eye": 1400, "pineal": 1900}
#: the structure each landmark lies on (its intensity is that structure's level)
LANDMARK_STRUCTURE = {"ventricle_left": "ventricle", "ventricle_right": "ventricle",
                      "eye_left": "eye", "eye_right": "eye", "brainstem_top": "brainstem",
                      "pineal": "pineal", "vertex": "skull", "occiput": "skull"}
#: what the voxel of a landmark shows when its structure is removed (``absent=``)
REMOVED_STRUCTURE = {"ventricle_left": "brain", "ventricle_right": "brain",
                     "eye_left": "brain", "eye_right": "brain", "brainstem_top": "brain",
                     "pineal": "brain", "vertex": "air", "occiput": "air"}

DEFAULT_SIZE = (48, 56, 44)
DEFAULT_SPACING = (1.5, 1.5, 3.0)
#: the smallest volume side (voxels) that holds the phantom's structures
MIN_VOLUME_SIDE = 24
ABSENT_MODES = ("removed", "unlabelled")
DOMAIN = "head3d"

_SEED_STRIDE = 100003  # as the 2-D phantoms: image n of seed s renders from s * 100003 + n
_RNG_TAG = 3  # the 2-D phantoms use their domain index (0-2) here
_ABSENT_TAG = 0xAB5E
_HEAD_FILL = 0.66  # head radii / half the field of view


@dataclasses.dataclass(frozen=True)
class Pose:
    """A similarity in world millimetres about the field-of-view centre:
    ``world = centre + translation + scale * rotation @ canonical``."""

    rotation: np.ndarray
    translation: np.ndarray
    scale: float = 1.0

    @staticmethod
    def identity() -> Pose:
        return Pose(np.eye(3), np.zeros(3), 1.0)

    @property
    def angle_deg(self) -> float:
        """The rotation angle (degrees)."""
        cos = (np.trace(self.rotation) - 1.0) / 2.0
        return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))

    def apply(self, canonical, centre) -> np.ndarray:
        """``(..., 3)`` canonical millimetres to world LPS millimetres."""
        c = np.asarray(canonical, dtype=np.float64)
        return np.asarray(centre) + self.translation + self.scale * c @ self.rotation.T


def random_pose(rng: np.random.Generator, max_angle_deg: float = 15.0,
                max_shift_mm: float = 3.0, scale_range: tuple[float, float] = (0.9, 1.1),
                ) -> Pose:
    """A random :class:`Pose`: rotation about a uniformly random axis by an angle uniform
    in [0, ``max_angle_deg``], translation uniform in +-``max_shift_mm`` per axis, scale
    uniform in ``scale_range``."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis) + 1e-12
    angle = np.radians(rng.uniform(0.0, max_angle_deg))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k  # Rodrigues
    translation = rng.uniform(-max_shift_mm, max_shift_mm, 3)
    return Pose(rotation, translation, float(rng.uniform(*scale_range)))


class HeadVolume(NamedTuple):
    """A rendered phantom: ``array (Z, Y, X) int16``, ``origin (3,)`` world LPS mm of voxel
    (0, 0, 0), ``direction (3, 3)`` (column j: world direction of index axis j),
    ``landmarks (K, 3)`` world LPS mm (NaN for landmarks whose structure was removed)."""

    array: np.ndarray
    origin: np.ndarray
    direction: np.ndarray
    landmarks: np.ndarray


# --------------------------------------------------------------------------- geometry


def volume_grid(size=DEFAULT_SIZE, spacing=DEFAULT_SPACING, direction=None,
                ) -> tuple[tuple[int, int, int], np.ndarray, np.ndarray, np.ndarray]:
    """``(size, spacing, origin, direction)`` of a phantom volume, as its NIfTI header
    will hold them: spacing and origin float32-exact, the field of view centred on world
    (0, 0, 0). Refuses a side below :data:`MIN_VOLUME_SIDE`, a spacing that is not
    positive, a direction that is not orthonormal."""
    size = _triple(size, "size", int)
    spacing_in = _triple(spacing, "spacing", float)
    if min(size) < MIN_VOLUME_SIDE:
        raise InputError(f"volume size {size}: each side needs at least {MIN_VOLUME_SIDE} "
                         "voxels")
    if not all(math.isfinite(v) and 0 < v <= 20 for v in spacing_in):
        raise InputError(f"spacing {spacing_in}: expected three numbers in (0, 20] mm")
    d = np.eye(3) if direction is None else np.asarray(direction, dtype=np.float64)
    if d.shape != (3, 3) or np.abs(d.T @ d - np.eye(3)).max() > 1e-6:
        raise InputError("direction must be an orthonormal 3 x 3 matrix (column j: the world "
                         "direction of index axis j)")
    sp = np.asarray(spacing_in, dtype=np.float32).astype(np.float64)
    half = sp * (np.asarray(size) - 1) / 2.0
    origin = (-(d @ half)).astype(np.float32).astype(np.float64)
    return size, sp, origin, d


def index_to_world(index, spacing, origin, direction) -> np.ndarray:
    """``(..., 3)`` voxel indices (x, y, z) to world LPS mm (ITK's convention)."""
    idx = np.asarray(index, dtype=np.float64)
    return (idx * np.asarray(spacing)) @ np.asarray(direction).T + np.asarray(origin)


def world_to_index(world, spacing, origin, direction) -> np.ndarray:
    """``(..., 3)`` world LPS mm to continuous voxel indices (x, y, z)."""
    pts = np.asarray(world, dtype=np.float64) - np.asarray(origin)
    return (pts @ np.linalg.inv(np.asarray(direction)).T) / np.asarray(spacing)


def _triple(value, name: str, kind) -> tuple:
    try:
        out = tuple(kind(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be three numbers (x, y, z), got {value!r}") from None
    if len(out) != 3:
        raise InputError(f"{name} must be three numbers (x, y, z), got {value!r}")
    return out


# --------------------------------------------------------------------------- rendering


class _Field:
    """Canonical coordinates of every voxel and the image being composited."""

    def __init__(self, canonical: tuple[np.ndarray, np.ndarray, np.ndarray], edge: float):
        self.c = canonical
        self.edge = edge
        self.image = np.full(canonical[0].shape, float(LEVELS["air"]))

    def alpha(self, sdf: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(np.clip(sdf / self.edge, -50, 50)))

    def paint(self, sdf: np.ndarray, level: str, mask: np.ndarray | None = None) -> None:
        a = self.alpha(sdf) if mask is None else self.alpha(sdf) * mask
        self.image += (LEVELS[level] - self.image) * a

    def ellipsoid(self, centre, semi) -> np.ndarray:
        """Approximate signed distance (mm): exact zero set, ~distance near it."""
        r = np.sqrt(sum(((ci - c0) / s) ** 2 for ci, c0, s in zip(self.c, centre, semi,
                                                                   strict=True)))
        return (r - 1.0) * float(np.min(semi))

    def capsule(self, p0, p1, radius) -> np.ndarray:
        p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
        d = p1 - p0
        rel = [ci - a for ci, a in zip(self.c, p0, strict=True)]
        t = np.clip(sum(r * di for r, di in zip(rel, d, strict=True)) / (d @ d + 1e-12), 0, 1)
        dist = np.sqrt(sum((r - t * di) ** 2 for r, di in zip(rel, d, strict=True)))
        return dist - radius


def _structures(rng: np.random.Generator, radii: np.ndarray, voxel: float) -> dict:
    """The phantom's shapes in canonical mm (a per-volume variant) and its landmarks.

    ``voxel``: the largest voxel side (mm); small structures and the skull shell are kept
    at least about a voxel thick so that a landmark's voxel shows its structure."""
    rad = radii * rng.uniform(0.95, 1.05, 3)
    floor = 1.2 * voxel
    shell = min(max(0.16 * float(rad.min()), 2.0 * voxel), 0.35 * float(rad.min()))

    def at(u):  # normalized head coordinates (+-3 % jitter) -> canonical mm
        return (np.asarray(u, float) + rng.uniform(-0.03, 0.03, 3)) * rad

    vent_semi = np.maximum(np.array([0.17, 0.32, 0.16]) * rad * rng.uniform(0.93, 1.07, 3),
                           floor)
    vent_left = at((0.28, -0.05, 0.15))
    vent_right = vent_left * np.array([-1.0, 1.0, 1.0]) + rng.uniform(-0.02, 0.02, 3) * rad
    eye_r = max(0.18 * rad[0] * rng.uniform(0.93, 1.07), floor)
    eye_left = at((0.30, -0.55, -0.25))
    eye_right = eye_left * np.array([-1.0, 1.0, 1.0]) + rng.uniform(-0.02, 0.02, 3) * rad
    stem_top = at((0.0, 0.05, -0.2)) * np.array([0.0, 1.0, 1.0])
    stem_bottom = at((0.0, 0.12, -0.8)) * np.array([0.0, 1.0, 1.0])
    stem_r = max(0.2 * rad[0] * rng.uniform(0.93, 1.07), floor)
    pineal = at((0.0, 0.4, 0.0)) * np.array([0.0, 1.0, 1.0])
    pineal_r = max(0.16 * rad[0] * rng.uniform(0.93, 1.07), floor)
    vertex = np.array([0.0, 0.0, rad[2] - shell / 2.0])  # the middle of the shell
    occiput = np.array([0.0, rad[1] - shell / 2.0, 0.0])
    landmarks = np.array([vent_left, vent_right, eye_left, eye_right, stem_top, pineal,
                          vertex, occiput])
    return {"radii": rad, "inner": rad - shell, "vent_semi": vent_semi, "eye_r": eye_r,
            "stem": (stem_bottom, stem_top, stem_r), "pineal_r": pineal_r,
            "landmarks": landmarks}


def render_head_volume(rng: np.random.Generator, size=DEFAULT_SIZE, spacing=DEFAULT_SPACING,
                       pose: Pose | None = None, direction=None, absent=(),
                       ) -> HeadVolume:
    """One head phantom (module docstring) on a ``size`` (x, y, z voxels) grid of
    ``spacing`` (x, y, z mm) with ``direction`` (default identity).

    ``pose``: a :class:`Pose`, or None for a random one (:func:`random_pose`); a random
    pose is drawn from ``rng`` either way, so the same generator state gives the same
    shape under any pose. ``absent``: landmark names or indices whose structure is not
    drawn (an eye, a ventricle, the pineal, the brainstem; a hole through the skull for
    the vertex and the occiput); their rows of ``landmarks`` are NaN. The random draws do
    not depend on ``absent``.
    """
    size, sp, origin, d = volume_grid(size, spacing, direction)
    gone = _absent_indices(absent)
    drawn = random_pose(rng)
    pose = drawn if pose is None else pose
    half_extent = np.abs(d) @ (sp * np.asarray(size) / 2.0)  # along the world axes
    shapes = _structures(rng, _HEAD_FILL * half_extent, float(sp.max()))
    rad = shapes["radii"]
    centre = index_to_world((np.asarray(size) - 1) / 2.0, sp, origin, d)

    # each voxel's world position, back through the pose into the canonical frame
    zz, yy, xx = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in reversed(size)),
                             indexing="ij", sparse=True)
    m = pose.rotation.T @ d @ np.diag(sp) / pose.scale
    b = pose.rotation.T @ (origin - centre - pose.translation) / pose.scale
    canonical = tuple(m[r, 0] * xx + m[r, 1] * yy + m[r, 2] * zz + b[r] for r in range(3))
    f = _Field(canonical, 0.25 * float(sp.min()) / pose.scale)

    landmarks = shapes["landmarks"]
    skull = f.ellipsoid((0, 0, 0), rad)
    hole = np.zeros(skull.shape)
    for k in (6, 7):  # vertex, occiput: a hole through the shell
        if k in gone:
            hole = np.maximum(hole, f.alpha(f.ellipsoid(landmarks[k], 0.25 * rad)))
    f.paint(skull, "skull", mask=1.0 - hole)
    inner = f.ellipsoid((0, 0, 0), shapes["inner"])
    f.paint(inner, "brain")
    # falx: a thin midline plate in the upper brain
    x, _, z = canonical
    falx = np.maximum(np.maximum(np.abs(x) - 1.0, 0.4 * rad[2] - z), inner)
    f.paint(falx, "falx")
    for k in (0, 1):
        if k not in gone:
            f.paint(f.ellipsoid(landmarks[k], shapes["vent_semi"]), "ventricle")
    if 4 not in gone:
        bottom, top, radius = shapes["stem"]
        f.paint(f.capsule(bottom, top, radius), "brainstem")
    if 5 not in gone:
        f.paint(f.ellipsoid(landmarks[5], np.full(3, shapes["pineal_r"])), "pineal")
    for k in (2, 3):
        if k not in gone:
            f.paint(f.ellipsoid(landmarks[k], np.full(3, shapes["eye_r"])), "eye")

    # smooth multiplicative bias (within +-6 %) and noise, in world coordinates
    world_rel = [sum(d[r, j] * sp[j] * g for j, g in enumerate((xx, yy, zz)))
                 + origin[r] - centre[r] for r in range(3)]
    norm = [w / max(h, 1e-6) for w, h in zip(world_rel, half_extent, strict=True)]
    grad = rng.uniform(-0.025, 0.025, 3)
    curve = rng.uniform(-0.02, 0.02)
    bias = 1.0 + sum(g * n for g, n in zip(grad, norm, strict=True)) \
        + curve * (sum(n ** 2 for n in norm) - 1.0)
    image = f.image * np.clip(bias, 0.94, 1.06)
    image = image + rng.normal(0.0, rng.uniform(8.0, 20.0), image.shape)
    array = np.clip(np.round(image), -32768, 32767).astype(np.int16)

    world = pose.apply(landmarks, centre)
    world[sorted(gone)] = np.nan
    return HeadVolume(array, origin, d, world)


def _absent_indices(absent) -> set[int]:
    out = set()
    for item in absent:
        if isinstance(item, str):
            if item not in LANDMARKS:
                raise InputError(f"absent landmark {item!r}: known are {', '.join(LANDMARKS)}")
            out.add(LANDMARKS.index(item))
        elif 0 <= int(item) < len(LANDMARKS):
            out.add(int(item))
        else:
            raise InputError(f"absent landmark index {item!r}: expected 0..{len(LANDMARKS) - 1}")
    return out


def volume_rng(seed: int, n: int) -> np.random.Generator:
    """The generator of volume ``n`` of a set written with ``seed`` (module docstring)."""
    return np.random.default_rng([int(seed) * _SEED_STRIDE + int(n), _RNG_TAG])


# --------------------------------------------------------------------------- writing


def write_volume_atomic(path: str | os.PathLike, array: np.ndarray, spacing, origin,
                        direction) -> Path:
    """Write ``array`` (Z, Y, X) with its geometry through SimpleITK: a temporary file with
    the real suffix in the same folder, then ``os.replace``."""
    path = Path(path)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(tuple(float(v) for v in spacing))
    image.SetOrigin(tuple(float(v) for v in origin))
    image.SetDirection(tuple(float(v) for v in np.asarray(direction).ravel()))
    with atomic_path(path, suffix=image_suffix(path)) as tmp:
        try:
            sitk.WriteImage(image, str(tmp), True)
        except RuntimeError as err:
            raise InputError(f"{path}: cannot write the volume ({itk_message(err)})") from err
    return path


def absent_pairs(n_volumes: int, absent_fraction: float, seed: int) -> set[tuple[int, int]]:
    """``{(volume, landmark index)}`` left absent: ``round(absent_fraction * n_volumes *
    K)`` pairs drawn uniformly without replacement (their own generator of ``seed``)."""
    k = len(LANDMARKS)
    count = int(round(float(absent_fraction) * n_volumes * k))
    if count == 0:
        return set()
    rng = np.random.default_rng([int(seed), _ABSENT_TAG])
    chosen = rng.choice(n_volumes * k, size=count, replace=False)
    return {(int(c) // k, int(c) % k) for c in chosen}


def make_synthetic_volumes(root: str | Path, count_train: int, count_val: int,
                           count_test: int, seed: int = 0, size=DEFAULT_SIZE,
                           spacing=DEFAULT_SPACING, absent_fraction: float = 0.0,
                           absent_mode: str = "removed", direction=None) -> Path:
    """Write head phantoms: ``ROOT/images/vol_NNNN.nii.gz`` (int16, their true spacing,
    origin and direction) and ``ROOT/landmarks.csv`` (module docstring). Returns the
    table's path.

    Volumes are numbered train first, then val, then test (the ``split`` column).
    ``absent_fraction`` in [0, 1): that fraction of all (volume, landmark) pairs is absent
    (:func:`absent_pairs`), written as rows with empty x, y, z. ``absent_mode``:
    ``removed`` (the structure is not drawn either, so the image agrees: what a model
    should learn to call absent) or ``unlabelled`` (drawn but not annotated: a partly
    annotated set). Bad counts, sizes, spacing or fraction are refused before anything is
    written.
    """
    counts = (int(count_train), int(count_val), int(count_test))
    if min(counts) < 0 or sum(counts) < 1:
        raise InputError(f"volume counts (train, val, test) must be >= 0 with at least one "
                         f"volume, got {counts}")
    if not (0.0 <= float(absent_fraction) < 1.0):
        raise InputError(f"absent_fraction must be in [0, 1), got {absent_fraction!r}")
    if absent_mode not in ABSENT_MODES:
        raise InputError(f"absent_mode {absent_mode!r}: expected one of "
                         f"{', '.join(ABSENT_MODES)}")
    size, sp, origin, d = volume_grid(size, spacing, direction)
    root = Path(root)
    total = sum(counts)
    absent = absent_pairs(total, absent_fraction, seed)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["image", "landmark", "x", "y", "z", "frame", "name", "split"])
    splits = [s for s, c in zip(("train", "val", "test"), counts, strict=True) for _ in range(c)]
    for n, split in enumerate(splits):
        rid = f"vol_{n:04d}"
        gone = sorted(k for v, k in absent if v == n)
        vol = render_head_volume(volume_rng(seed, n), size, sp, direction=d,
                                 absent=gone if absent_mode == "removed" else ())
        write_volume_atomic(root / "images" / f"{rid}.nii.gz", vol.array, sp, vol.origin,
                            vol.direction)
        for k, name in enumerate(LANDMARKS):
            xyz = ["", "", ""] if k in gone else [repr(float(v)) for v in vol.landmarks[k]]
            writer.writerow([rid, k + 1, *xyz, "world-lps", name, split])
    table = root / "landmarks.csv"
    atomic_write_text(table, buf.getvalue())
    return table


def synthetic_volumes_dataset(root: str | Path, name: str = "synthetic-volumes"):
    """3-D head phantoms (docs/volumes.md) as a DatasetSpec: the volume
    CSV adapter's records (voxel points, world LPS in ``meta``), splits ``train``,
    ``val``, ``test`` (from the ``split`` column) and ``all``, and ``info["flip_pairs"]``."""
    from .adapters.volumes import volume_csv_dataset

    root = Path(root)
    table = root / "landmarks.csv"
    if not table.is_file():
        raise InputError(f"{table}: no synthetic volumes here; write them with "
                         "make_synthetic_volumes")
    spec = volume_csv_dataset(table, images=root / "images", name=name, domain=DOMAIN)
    order: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    with open(table, newline="") as fh:
        for row in csv.DictReader(fh):
            ids = order.setdefault(row.get("split") or "all", [])
            if row["image"] not in ids:
                ids.append(row["image"])
    known = {r.id for r in spec.records}
    splits = {s: tuple(i for i in ids if i in known) for s, ids in order.items() if ids}
    splits["all"] = tuple(r.id for r in spec.records)
    info = {**spec.info, "flip_pairs": [list(p) for p in FLIP_PAIRS], "root": str(root)}
    return dataclasses.replace(spec, splits=splits, info=info)


__all__ = ["ABSENT_MODES", "DEFAULT_SIZE", "DEFAULT_SPACING", "DOMAIN", "FLIP_PAIRS",
           "HeadVolume", "LANDMARKS", "LANDMARK_STRUCTURE", "LEVELS", "MIN_VOLUME_SIDE",
           "Pose", "REMOVED_STRUCTURE", "absent_pairs", "index_to_world",
           "make_synthetic_volumes", "random_pose", "render_head_volume",
           "synthetic_volumes_dataset", "volume_grid", "volume_rng", "world_to_index",
           "write_volume_atomic"]
