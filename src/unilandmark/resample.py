"""Bilinear resizing in numpy, the same as :func:`.geometry.resize_to_input` (torch).

``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` with
``antialias=True`` weighs the input pixels under a triangle filter stretched by the scale
factor when shrinking (plain bilinear interpolation when enlarging); this module
computes the same weights (the formula of torch's CPU kernel), so prediction without
torch (the ONNX runner) sees the same network inputs to float rounding.
"""

from __future__ import annotations

import numpy as np

from .types import Geometry


def axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Input indices (n_out, T) and weights (n_out, T) that resize one axis of ``n_in``
    pixels to ``n_out`` (pixel centres at ``i + 0.5`` times the scale)."""
    scale = n_in / n_out
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


def resize_bilinear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) image -> (h, w) float32, ``size`` = (w, h); anti-aliased as torch is when
    either axis shrinks, plain bilinear otherwise."""
    arr = np.asarray(image, dtype=np.float32)
    h0, w0 = arr.shape
    w1, h1 = int(size[0]), int(size[1])
    if (w1, h1) == (w0, h0):
        return arr.copy()
    if h1 != h0:  # rows first: gathering whole rows is the cheap direction
        index, weight = axis_weights(h0, h1)
        out = np.zeros((h1, arr.shape[1]), dtype=np.float32)
        for t in range(index.shape[1]):
            out += arr[index[:, t], :] * weight[:, t, None]
        arr = out
    if w1 != w0:
        index, weight = axis_weights(w0, w1)
        out = np.zeros((arr.shape[0], w1), dtype=np.float32)
        for t in range(index.shape[1]):
            out += np.take(arr, index[:, t], axis=1) * weight[:, t]
        arr = out
    return arr


def resize_into(image: np.ndarray, geometry: Geometry) -> np.ndarray:
    """(H, W) image -> (H1, W1) float32 network input of ``geometry``: the content
    resized, the rest (letterbox padding) zero. Matches ``resize_to_input(...)[0]``."""
    w0, h0 = geometry.original_size
    if image.shape != (h0, w0):
        raise ValueError(f"image of shape {image.shape} does not match geometry size "
                         f"{(w0, h0)}")
    w1, h1 = geometry.input_size
    cw = round(w0 / geometry.matrix[0, 0])
    ch = round(h0 / geometry.matrix[1, 1])
    out = np.zeros((h1, w1), dtype=np.float32)
    out[:ch, :cw] = resize_bilinear(image, (cw, ch))
    return out

