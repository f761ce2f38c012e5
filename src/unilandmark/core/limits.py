"""Plausibility limits on inputs: pixel spacing, image size, pixel count, and the sizes,
counts, scales and names a model file declares.

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


# Model files (safetensors headers, checkpoints, ONNX metadata): every size, count and scale
# a file declares is held to these before anything is built or allocated from it.

#: a network input side (pixels, or voxels for volumes) of a model, inclusive
INPUT_SIDE_RANGE = (8, 4096)
#: network input elements (W x H, or X x Y x Z): 4096 x 4096, or 256 cubed
MAX_INPUT_ELEMENTS = 4096 * 4096
#: landmarks of one domain
MAX_LANDMARKS = 1000
#: domains of one model
MAX_DOMAINS = 64
#: stages of one model (the whole-image stage and the patch stages refining it)
MAX_STAGES = 16
#: characters of one landmark or domain name
MAX_NAME_LENGTH = 200
#: a model's network sizes (``model.width``, ``depth``, ``global_width``, ``dilations``):
#: the trunk's deepest level has 8 x width channels, so width 256 is already ~1 GB of
#: weights; the built-in models use 32, the paper's 64
MAX_MODEL_WIDTH = 256
MAX_MODEL_DEPTH = 8
MAX_GLOBAL_WIDTH = 1024
MAX_DILATION = 64
MAX_DILATIONS = 16
#: a patch stage's ``scale`` (original pixels per patch pixel): below 0.25 a patch stage
#: would enlarge every image more than 4x per side before cropping
PATCH_SCALE_RANGE = (0.25, 256.0)
#: a patch stage's ``scale_mm`` (mm per patch pixel); also a volume patch stage's
#: ``spacing`` (mm per patch voxel) in ONNX metadata
PATCH_SCALE_MM_RANGE = (1e-3, 100.0)
#: a volume patch stage's cube side (voxels), inclusive
VOLUME_PATCH_SIDE_RANGE = (8, 512)
#: nesting of the JSON text in a model file (stage configs, provenance, ONNX metadata)
MAX_JSON_DEPTH = 64
#: elements of one output an ONNX graph declares (its fixed dimensions multiplied)
MAX_OUTPUT_ELEMENTS = 10_000_000

#: characters refused in a name read from a model file: they would reach a terminal or a
#: CSV cell as control codes (C0/C1 controls, line and paragraph separators, bidi overrides)
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029")


def name_fault(name, what: str = "landmark name") -> str | None:
    """Why ``name`` (a landmark or domain name read from a model file) is refused, or None:
    it must be text of 1 to :data:`MAX_NAME_LENGTH` characters without control characters
    (a newline, a terminal escape, a bidi override)."""
    if not isinstance(name, str):
        return f"{what} {name!r:.80} is not text"
    if not name.strip():
        return f"{what} {name!r} is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"{what} {name[:40]!r}... has {len(name)} characters (at most {MAX_NAME_LENGTH})"
    bad = next((c for c in name if ord(c) < 32 or 127 <= ord(c) < 160 or c in _BIDI), None)
    if bad is not None:
        return f"{what} {name!r} holds the control character {bad!r}"
    return None


def input_size_fault(size, dims: tuple[int, ...] = (2, 3)) -> str | None:
    """Why a model's network ``input_size`` ((W, H), or (X, Y, Z) for volumes) is refused,
    or None: ``dims`` integers within :data:`INPUT_SIDE_RANGE`, at most
    :data:`MAX_INPUT_ELEMENTS` in all."""
    lo, hi = INPUT_SIDE_RANGE
    if not isinstance(size, (list, tuple)) or len(size) not in dims or \
            not all(isinstance(v, int) and not isinstance(v, bool) for v in size):
        shown = " or ".join(str(d) for d in dims)
        return f"input_size must be {shown} whole numbers, got {size!r:.80}"
    if not all(lo <= v <= hi for v in size):
        return f"input_size {list(size)} is outside {lo}..{hi} per side"
    if math.prod(size) > MAX_INPUT_ELEMENTS:
        return (f"input_size {list(size)} is {math.prod(size):,} elements, above the limit "
                f"of {MAX_INPUT_ELEMENTS:,}")
    return None


def count_fault(value, what: str, limit: int) -> str | None:
    """Why a count (landmarks, domains, stages) is refused, or None: a whole number in
    1..``limit``."""
    if not isinstance(value, int) or isinstance(value, bool):
        return f"{what} must be a whole number, got {value!r:.80}"
    if not 1 <= value <= limit:
        return f"{what} {value} is outside 1..{limit}"
    return None


def range_fault(value, what: str, bounds: tuple[float, float]) -> str | None:
    """Why a number (a patch scale) is refused, or None: finite and within ``bounds``."""
    lo, hi = bounds
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        return f"{what} must be a finite number, got {value!r:.80}"
    if not lo <= value <= hi:
        return f"{what} {value:g} is outside {lo:g}..{hi:g}"
    return None
