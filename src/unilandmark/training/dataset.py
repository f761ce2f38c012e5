"""LandmarkDataset: records resized once into network space, with an optional disk cache.

Each image is read, normalised to [0, 1] and resized into the network input exactly once;
the resized arrays are kept in memory (float16) and, with ``cache_dir``, saved as ``.npy``
keyed by the file's path, size and modification time plus the input size and resize mode,
so a second run (or a second process) skips decoding full-resolution images.
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
from ..core.geometry import fit_geometry, patch_scale, resize_to_input, scaled_geometry
from ..core.types import DatasetSpec, Geometry, Record, Sample
from ..imageio.read import normalise_intensity, read_image, read_image_info

log = logging.getLogger(__name__)


def _cache_key(record: Record, geometry: Geometry) -> str:
    stat = os.stat(record.image_path)
    matrix = ",".join(f"{v:.9g}" for v in geometry.matrix[:2].ravel())
    text = f"{os.path.abspath(record.image_path)}|{stat.st_size}|{stat.st_mtime_ns}|" \
           f"{geometry.input_size[0]}x{geometry.input_size[1]}|{matrix}|{CACHE_VERSION}"
    return hashlib.sha1(text.encode()).hexdigest()[:20]


#: bump when preprocessing changes, so old cache entries are not reused
CACHE_VERSION = "percentile-window-1"


def record_size(record: Record) -> tuple[int, int]:
    """(W, H) of a record's image, from the record's meta or the file header."""
    size = record.meta.get("size")
    if size is None:
        size, _ = read_image_info(record.image_path)
    return int(size[0]), int(size[1])


def load_resized(record: Record, geometry: Geometry, cache_dir: Path | None,
                 dataset_name: str) -> tuple[np.ndarray, Geometry]:
    """A record's image normalised and resized into ``geometry``: ((1, h, w) float16,
    geometry), through the disk cache when ``cache_dir`` is set (keyed by the file's path,
    size and modification time, the resize and the preprocessing version)."""
    cached = None
    if cache_dir is not None:
        cached = Path(cache_dir) / dataset_name / \
            f"{record.id}-{_cache_key(record, geometry)}.npz"
        if cached.is_file():
            w, h = geometry.input_size
            try:
                with np.load(cached, allow_pickle=False) as data:
                    image = data["image"]
                if image.shape != (1, h, w):
                    raise InputError(f"shape {image.shape}, expected {(1, h, w)}")
                return image, geometry
            except Exception as err:  # noqa: BLE001 - any damage: rebuild the entry
                log.warning("%s: corrupt cache entry (%s: %s); decoding the image again and "
                            "rewriting it", cached, type(err).__name__, err)
                cached.unlink(missing_ok=True)
    array, _ = read_image(record.image_path)
    if (array.shape[1], array.shape[0]) != tuple(geometry.original_size):
        raise InputError(f"{record.image_path}: record {record.id}: image is "
                         f"{array.shape[1]}x{array.shape[0]}, its header said "
                         f"{geometry.original_size[0]}x{geometry.original_size[1]}")
    image = resize_to_input(normalise_intensity(array), geometry).astype(np.float16)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cached) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, image=image)
    return image, geometry


class LandmarkDataset(torch.utils.data.Dataset):
    """Samples of one split in network space.

    ``input_size`` is (W, H); ``mode`` ``stretch`` or ``letterbox``. Items are
    :class:`Sample` with image (1, H, W) float32, points (K, 2) in network pixels (NaN
    where not visible) and the Geometry back to original pixels.
    """

    def __init__(self, spec: DatasetSpec, split: str, input_size: tuple[int, int],
                 mode: str = "stretch", cache_dir: str | Path | None = None):
        self.spec = spec
        self.split = split
        self.records = spec.split_records(split)
        if not self.records:
            raise InputError(f"{spec.name}: split {split!r} has no records")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.mode = mode
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.images = np.empty((len(self.records), 1, self.input_size[1], self.input_size[0]),
                               dtype=np.float16)
        self.geometries: list[Geometry] = []
        self.points = np.full((len(self.records), spec.num_landmarks, 2), np.nan)
        self.visible = np.zeros((len(self.records), spec.num_landmarks), dtype=bool)
        for i, record in enumerate(self.records):
            image, geometry = self._load(record)
            self.images[i] = image
            self.geometries.append(geometry)
            self.visible[i] = record.visible
            self.points[i] = np.where(record.visible[:, None],
                                      geometry.to_network(record.points), np.nan)

    def _load(self, record: Record) -> tuple[np.ndarray, Geometry]:
        geometry = fit_geometry(record_size(record), self.input_size, self.mode,
                                record.spacing)
        return load_resized(record, geometry, self.cache_dir, self.spec.name)

    def mm_per_px(self, indices) -> torch.Tensor:
        """(B,) millimetres per network-input pixel (geometric mean of the axes); NaN
        where the record has no spacing."""
        out = []
        for i in np.asarray(indices):
            g = self.geometries[i]
            if g.spacing is None:
                out.append(float("nan"))
            else:
                out.append(float(np.sqrt(g.spacing[0] * g.matrix[0, 0] *
                                         g.spacing[1] * g.matrix[1, 1])))
        return torch.tensor(out, dtype=torch.float32)

    def to_original(self, index: int, points_network) -> np.ndarray:
        """Network-input points ``(..., 2)`` of record ``index`` -> its original pixels."""
        return self.geometries[index].to_original(points_network)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample:
        return Sample(image=self.images[index].astype(np.float32), points=self.points[index],
                      visible=self.visible[index], domain=self.spec.domain,
                      geometry=self.geometries[index], id=self.records[index].id)

    def batch(self, indices, device="cpu") -> dict[str, torch.Tensor]:
        """Stack samples into tensors: image (B, 1, H, W), points (B, K, 2), visible (B, K)."""
        idx = np.asarray(indices)
        return {
            "image": torch.from_numpy(self.images[idx].astype(np.float32)).to(device),
            "points": torch.from_numpy(self.points[idx]).float().to(device),
            "visible": torch.from_numpy(self.visible[idx]).to(device),
        }


class ScaledImages:
    """Every record of a split at ``1 / s`` per axis (``s`` from ``scale`` or ``scale_mm``
    and each image's spacing): images (1, h_i, w_i) float16 of different sizes, each with
    its own Geometry, and the points in resized pixels (NaN where not visible)."""

    def __init__(self, spec: DatasetSpec, split: str, scale: float,
                 scale_mm: float | None = None, cache_dir: str | Path | None = None):
        self.spec = spec
        self.records = spec.split_records(split)
        if not self.records:
            raise InputError(f"{spec.name}: split {split!r} has no records")
        self.images: list[np.ndarray] = []
        self.geometries: list[Geometry] = []
        k = spec.num_landmarks
        self.points = np.full((len(self.records), k, 2), np.nan)
        self.visible = np.zeros((len(self.records), k), dtype=bool)
        for i, record in enumerate(self.records):
            s = patch_scale(record.spacing, scale, scale_mm)
            geometry = scaled_geometry(record_size(record), record.spacing, s)
            image, geometry = load_resized(record, geometry, cache_dir and Path(cache_dir),
                                           spec.name)
            self.images.append(image)
            self.geometries.append(geometry)
            self.visible[i] = record.visible
            self.points[i] = np.where(record.visible[:, None],
                                      geometry.to_network(record.points), np.nan)

    def __len__(self) -> int:
        return len(self.records)
