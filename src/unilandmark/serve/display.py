"""Display copies of images: windowed to 8 bits, downsampled for the screen, as JPEG.

The copy is for looking at only (quality 95, much faster to encode than a PNG
for a radiograph); landmarks are always read and written in the original's pixels.

The display image covers exactly the original image: its pixel edges span the original
pixel edges, so with the pixel-centre convention (centre of the top-left pixel is
``(0, 0)``) a display pixel ``(u, v)`` of a ``(w, h)`` display of a ``(W, H)`` original
maps to ``x = (u + 0.5) * W / w - 0.5`` (and ``y`` likewise). The page never needs the
mapping itself: it draws the display image stretched over ``[-0.5, W - 0.5] x
[-0.5, H - 0.5]`` in original pixel coordinates, and every point it sends back is in
original pixels.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np

from ..core.types import Spacing
from ..imageio.read import normalise_intensity, read_image

#: longest side of a display image; larger images are downsampled (area average)
DISPLAY_MAX_SIDE = 2048
DISPLAY_QUALITY = 95
DISPLAY_MEDIA_TYPE = "image/jpeg"


@dataclass(frozen=True)
class DisplayImage:
    """An 8-bit JPEG of an image and its sizes: ``original_size`` and ``display_size`` are
    ``(width, height)`` in pixels."""

    data: bytes
    original_size: tuple[int, int]
    display_size: tuple[int, int]
    spacing: Spacing | None


def display_size(original_size: tuple[int, int], max_side: int = DISPLAY_MAX_SIDE,
                 ) -> tuple[int, int]:
    """``(w, h)`` of the display copy: the original, scaled down to ``max_side`` at most."""
    width, height = original_size
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def display_to_original(points, original_size, shown_size) -> np.ndarray:
    """(N, 2) display pixels -> original pixels (pixel-centre convention both sides)."""
    scale = np.array(original_size, dtype=np.float64) / np.array(shown_size, dtype=np.float64)
    return (np.asarray(points, dtype=np.float64) + 0.5) * scale - 0.5


def original_to_display(points, original_size, shown_size) -> np.ndarray:
    """(N, 2) original pixels -> display pixels; the inverse of :func:`display_to_original`."""
    scale = np.array(shown_size, dtype=np.float64) / np.array(original_size, dtype=np.float64)
    return (np.asarray(points, dtype=np.float64) + 0.5) * scale - 0.5


def display_image(path: str | os.PathLike, max_side: int = DISPLAY_MAX_SIDE) -> DisplayImage:
    """Read ``path`` (any supported format), window it with the library's intensity
    convention (0.5-99.5 percentiles) and return an 8-bit JPEG of at most ``max_side``."""
    from PIL import Image

    array, spacing = read_image(path)
    height, width = array.shape
    grey = np.round(normalise_intensity(array) * 255.0).astype(np.uint8)
    image = Image.fromarray(grey)  # a 2-D uint8 array is greyscale ('L')
    shown = display_size((width, height), max_side)
    if shown != (width, height):
        image = image.resize(shown, Image.Resampling.BOX)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=DISPLAY_QUALITY)
    return DisplayImage(buf.getvalue(), (width, height), shown, spacing)

