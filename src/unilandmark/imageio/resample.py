"""Bilinear resizing in numpy, the same as :func:`..core.geometry.resize_to_input` (torch).

``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` with
``antialias=True`` weighs the input pixels under a triangle filter stretched by the scale
factor when shrinking (plain bilinear interpolation when enlarging); this module
computes the same weights (the formula of torch's CPU kernel), so prediction (both
backends, ``Detector`` and the ONNX runner) sees the network inputs training prepared
with torch, to float rounding (``tests/test_resample.py`` pins it). It also resizes an
image held at reduced resolution (a JPEG decoded by DCT scaling) by its true extent
(:func:`resize_extent`).

Why not Pillow, whose ``BILINEAR`` resize of a float image with ``box`` gives the same
weights to about 1e-7: measured on the built-in models, that rounding difference moves one
of the 4,750 points of the ``gu2net-head`` protocol across a grid boundary (``head-mean``:
SDR@2 mm 81.94 % -> 81.96 %), and the published figures of the built-in models are kept
exact. Switching is this module alone, with the figures re-measured.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import InputError


def axis_weights(n_in: int, n_out: int, scale: float | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Input indices (n_out, T) and weights (n_out, T) that resize one axis of ``n_in``
    pixels to ``n_out`` (pixel centres at ``i + 0.5`` times the scale). ``scale``: input
    pixels per output pixel, ``n_in / n_out`` unless the input covers more than the
    output's extent (a reduced decode whose last pixel reaches past the image's edge)."""
    scale = n_in / n_out if scale is None else float(scale)
    support = scale if scale >= 1.0 else 1.0
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    centre = scale * (np.arange(n_out) + 0.5)
    first = np.maximum((centre - support + 0.5).astype(np.int64), 0)  # C-style truncation
    stop = np.minimum((centre + support + 0.5).astype(np.int64), n_in)
    taps = max(1, int((stop - first).max()))
    index = first[:, None] + np.arange(taps)[None, :]
    weight = np.maximum(0.0, 1.0 - np.abs((index - centre[:, None] + 0.5) * invscale))
    weight[index >= stop[:, None]] = 0.0
    total = weight.sum(axis=1, keepdims=True)
    weight = np.where(total > 0, weight / np.where(total > 0, total, 1.0), 0.0)
    return np.minimum(index, n_in - 1), weight.astype(np.float32)


def resize_bilinear(image: np.ndarray, size: tuple[int, int],
                    scale: tuple[float, float] | None = None) -> np.ndarray:
    """(H, W) image -> (h, w) float32, ``size`` = (w, h); anti-aliased as torch is when
    either axis shrinks, plain bilinear otherwise. ``scale`` (x, y): input pixels per
    output pixel where the input's extent is not the output's (:func:`axis_weights`)."""
    arr = np.asarray(image, dtype=np.float32)
    h0, w0 = arr.shape
    w1, h1 = int(size[0]), int(size[1])
    sx, sy = (None, None) if scale is None else scale
    if (w1, h1) == (w0, h0) and scale is None:
        return arr.copy()
    if h1 != h0 or sy is not None:  # rows first: gathering whole rows is the cheap direction
        index, weight = axis_weights(h0, h1, sy)
        out = np.zeros((h1, arr.shape[1]), dtype=np.float32)
        for t in range(index.shape[1]):
            out += arr[index[:, t], :] * weight[:, t, None]
        arr = out
    if w1 != w0 or sx is not None:
        index, weight = axis_weights(w0, w1, sx)
        out = np.zeros((arr.shape[0], w1), dtype=np.float32)
        for t in range(index.shape[1]):
            out += np.take(arr, index[:, t], axis=1) * weight[:, t]
        arr = out
    return arr


def resize_extent(image: np.ndarray, original_size: tuple[int, int], size: tuple[int, int],
                  pixel_scale: float = 1.0) -> np.ndarray:
    """An image of ``original_size`` (W, H), held as ``image`` at ``pixel_scale`` original
    pixels per pixel (1: the image itself; more: a reduced decode, ``io.ReducedRead``),
    resized to ``size`` (w, h) float32: output pixel ``j`` samples the original's
    continuous position ``(j + 0.5) W / w``, whatever resolution it is held at."""
    if pixel_scale == 1.0:
        if image.shape != (original_size[1], original_size[0]):
            raise InputError(f"image of shape {image.shape} does not match its size "
                             f"{tuple(original_size)}")
        return resize_bilinear(image, size)
    w, h = int(size[0]), int(size[1])
    return resize_bilinear(image, (w, h), (original_size[0] / (w * pixel_scale),
                                           original_size[1] / (h * pixel_scale)))
