"""Plausibility limits on inputs: pixel spacing, image size, pixel count.

One place for the numbers, so a file header, a table column, a command-line option and a
config value are held to the same range. See docs/refusals.md.
"""

from __future__ import annotations

import math
import os

from .errors import InputError

#: spacing outside this range (mm per pixel) is not a plausible 2-D medical image
SANE_SPACING_MM = (1e-3, 10.0)

#: an image narrower or lower than this (pixels) cannot hold a landmark configuration
MIN_IMAGE_SIDE = 16

#: default cap on width x height (x slices) read from a header before decoding
DEFAULT_MAX_PIXELS = 200_000_000
#: environment variable that overrides :data:`DEFAULT_MAX_PIXELS`
MAX_PIXELS_ENV = "UNILANDMARK_MAX_PIXELS"


def spacing_fault(spacing, dims: int = 2) -> str | None:
    """Why ``spacing`` ``(sx, sy)`` (``dims`` = 3: ``(sx, sy, sz)``) in mm per pixel (voxel)
    is not usable, or None when it is.

    Usable: ``dims`` finite numbers within :data:`SANE_SPACING_MM`.
    """
    unit = "pixel" if dims == 2 else "voxel"
    try:
        values = tuple(float(v) for v in spacing)
        if len(values) != dims:
            raise ValueError
    except (TypeError, ValueError):
        return f"spacing must be {dims} numbers (mm per {unit}), got {spacing!r}"
    shown = ", ".join(f"{v:g}" for v in values)
    lo, hi = SANE_SPACING_MM
    if not all(math.isfinite(v) and v > 0 for v in values):
        return f"spacing must be positive and finite, got ({shown}) mm per {unit}"
    if not all(lo <= v <= hi for v in values):
        return f"implausible spacing ({shown}) mm per {unit}; expected {lo:g}..{hi:g}"
    return None


def checked_spacing(value, where: str) -> tuple[float, float] | None:
    """A user-given spacing (one number for both axes, or a pair) -> ``(sx, sy)`` or None.

    ``where`` names the source in the error (``--spacing``, ``csv option spacing``, ...).
    Raises ValueError for text, NaN, infinity, zero, negative or implausible values.
    """
    if value is None:
        return None
    pair = value if isinstance(value, (tuple, list)) else (value, value)
    shown = tuple(value) if isinstance(value, (tuple, list)) else value
    try:
        if isinstance(value, bool) or len(pair) != 2:
            raise TypeError
        pair = tuple(float(v) for v in pair)
    except (TypeError, ValueError):
        raise InputError(f"{where} must be a number of mm per pixel, got {value!r}") from None
    lo, hi = SANE_SPACING_MM
    if not all(math.isfinite(v) and v > 0 for v in pair):
        raise InputError(f"{where} must be positive and finite (mm per pixel), got {shown}")
    if not all(lo <= v <= hi for v in pair):
        raise InputError(f"{where} {shown} mm per pixel is implausible; expected {lo:g}..{hi:g}")
    return pair


def max_pixels(override: int | None = None) -> int:
    """The pixel-count limit: ``override``, else ``$UNILANDMARK_MAX_PIXELS``, else 200 MP."""
    if override is not None:
        return int(override)
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        raise InputError(f"${MAX_PIXELS_ENV}={text!r}: expected a number of pixels, "
                         "e.g. 400000000") from None
    if value <= 0:
        raise InputError(f"${MAX_PIXELS_ENV}={text!r}: must be positive")
    return value


def size_fault(width: int, height: int, depth: int = 1, limit: int | None = None,
               ) -> str | None:
    """Why an image of this size is refused (too small, or too many pixels), or None."""
    pixels = int(width) * int(height) * max(1, int(depth))
    cap = max_pixels(limit)
    if pixels > cap:
        return (f"the header declares {width} x {height}"
                + (f" x {depth}" if depth > 1 else "")
                + f" = {pixels / 1e6:.0f} megapixels, above the limit of {cap / 1e6:g} "
                  f"megapixels (raise it with ${MAX_PIXELS_ENV})")
    if min(width, height) < MIN_IMAGE_SIDE:
        return (f"image of {width} x {height} pixels is too small; landmark detection "
                f"needs at least {MIN_IMAGE_SIDE} x {MIN_IMAGE_SIDE}")
    return None
