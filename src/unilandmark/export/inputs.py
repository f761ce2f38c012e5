"""The exported graph's inputs from normalised images, in numpy (no torch).

``graph_inputs(meta, raws, orientation)`` builds the feeds of :mod:`.contract` exactly
as ``Detector`` prepares its tensors: the domain's geometry and anti-aliased resize for
stage 1, each patch stage's ``1 / s`` resize, zero padding to the batch's largest stage
image; ``least_size(meta)`` is the reduced-decode rule ``Detector.least_size`` gives.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import InputError
from ..core.geometry import patch_scale, scaled_size
from ..inference.inputs import LeastSize, RawInput, least_size_rule, stage1_inputs
from .contract import ORIENTATION_CODES


def least_size(meta: dict) -> LeastSize:
    """The fewest pixels the graph's stages look at an image with (``Detector.least_size``
    for the exported domain)."""
    scales = [lambda sp, st=st: patch_scale(sp, st["scale"], st.get("scale_mm"))
              for st in meta["stages"][1:] if st.get("input") is not None]
    return least_size_rule(tuple(meta["input_size"]), meta.get("resize", "stretch"), scales)


def graph_inputs(meta: dict, raws: list[RawInput], orientation: str = "auto",
                 ) -> dict[str, np.ndarray]:
    """Feeds for one batch of images read by ``reading.read_input`` (normalised, at any
    ``pixel_scale``; their spacings for ``scale_mm`` stages), ``orientation`` for every
    image."""
    if orientation not in ORIENTATION_CODES:
        raise InputError(f"unknown orientation {orientation!r}; expected one of "
                         f"{tuple(ORIENTATION_CODES)}")
    stage1, content = stage1_inputs(raws, tuple(meta["input_size"]),
                                    meta.get("resize", "stretch"))
    feeds = {"image": stage1,
             "original_size": np.asarray([r.original_size for r in raws], dtype=np.float32),
             "content_size": np.asarray(content, dtype=np.float32),
             "orientation": np.full(len(raws), ORIENTATION_CODES[orientation], np.int64)}
    for stage in meta["stages"][1:]:
        if stage.get("input") is None:
            continue
        scaled = [raw.resized(scaled_size(raw.original_size, patch_scale(
            raw.spacing, stage["scale"], stage.get("scale_mm")))) for raw in raws]
        hp = max(a.shape[0] for a in scaled)
        wp = max(a.shape[1] for a in scaled)
        canvas = np.zeros((len(scaled), 1, hp, wp), dtype=np.float32)
        for j, a in enumerate(scaled):
            canvas[j, 0, :a.shape[0], :a.shape[1]] = a
        feeds[stage["input"]] = canvas
        feeds[stage["size_input"]] = np.asarray([(a.shape[1], a.shape[0]) for a in scaled],
                                                dtype=np.float32)
    return feeds
