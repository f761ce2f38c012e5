"""A volume's landmarks from its networks: reading, the coarse pass, the patch stages,
presence and the way back to the volume as stored, in numpy.

Everything of volume prediction except running the networks, so ``VolumeDetector``
(PyTorch) and ``export.volume_runner.OnnxVolumeDetector`` (onnxruntime, no torch) share
it line for line and differ only in the callables they pass:

- :data:`CoarseNetwork`: the normalised volume resampled into the network grid
  ``(Z, Y, X)`` float32 -> (points ``(K, 3)`` network voxels ``(x, y, z)``, confidence
  ``(K,)``);
- per ``volume-patch`` stage a :class:`PatchStep` holding a
  :data:`~.volume_patches.PatchNetwork` (cubes ``(N, 1, P, P, P)`` -> points ``(N, K, 3)``
  patch voxels, confidence ``(N, K)``).

Voxel points are ``(x, y, z)`` (the numpy array's axes reversed), the centre of the first
voxel at 0; world points are LPS millimetres (docs/volumes.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..core.naming import input_id
from ..core.world import VolumeGeometry
from ..imageio.volume import read_volume
from ..quality.presence import thresholds_of
from .volume_inputs import CT_WINDOW, canonical, normalise_volume, resample_into, volume_geometry
from .volume_patches import PatchNetwork, refine_points

__all__ = ["CoarseNetwork", "PatchStep", "VolumeResult", "locate", "read_turned"]

#: the whole-volume network: ``(Z, Y, X)`` float32 in the network grid -> (points
#: ``(K, 3)`` network voxels (x, y, z), confidence ``(K,)`` float32)
CoarseNetwork = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class VolumeResult:
    """Landmarks of one volume: ``voxels`` and ``world`` (K, 3) (x, y, z; world in LPS
    mm), ``confidence`` (K,) the heatmap peak (0..1) of the last stage that placed each
    landmark, ``present`` (K,) whether it reaches that stage's presence threshold
    (``quality.presence``; an absent
    landmark keeps its best guess here but is written with empty coordinates), the
    volume's ``geometry``."""

    id: str
    image_path: str | None
    domain: str
    names: tuple[str, ...]
    voxels: np.ndarray
    world: np.ndarray
    confidence: np.ndarray
    geometry: VolumeGeometry
    present: np.ndarray | None = None


@dataclass(frozen=True)
class PatchStep:
    """One ``volume-patch`` stage for one domain: its network, cubes of ``patch_size``
    voxels at ``spacing`` mm per voxel (None: the volume's own voxels), the landmarks it
    refines (``apply`` (K,) bool, its validation gate) and its presence thresholds
    (``presence`` (K,))."""

    network: PatchNetwork
    patch_size: int
    spacing: float | None
    apply: np.ndarray
    presence: np.ndarray


def read_turned(volume, meta: dict) -> tuple[np.ndarray, VolumeGeometry, VolumeGeometry,
                                             str, str | None]:
    """A volume as the networks take it: a path (NIfTI, NRRD, MetaImage, a DICOM series
    folder) or an ``(array (Z, Y, X), VolumeGeometry)`` pair, turned to the orientation
    training used (``volume_inputs.canonical``) and normalised by the domain's modality.
    Returns ``(normalised (Z, Y, X) float32, its geometry, the stored volume's geometry,
    id, path or None)``."""
    if isinstance(volume, (str, os.PathLike)):
        array, stored = read_volume(volume)
        rid, path = input_id(volume), str(volume)
    else:
        array, stored = volume
        rid, path = "volume", None
    turned_array, turned = canonical(array, stored)
    del array
    normalised = normalise_volume(turned_array, meta.get("modality", "mr"),
                                  tuple(meta.get("ct_window", CT_WINDOW)))
    return normalised, turned, stored, rid, path


def locate(normalised: np.ndarray, turned: VolumeGeometry, stored: VolumeGeometry,
           meta: dict, domain: str, coarse: CoarseNetwork, steps: list[PatchStep],
           presence_threshold: float | None = None, rid: str = "volume",
           path: str | None = None) -> VolumeResult:
    """The landmarks of ``normalised`` (Z, Y, X) (geometry ``turned``; ``stored``: the
    geometry of the volume as stored, the frame of the returned voxel indices): the
    coarse pass on the volume resampled to the domain's ``target_spacing`` and centred in
    its ``input_size`` (``meta``: the domain's metadata), then each stage of ``steps`` on
    the landmarks its gate applies to. ``presence_threshold`` overrides every stored
    threshold."""
    geometry = volume_geometry(turned, meta["target_spacing"], meta["input_size"])
    network = np.ascontiguousarray(resample_into(normalised, geometry), dtype=np.float32)
    found, confidence = coarse(network)
    points = geometry.to_original(np.asarray(found, dtype=np.float64))  # turned voxels
    confidence = np.asarray(confidence, dtype=np.float32)
    # presence: the peak of the last stage that placed each landmark, its threshold
    threshold = thresholds_of(meta.get("presence_threshold"), len(points))
    for step in steps:
        if not step.apply.any():
            continue
        refined, refined_confidence = refine_points(
            step.network, normalised, turned, np.where(step.apply[:, None], points, np.nan),
            step.patch_size, step.spacing)
        points = np.where(step.apply[:, None], refined, points)
        confidence = np.where(step.apply, refined_confidence, confidence)
        threshold = np.where(step.apply, step.presence, threshold)
    world = turned.index_to_world(points)
    voxels = stored.world_to_index(world)
    if presence_threshold is not None:
        threshold = np.full(len(points), presence_threshold)
    return VolumeResult(rid, path, domain, tuple(meta["landmark_names"]), voxels, world,
                        confidence.astype(np.float32), stored, confidence >= threshold)
