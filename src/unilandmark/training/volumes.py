"""The training dataset of volumes: every volume of a split in network space, through
the preprocessing that prediction shares (:mod:`..inference.volume_inputs`: the map from
network voxels to original voxels and world millimetres, the resampling and the intensity
per modality), with an atomic disk cache.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import torch

from ..core.atomic import atomic_path
from ..core.errors import InputError
from ..core.types import DatasetSpec, Geometry, Record, Sample
from ..core.world import VolumeGeometry
from ..imageio.volume import read_volume, volume_version
from ..inference.volume_inputs import (
    CT_WINDOW,
    MODALITIES,
    canonical,
    canonical_geometry,
    normalise_volume,
    patch_geometry,
    record_volume_geometry,
    resample_into,
    three_values,
    to_world,
    volume_geometry,
    world_to_network,
)

__all__ = ["MODALITIES", "CT_WINDOW", "VOLUME_CACHE_VERSION", "VolumeDataset",
           "load_volume", "normalise_volume", "patch_geometry", "record_volume_geometry",
           "resample_into", "to_world", "volume_geometry", "world_to_network"]

log = logging.getLogger(__name__)

#: bump when the preprocessing of volumes changes, so old cache entries are not reused
VOLUME_CACHE_VERSION = "volume-2-canonical"


# -- geometry ---------------------------------------------------------------------------


















# -- sampling ---------------------------------------------------------------------------




# -- intensity --------------------------------------------------------------------------




# -- loading (with the disk cache) -------------------------------------------------------


def _cache_key(record: Record, geometry: Geometry, modality: str, window) -> str:
    if os.path.isdir(record.image_path):  # a DICOM series folder: over its files
        version = volume_version(record.image_path)
    else:
        stat = os.stat(record.image_path)
        version = f"{stat.st_size}|{stat.st_mtime_ns}"
    matrix = ",".join(f"{v:.9g}" for v in np.asarray(geometry.matrix)[:3].ravel())
    size = "x".join(str(int(v)) for v in geometry.input_size)
    window_text = ",".join(f"{float(v):.9g}" for v in window) if modality == "ct" else "pct"
    text = f"{os.path.abspath(record.image_path)}|{version}|" \
           f"{size}|{matrix}|{modality}:{window_text}|{VOLUME_CACHE_VERSION}"
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def _same_grid(a: VolumeGeometry, b: VolumeGeometry) -> bool:
    return a.size == b.size and np.allclose(a.affine, b.affine, rtol=0.0, atol=1e-4)


def load_volume(record: Record, volume: VolumeGeometry, geometry: Geometry,
                modality: str = "mr", window=CT_WINDOW, cache_dir: Path | None = None,
                dataset_name: str = "volumes") -> np.ndarray:
    """A record's volume turned to one orientation (``canonical``), normalised
    (:func:`normalise_volume`) and sampled into ``geometry`` (network voxels -> the turned
    volume's voxels; :func:`resample_into`): ``(1, Z, Y, X)`` float16. With ``cache_dir``
    the result is kept as ``.npz`` keyed, as the 2-D cache is, by the file's path, size
    and modification time (a DICOM series folder's: those of every file in it,
    :func:`~..imageio.volume.volume_version`), the input size and matrix, the modality
    (and CT window) and :data:`VOLUME_CACHE_VERSION`; written atomically, a damaged entry
    is rebuilt."""
    shape = (1, *(int(v) for v in geometry.input_size[::-1]))
    cached = None
    if cache_dir is not None:
        cached = Path(cache_dir) / dataset_name / \
            f"{record.id}-{_cache_key(record, geometry, modality, window)}.npz"
        if cached.is_file():
            try:
                with np.load(cached, allow_pickle=False) as data:
                    image = data["image"]
                if image.shape != shape or image.dtype != np.float16:
                    raise InputError(f"shape {image.shape} {image.dtype}, expected "
                                     f"{shape} float16")
                return image
            except Exception as err:  # noqa: BLE001 - any damage: rebuild the entry
                log.warning("%s: corrupt cache entry (%s: %s); reading the volume again and "
                            "rewriting it", cached, type(err).__name__, err)
                cached.unlink(missing_ok=True)
    array, read_geometry = read_volume(record.image_path)
    if not _same_grid(read_geometry, volume):
        raise InputError(f"{record.image_path}: record {record.id}: the volume's geometry "
                         f"{read_geometry.to_dict()} differs from the record's "
                         f"{volume.to_dict()}")
    array, _ = canonical(array, read_geometry)
    image = resample_into(normalise_volume(array, modality, window), geometry)
    image = image[None].astype(np.float16)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cached) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, image=image)
    return image


class VolumeDataset(torch.utils.data.Dataset):
    """Every volume of one split in network space, the 3-D twin of
    :class:`~unilandmark.training.dataset.LandmarkDataset`.

    ``target_spacing``: mm per network voxel (one number: isotropic; or ``(sx, sy,
    sz)``); ``input_size``: ``(x, y, z)`` voxels; ``modality``: ``mr`` or ``ct`` (with
    ``window`` in HU). Arrays: ``images`` (N, 1, Z, Y, X) float16 in [0, 1], ``points``
    (N, K, 3) network voxels (NaN where not visible), ``visible`` (N, K) bool;
    ``geometries`` (network -> original voxels) and ``volume_geometries`` (original
    voxels -> world LPS mm), one per record.
    """

    def __init__(self, spec: DatasetSpec, split: str, target_spacing=1.0,
                 input_size=(128, 128, 128), modality: str = "mr",
                 cache_dir: str | Path | None = None, window=CT_WINDOW):
        if modality not in MODALITIES:
            raise InputError(f"unknown modality {modality!r}; expected one of "
                             f"{', '.join(MODALITIES)}")
        self.spec = spec
        self.split = split
        self.records = spec.split_records(split)
        if not self.records:
            raise InputError(f"{spec.name}: split {split!r} has no records")
        self.input_size = tuple(int(v) for v in three_values(input_size, "input_size", int))
        self.target_spacing = tuple(float(v) for v in three_values(target_spacing,
                                                             "target_spacing"))
        self.modality = modality
        self.window = tuple(float(v) for v in window)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        n, k = len(self.records), spec.num_landmarks
        x, y, z = self.input_size
        self.images = np.empty((n, 1, z, y, x), dtype=np.float16)
        self.points = np.full((n, k, 3), np.nan)
        self.visible = np.zeros((n, k), dtype=bool)
        self.geometries: list[Geometry] = []
        self.volume_geometries: list[VolumeGeometry] = []
        #: each volume turned to one orientation (``inference.volume_inputs.canonical``):
        #: ``geometries`` map network voxels to THESE voxel indices
        self.canonical_geometries: list[VolumeGeometry] = []
        for i, record in enumerate(self.records):
            points = np.asarray(record.points, dtype=np.float64)
            if points.shape != (k, 3):
                raise InputError(f"{spec.name}: record {record.id}: points of shape "
                                 f"{points.shape}, expected ({k}, 3) voxel points")
            volume = record_volume_geometry(record)
            turned = canonical_geometry(volume)  # the network sees every volume in LPS
            geometry = volume_geometry(turned, self.target_spacing, self.input_size)
            self.images[i] = load_volume(record, volume, geometry, modality, self.window,
                                         self.cache_dir, spec.name)
            self.geometries.append(geometry)
            self.volume_geometries.append(volume)
            self.canonical_geometries.append(turned)
            self.visible[i] = record.visible
            turned_points = turned.world_to_index(volume.index_to_world(points))
            self.points[i] = np.where(record.visible[:, None],
                                      geometry.to_network(turned_points), np.nan)

    def mm_per_voxel(self, indices) -> torch.Tensor:
        """(B,) millimetres per network voxel (geometric mean of the three axes: the
        target spacing itself when it is isotropic)."""
        out = []
        for i in np.asarray(indices).reshape(-1):
            g = self.geometries[int(i)]
            mm = np.asarray(g.spacing) * np.diag(g.matrix)[:3]
            out.append(float(np.prod(mm) ** (1.0 / 3.0)))
        return torch.tensor(out, dtype=torch.float32)

    #: the 2-D dataset's name for the same thing, so one training loop reads either
    mm_per_px = mm_per_voxel

    def to_world(self, index: int, points_network) -> np.ndarray:
        """Network voxel points ``(..., 3)`` of record ``index`` -> world LPS mm."""
        return to_world(points_network, self.geometries[index],
                        self.canonical_geometries[index])

    def to_original(self, index: int, points_network) -> np.ndarray:
        """Network voxel points ``(..., 3)`` of record ``index`` -> voxel indices of the
        volume as stored (the frame of ``record.points``)."""
        return self.volume_geometries[index].world_to_index(self.to_world(index,
                                                                          points_network))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample:
        return Sample(image=self.images[index].astype(np.float32), points=self.points[index],
                      visible=self.visible[index], domain=self.spec.domain,
                      geometry=self.geometries[index], id=self.records[index].id)

    def batch(self, indices, device="cpu") -> dict[str, torch.Tensor]:
        """Stack samples into tensors: image (B, 1, Z, Y, X) float32, points (B, K, 3),
        visible (B, K)."""
        idx = np.asarray(indices)
        return {
            "image": torch.from_numpy(self.images[idx].astype(np.float32)).to(device),
            "points": torch.from_numpy(self.points[idx]).float().to(device),
            "visible": torch.from_numpy(self.visible[idx]).to(device),
        }
