"""Procedural phantom domains that behave like the real problem.

- ``head``: a skull ring with a sella, an orbit, a jaw and incisors (8 landmarks).
- ``hand``: a palm with five near-identical fingers (12 landmarks: base and tip of each
  finger, two wrist points): a fingertip is locally ambiguous, only the whole hand says
  which finger it is.
- ``chest``: a body with two lung fields, a heart and a spine (6 landmarks).

Each image gets a random pose (rotation, scale, translation), random shape changes,
intensity changes (contrast, gamma, gradient) and noise; everything is deterministic by
seed, and the landmark positions are known exactly (float pixels, pixel-centre
convention). Shapes are drawn in a canonical frame ([-1, 1]^2) as anti-aliased signed
distance primitives and mapped to pixels by the pose.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_write_text
from ..core.errors import InputError
from ..imageio.read import write_image

DOMAINS = ("head", "hand", "chest")
#: mm per pixel written for each phantom domain (None: scored in pixels, like the chest)
SPACING = {"head": 0.8, "hand": 0.6, "chest": None}

LANDMARKS = {
    "head": ("sella", "nasion", "orbit", "incisor", "menton", "gonion", "condylion",
             "opisthocranion"),
    "hand": ("thumb_base", "thumb_tip", "index_base", "index_tip", "middle_base",
             "middle_tip", "ring_base", "ring_tip", "little_base", "little_tip",
             "wrist_radial", "wrist_ulnar"),
    "chest": ("right_apex", "right_costophrenic", "right_hilum", "left_apex",
              "left_costophrenic", "left_hilum"),
}


@dataclass
class _Canvas:
    """Pixel grid and pose: canonical u -> pixel p = centre + scale * R @ u."""

    size: tuple[int, int]
    centre: np.ndarray
    scale: float
    angle: float

    def __post_init__(self):
        w, h = self.size
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
        c, s = np.cos(self.angle), np.sin(self.angle)
        dx, dy = xs - self.centre[0], ys - self.centre[1]
        # inverse pose: u = R^T (p - centre) / scale
        self.u = (c * dx + s * dy) / self.scale
        self.v = (-s * dx + c * dy) / self.scale
        self.image = np.zeros((h, w), dtype=np.float64)
        self.edge = 0.8 / self.scale  # anti-aliasing width: 0.8 px in canonical units

    def to_pixels(self, points: np.ndarray) -> np.ndarray:
        c, s = np.cos(self.angle), np.sin(self.angle)
        rot = np.array([[c, -s], [s, c]])
        return self.centre + self.scale * np.asarray(points) @ rot.T

    def _paint(self, sdf: np.ndarray, value: float) -> None:
        self.image += value / (1.0 + np.exp(np.clip(sdf / self.edge, -50, 50)))

    def ellipse(self, centre, radii, value, angle=0.0) -> None:
        c, s = np.cos(angle), np.sin(angle)
        du, dv = self.u - centre[0], self.v - centre[1]
        a, b = c * du + s * dv, -s * du + c * dv
        r = np.sqrt((a / radii[0]) ** 2 + (b / radii[1]) ** 2)
        self._paint((r - 1.0) * min(radii), value)

    def ring(self, centre, radii, thickness, value) -> None:
        du, dv = self.u - centre[0], self.v - centre[1]
        r = np.sqrt((du / radii[0]) ** 2 + (dv / radii[1]) ** 2)
        self._paint(np.abs(r - 1.0) * min(radii) - thickness, value)

    def capsule(self, p0, p1, radius, value) -> None:
        p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
        d = p1 - p0
        t = np.clip(((self.u - p0[0]) * d[0] + (self.v - p0[1]) * d[1]) / (d @ d + 1e-12), 0, 1)
        dist = np.hypot(self.u - p0[0] - t * d[0], self.v - p0[1] - t * d[1])
        self._paint(dist - radius, value)


def _jitter(rng, scale=0.03, n=2):
    return rng.uniform(-scale, scale, size=n)


def _head(cv: _Canvas, rng) -> np.ndarray:
    skull_c = np.array([-0.05, -0.15]) + _jitter(rng, 0.03)
    skull_r = np.array([0.78, 0.62]) * rng.uniform(0.93, 1.07, 2)
    cv.ellipse(skull_c, skull_r, 0.18)
    cv.ring(skull_c, skull_r, 0.035, 0.45)
    sella = skull_c + np.array([-0.15, 0.1]) + _jitter(rng, 0.05)
    cv.ring(sella, (0.09, 0.07), 0.02, 0.35)
    cv.ellipse(sella, (0.06, 0.045), -0.12)
    orbit = skull_c + np.array([0.58, 0.08]) + _jitter(rng, 0.04)
    cv.ring(orbit, (0.1, 0.11), 0.018, 0.3)
    nasion = skull_c + np.array([skull_r[0] * 0.97, 0.12]) + _jitter(rng, 0.02)
    menton = np.array([0.55, 0.82]) + _jitter(rng, 0.05)
    gonion = np.array([-0.12, 0.68]) + _jitter(rng, 0.05)
    condylion = np.array([-0.22, 0.3]) + _jitter(rng, 0.04)
    maxilla = nasion + np.array([0.02, 0.38]) + _jitter(rng, 0.03)
    cv.capsule(nasion, maxilla, 0.05, 0.3)
    cv.capsule(maxilla, menton, 0.05, 0.22)
    cv.capsule(menton, gonion, 0.06, 0.4)
    cv.capsule(gonion, condylion, 0.05, 0.4)
    incisor = maxilla + np.array([0.08, 0.17]) + _jitter(rng, 0.02)
    cv.capsule(maxilla + np.array([0.0, 0.04]), incisor, 0.025, 0.5)
    opisthocranion = skull_c + np.array([-skull_r[0], 0.0])
    return np.array([sella, nasion, orbit, incisor, menton, gonion, condylion, opisthocranion])


def _hand(cv: _Canvas, rng) -> np.ndarray:
    palm_c = np.array([0.0, 0.32]) + _jitter(rng, 0.03)
    palm_r = np.array([0.36, 0.3]) * rng.uniform(0.95, 1.05, 2)
    cv.capsule(palm_c + (0, 0.2), palm_c + (0, 1.0), 0.24, 0.25)  # forearm
    cv.ellipse(palm_c, palm_r, 0.3)
    width = 0.055 * rng.uniform(0.92, 1.08)
    bases, tips = [], []
    spread = rng.uniform(0.85, 1.15)
    # (base offset from palm centre, direction angle in degrees from +x, length)
    fingers = [((-0.34, 0.02), -140.0, 0.42), ((-0.25, -0.24), -100.0, 0.56),
               ((-0.08, -0.3), -92.0, 0.62), ((0.09, -0.29), -84.0, 0.58),
               ((0.25, -0.22), -74.0, 0.46)]
    for (ox, oy), ang, length in fingers:
        base = palm_c + np.array([ox, oy]) + _jitter(rng, 0.015)
        a = np.deg2rad(-90 + (ang + 90) * spread + rng.uniform(-5, 5))
        direction = np.array([np.cos(a), np.sin(a)])
        length *= rng.uniform(0.92, 1.08)
        tip = base + direction * length
        joints = [base + direction * length * f for f in (0.0, 0.45, 0.78, 1.0)]
        for j0, j1 in zip(joints[:-1], joints[1:], strict=True):
            cv.capsule(j0 + direction * 0.012, j1 - direction * 0.012, width, 0.42)
        cv.ellipse(base, (width * 1.2, width * 1.2), 0.12)
        bases.append(base)
        tips.append(tip)
    wrist_r = palm_c + np.array([-0.22, 0.42]) + _jitter(rng, 0.02)
    wrist_u = palm_c + np.array([0.22, 0.42]) + _jitter(rng, 0.02)
    cv.ellipse(wrist_r, (0.05, 0.05), 0.2)
    cv.ellipse(wrist_u, (0.04, 0.04), 0.2)
    pts = [p for pair in zip(bases, tips, strict=True) for p in pair]
    return np.array([*pts, wrist_r, wrist_u])


def _chest(cv: _Canvas, rng) -> np.ndarray:
    cv.ellipse(np.array([0.0, 0.05]) + _jitter(rng, 0.02), (0.86, 0.92), 0.5)
    cv.capsule((0, -0.9), (0, 0.95), 0.07, 0.15)  # spine
    out = []
    for side in (-1, 1):  # -1: right lung (image left), +1: left lung
        c = np.array([side * 0.38, 0.0]) + _jitter(rng, 0.03)
        r = np.array([0.25, 0.55]) * rng.uniform(0.9, 1.1, 2)
        cv.ellipse(c, r, -0.38)
        apex = c + np.array([side * 0.04, -r[1]])
        costophrenic = c + np.array([side * r[0] * 0.85, r[1] * 0.53])
        hilum = c + np.array([-side * r[0], 0.05])
        out.append([apex, costophrenic, hilum])
    heart = np.array([0.14, 0.32]) + _jitter(rng, 0.04)
    cv.ellipse(heart, (0.26, 0.2) * rng.uniform(0.9, 1.1, 2), 0.22, angle=rng.uniform(-0.3, 0.1))
    return np.array(out[0] + out[1])


_BUILDERS = {"head": _head, "hand": _hand, "chest": _chest}


def render_phantom(domain: str, seed: int, size: tuple[int, int] = (192, 192),
                   ) -> tuple[np.ndarray, np.ndarray]:
    """One phantom: ``(image (H, W) uint8, points (K, 2) float64 in pixels)``."""
    if domain not in _BUILDERS:
        raise InputError(f"unknown phantom domain {domain!r}; expected one of {DOMAINS}")
    rng = np.random.default_rng([seed, DOMAINS.index(domain)])
    w, h = size
    scale = 0.42 * min(w, h) * rng.uniform(0.88, 1.08)
    centre = np.array([(w - 1) / 2, (h - 1) / 2]) + rng.uniform(-0.06, 0.06, 2) * min(w, h)
    cv = _Canvas(size, centre, scale, np.deg2rad(rng.uniform(-15, 15)))
    points = cv.to_pixels(_BUILDERS[domain](cv, rng))
    img = 0.08 + cv.image
    gx, gy = rng.uniform(-0.1, 0.1, 2)
    img += gx * (cv.u / 2) + gy * (cv.v / 2)
    img = np.clip(img * rng.uniform(0.8, 1.2), 0, 1) ** rng.uniform(0.75, 1.35)
    img += rng.normal(0.0, rng.uniform(0.01, 0.04), img.shape)
    image = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    return image, points


def make_synthetic(out: str | Path, domains=DOMAINS, train: int = 60, val: int = 15,
                   test: int = 15, size: tuple[int, int] = (192, 192), seed: int = 0,
                   ) -> dict[str, Path]:
    """Write phantom domains as PNG images plus ``landmarks.csv`` (the csv adapter's wide
    format with ``id, image, split, spacing`` and ``NAME_x, NAME_y`` columns).

    Returns {domain: path of its landmarks.csv}. Unknown domains, negative counts, no
    image at all, or a size below the minimum image size are refused before anything is
    written.
    """
    _check_request(domains, (train, val, test), size)
    out = Path(out)
    written = {}
    for domain in domains:
        folder = out / domain / "images"
        folder.mkdir(parents=True, exist_ok=True)
        names = LANDMARKS[domain]
        header = ["id", "image", "split", "spacing"] + [f"{n}_{a}" for n in names for a in "xy"]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        n = 0
        for split, count in (("train", train), ("val", val), ("test", test)):
            for _ in range(count):
                rid = f"{domain}_{n:04d}"
                image, points = render_phantom(domain, seed * 100003 + n, size)
                write_image(folder / f"{rid}.png", image)
                sp = SPACING[domain]
                writer.writerow([rid, f"images/{rid}.png", split, "" if sp is None else sp]
                                + [f"{v:.4f}" for v in points.ravel()])
                n += 1
        table = out / domain / "landmarks.csv"
        atomic_write_text(table, buf.getvalue())
        written[domain] = table
    return written


def _check_request(domains, counts, size) -> None:
    from ..core.limits import MIN_IMAGE_SIDE

    unknown = [d for d in domains if d not in LANDMARKS]
    if unknown or not domains:
        raise InputError(f"unknown phantom domain(s) {unknown or domains}; known: "
                         f"{', '.join(DOMAINS)}")
    if any(int(c) < 0 for c in counts) or sum(int(c) for c in counts) < 1:
        raise InputError(f"image counts (train, val, test) must be >= 0 with at least one "
                         f"image, got {tuple(counts)}")
    if len(size) != 2 or min(int(v) for v in size) < MIN_IMAGE_SIDE:
        raise InputError(f"image size {size[0]}x{size[1]}: each side needs at least "
                         f"{MIN_IMAGE_SIDE} pixels")
