"""The exported graph's inputs from normalised images, in numpy (no torch).

``graph_inputs(meta, images, spacings, orientation)`` builds the feeds of
:mod:`.contract` exactly as ``Detector`` prepares its tensors: the domain's geometry and
anti-aliased resize for stage 1, each patch stage's ``1 / s`` resize, zero padding to the
batch's largest stage image.
"""

from __future__ import annotations

import numpy as np

from ..geometry import fit_geometry
from ..resample import resize_bilinear, resize_into
from ..types import Spacing
from .contract import ORIENTATION_CODES


def patch_scale(spacing: Spacing | None, scale: float, scale_mm: float | None) -> float:
    """Original pixels per patch pixel (``patches.patch_scale``, without torch)."""
    if scale_mm is None:
        return float(scale)
    if spacing is None:
        raise ValueError(f"scale_mm={scale_mm} needs the image's spacing, and this image has "
                         "none; give its spacing (--spacing)")
    return float(scale_mm) / float(np.mean(spacing))


def graph_inputs(meta: dict, images: list[np.ndarray], spacings: list[Spacing | None],
                 orientation: str = "auto") -> dict[str, np.ndarray]:
    """Feeds for one batch: ``images`` (H, W) float32 in [0, 1] (normalised), their
    spacings (for ``scale_mm`` stages), ``orientation`` for every image."""
    if orientation not in ORIENTATION_CODES:
        raise ValueError(f"unknown orientation {orientation!r}; expected one of "
                         f"{tuple(ORIENTATION_CODES)}")
    size, mode = tuple(meta["input_size"]), meta.get("resize", "stretch")
    stage1, original, content = [], [], []
    for array in images:
        h, w = array.shape
        g = fit_geometry((w, h), size, mode)
        stage1.append(resize_into(array, g)[None])
        original.append((w, h))
        content.append((round(w / g.matrix[0, 0]), round(h / g.matrix[1, 1])))
    feeds = {"image": np.stack(stage1).astype(np.float32),
             "original_size": np.asarray(original, dtype=np.float32),
             "content_size": np.asarray(content, dtype=np.float32),
             "orientation": np.full(len(images), ORIENTATION_CODES[orientation], np.int64)}
    for stage in meta["stages"][1:]:
        if stage.get("input") is None:
            continue
        scaled = []
        for array, spacing in zip(images, spacings, strict=True):
            h, w = array.shape
            s = patch_scale(spacing, stage["scale"], stage.get("scale_mm"))
            scaled.append(resize_bilinear(array, (max(8, round(w / s)), max(8, round(h / s)))))
        hp = max(a.shape[0] for a in scaled)
        wp = max(a.shape[1] for a in scaled)
        canvas = np.zeros((len(scaled), 1, hp, wp), dtype=np.float32)
        for j, a in enumerate(scaled):
            canvas[j, 0, :a.shape[0], :a.shape[1]] = a
        feeds[stage["input"]] = canvas
        feeds[stage["size_input"]] = np.asarray([(a.shape[1], a.shape[0]) for a in scaled],
                                                dtype=np.float32)
    return feeds
