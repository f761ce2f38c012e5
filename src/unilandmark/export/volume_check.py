"""The check of an exported volume model: the written file through onnxruntime against
PyTorch's ``VolumeDetector`` on one volume, every landmark within
:data:`CHECK_TOLERANCE_VOXEL` voxel, or nothing is kept.

The volume is the caller's (``export --check-volume``) or a head phantom
(:func:`..data.synthetic3d.render_head_volume`) covering the model's field of view at
half its network spacing, so both the coarse pass and the patch stages see structure
rather than noise (flat heatmaps would let two neighbouring voxels tie).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..core.world import VolumeGeometry
from .tracing import ExportCheckError

#: the exported model must place every landmark within this many voxels of PyTorch
CHECK_TOLERANCE_VOXEL = 0.05
#: the phantom of the check holds at most this many voxels
PHANTOM_MAX_VOXELS = 4_000_000


def check_phantom(meta: dict) -> tuple[np.ndarray, VolumeGeometry]:
    """A head phantom ``(array (Z, Y, X) int16, geometry)`` for a volume domain's
    metadata: the network's field of view (``input_size`` x ``target_spacing`` mm) at half
    the network spacing (coarser where that would exceed :data:`PHANTOM_MAX_VOXELS`), at
    least 24 voxels a side, fixed seed."""
    from ..data.synthetic3d import MIN_VOLUME_SIDE, render_head_volume

    extent = np.asarray(meta["input_size"], float) * np.asarray(meta["target_spacing"], float)
    spacing = np.asarray(meta["target_spacing"], float) / 2
    size = np.maximum(np.ceil(extent / spacing), MIN_VOLUME_SIDE)
    if size.prod() > PHANTOM_MAX_VOXELS:
        grow = (size.prod() / PHANTOM_MAX_VOXELS) ** (1 / 3)
        spacing, size = spacing * grow, np.maximum(np.ceil(size / grow), MIN_VOLUME_SIDE)
    spacing = np.minimum(spacing, 20.0)  # the phantom's own bound
    head = render_head_volume(np.random.default_rng(0), tuple(int(v) for v in size),
                              tuple(float(v) for v in spacing))
    geometry = VolumeGeometry(size=tuple(int(v) for v in size), spacing=tuple(spacing),
                              origin=tuple(head.origin), direction=head.direction)
    return head.array, geometry


def check_export(written: Path, detector, domain: str, out: Path,
                 volume: str | os.PathLike | None = None) -> float:
    """Largest landmark difference (voxels of the check volume) between the file
    ``written`` (run by :class:`.volume_runner.OnnxVolumeDetector`) and ``detector`` (a
    ``VolumeDetector``) on ``volume`` (a path, or None: :func:`check_phantom`); raises
    :class:`.tracing.ExportCheckError` naming ``out`` above the tolerance."""
    from .volume_runner import OnnxVolumeDetector

    where = f"the check volume {volume}" if volume is not None else "a head phantom"
    item = volume if volume is not None else check_phantom(detector.domains[domain])
    got = OnnxVolumeDetector(written).predict(item, domain)
    expected = detector.predict(item, domain)
    gaps = np.abs(got.voxels - expected.voxels)
    gaps = np.where(np.isnan(got.voxels) & np.isnan(expected.voxels), 0.0, gaps).max(-1)
    worst = int(np.argmax(np.nan_to_num(gaps, nan=math.inf)))
    difference = float(gaps[worst])
    if not difference <= CHECK_TOLERANCE_VOXEL:  # NaN fails too
        beyond = int((~(gaps <= CHECK_TOLERANCE_VOXEL)).sum())
        raise ExportCheckError(
            f"{out}: not written: the exported model disagrees with PyTorch by up to "
            f"{difference:.3f} voxel ({expected.names[worst]!r}; {beyond} of {len(gaps)} "
            f"landmarks beyond {CHECK_TOLERANCE_VOXEL} voxel) on {where}; please report "
            "this model (the export of its architecture is faulty)")
    return difference
