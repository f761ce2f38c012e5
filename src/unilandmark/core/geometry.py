"""Original image <-> network input: resize (stretch or letterbox) in both directions.

The mapping follows the pixel-centre convention (centre of the top-left pixel is (0, 0))
and ``align_corners=False`` resampling, so for a resize by factor ``s = W0 / W1`` a
network-input x maps to ``(x + 0.5) * s - 0.5`` in the original image.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .limits import PATCH_SCALE_RANGE
from .types import Geometry, Spacing

RESIZE_MODES = ("stretch", "letterbox")


def fit_geometry(
    original_size: tuple[int, int],
    input_size: tuple[int, int],
    mode: str = "stretch",
    spacing: Spacing | None = None,
) -> Geometry:
    """The Geometry that resizes an image of ``original_size`` (W, H) to ``input_size``.

    ``stretch`` scales each axis independently to fill the input (GU2Net's choice);
    ``letterbox`` keeps the aspect ratio and pads the right and bottom with zeros.

    >>> g = fit_geometry((200, 100), (100, 50))
    >>> g.to_original(np.array([0.0, 0.0])).tolist()
    [0.5, 0.5]
    """
    if mode not in RESIZE_MODES:
        raise InputError(f"unknown resize mode {mode!r}; expected one of {RESIZE_MODES}")
    w0, h0 = (int(v) for v in original_size)
    w1, h1 = (int(v) for v in input_size)
    if min(w0, h0, w1, h1) <= 0:
        raise InputError(f"sizes must be positive: original {original_size}, input {input_size}")
    cw, ch = content_size((w0, h0), (w1, h1), mode)
    sx, sy = w0 / cw, h0 / ch
    matrix = np.array(
        [[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]], dtype=np.float64
    )
    return Geometry(original_size=(w0, h0), spacing=spacing, matrix=matrix, input_size=(w1, h1))


def content_size(original_size: tuple[int, int], input_size: tuple[int, int], mode: str):
    """(width, height) the image occupies inside the input (the rest is padding)."""
    w0, h0 = original_size
    w1, h1 = input_size
    if mode == "stretch":
        return w1, h1
    scale = max(w0 / w1, h0 / h1)
    return max(1, min(w1, round(w0 / scale))), max(1, min(h1, round(h0 / scale)))


def resize_to_input(image: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Resample a (H, W) or (C, H, W) image into the network input of ``geometry``.

    Anti-aliased bilinear resampling; returns float32 of shape (C, H1, W1).
    """
    import torch  # here, so that importing the package does not load torch
    import torch.nn.functional as F

    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    w0, h0 = geometry.original_size
    if arr.shape[-2:] != (h0, w0):
        raise InputError(f"image of shape {arr.shape} does not match geometry size {(w0, h0)}")
    w1, h1 = geometry.input_size
    cw = round(w0 / geometry.matrix[0, 0])
    ch = round(h0 / geometry.matrix[1, 1])
    tensor = torch.from_numpy(np.ascontiguousarray(arr))[None]
    resized = F.interpolate(tensor, size=(ch, cw), mode="bilinear", align_corners=False,
                            antialias=(ch < h0 or cw < w0))[0]
    out = torch.zeros((arr.shape[0], h1, w1), dtype=torch.float32)
    out[:, :ch, :cw] = resized
    return out.numpy()


def patch_scale(spacing: Spacing | None, scale: float, scale_mm: float | None) -> float:
    """Original pixels per patch pixel for one image (a patch stage's ``s``): ``scale_mm``
    / mean spacing where given (needs a spacing), else ``scale``."""
    if scale_mm is None:
        return float(scale)
    if spacing is None:
        raise InputError(f"scale_mm={scale_mm} needs the image's spacing, and this image has "
                         "none; give its spacing (--spacing), or use scale (original pixels "
                         "per patch pixel) instead")
    s = float(scale_mm) / float(np.mean(spacing))
    lo, hi = PATCH_SCALE_RANGE
    if not lo <= s <= hi:
        raise InputError(f"scale_mm={scale_mm:g} mm per patch pixel at this image's spacing "
                         f"({float(np.mean(spacing)):g} mm per pixel) is {s:g} pixels per "
                         f"patch pixel, outside {lo:g}..{hi:g}: the patch stage would resize "
                         "the image beyond reason; check the image's spacing")
    return s


def scaled_size(original_size: tuple[int, int], pixels_per_patch_pixel: float,
                ) -> tuple[int, int]:
    """(w, h) of an image of ``original_size`` (W, H) resized by 1 / s per axis (at
    least 8 pixels): what a patch stage crops from."""
    w, h = original_size
    s = pixels_per_patch_pixel
    return max(8, round(w / s)), max(8, round(h / s))


def scaled_geometry(original_size: tuple[int, int], spacing: Spacing | None,
                    pixels_per_patch_pixel: float) -> Geometry:
    """The Geometry of an image of ``original_size`` (W, H) resized by 1 / s per axis."""
    return fit_geometry(original_size, scaled_size(original_size, pixels_per_patch_pixel),
                        "stretch", spacing)


def flip_permutation(names: tuple[str, ...] | list[str], pairs) -> np.ndarray:
    """(K,) int64: landmark k takes index ``perm[k]`` under a mirror (pairs swapped).

    The one rule for training (augmentation), prediction, the exported graph and the
    ONNX runner (``torch.as_tensor`` where a tensor is needed).

    ``pairs``: iterable of (name_a, name_b); an unknown name is an error naming it.
    """
    index = {n: i for i, n in enumerate(names)}
    perm = list(range(len(names)))
    for a, b in pairs:
        for name in (a, b):
            if name not in index:
                raise InputError(f"flip pair ({a!r}, {b!r}): no landmark named {name!r}; "
                                 f"landmarks: {', '.join(names)}")
        perm[index[a]], perm[index[b]] = index[b], index[a]
    return np.asarray(perm, dtype=np.int64)
