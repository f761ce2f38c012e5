"""Anti-aliased bilinear resizing for prediction, without torch: Pillow's.

Training resizes with ``torch.nn.functional.interpolate(mode="bilinear",
align_corners=False, antialias=True)`` (:func:`..core.geometry.resize_to_input`): a
triangle filter stretched by the scale factor when shrinking, plain bilinear interpolation
when enlarging. Pillow's ``BILINEAR`` resize of a float image is the same filter (torch's
anti-aliasing follows Pillow's), so prediction (both backends, ``Detector`` and the
torch-free ONNX runner) sees the network inputs training prepared, to float rounding
(about 1e-7; ``tests/test_resample.py`` pins it). ``box`` also resizes an image held at
reduced resolution (a JPEG decoded by DCT scaling) by its true extent
(:func:`resize_extent`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..core.errors import InputError


def resize_bilinear(image: np.ndarray, size: tuple[int, int],
                    scale: tuple[float, float] | None = None) -> np.ndarray:
    """(H, W) image -> (h, w) float32, ``size`` = (w, h); anti-aliased when an axis
    shrinks, plain bilinear otherwise. ``scale`` (x, y): input pixels per output pixel,
    where the input's extent is not the output's (output pixel ``j`` then samples the
    input's continuous position ``(j + 0.5) * scale``)."""
    arr = np.ascontiguousarray(image, dtype=np.float32)
    h0, w0 = arr.shape
    w1, h1 = int(size[0]), int(size[1])
    if (w1, h1) == (w0, h0) and scale is None:
        return arr.copy()
    box = (0.0, 0.0, float(w0), float(h0)) if scale is None else \
        (0.0, 0.0, w1 * float(scale[0]), h1 * float(scale[1]))
    resized = Image.fromarray(arr, mode="F").resize((w1, h1), Image.Resampling.BILINEAR,
                                                    box=box)
    return np.array(resized, dtype=np.float32)  # a writable copy (torch.from_numpy needs one)


def resize_extent(image: np.ndarray, original_size: tuple[int, int], size: tuple[int, int],
                  pixel_scale: float = 1.0) -> np.ndarray:
    """An image of ``original_size`` (W, H), held as ``image`` at ``pixel_scale`` original
    pixels per pixel (1: the image itself; more: a reduced decode, ``imageio.read.
    ReducedRead``), resized to ``size`` (w, h) float32: output pixel ``j`` samples the
    original's continuous position ``(j + 0.5) W / w``, whatever resolution it is held at."""
    if pixel_scale == 1.0:
        if image.shape != (original_size[1], original_size[0]):
            raise InputError(f"image of shape {image.shape} does not match its size "
                             f"{tuple(original_size)}")
        return resize_bilinear(image, size)
    w, h = int(size[0]), int(size[1])
    return resize_bilinear(image, (w, h), (original_size[0] / (w * pixel_scale),
                                           original_size[1] / (h * pixel_scale)))
