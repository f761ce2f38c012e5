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

from ..atomic import atomic_path
from ..geometry import fit_geometry, resize_to_input
from ..io import normalise_intensity, read_image
from ..types import DatasetSpec, Geometry, Record, Sample

log = logging.getLogger(__name__)


def preprocess(array: np.ndarray, spacing, input_size: tuple[int, int], mode: str,
               ) -> tuple[np.ndarray, Geometry]:
    """A raw 2-D image -> ((1, H, W) float32 in [0, 1], its Geometry)."""
    h, w = array.shape
    geometry = fit_geometry((w, h), input_size, mode, spacing)
    return resize_to_input(normalise_intensity(array), geometry), geometry


def _cache_key(record: Record, input_size, mode) -> str:
    stat = os.stat(record.image_path)
    text = f"{os.path.abspath(record.image_path)}|{stat.st_size}|{stat.st_mtime_ns}|" \
           f"{input_size[0]}x{input_size[1]}|{mode}"
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def _read_cache(path: Path, input_size) -> tuple[np.ndarray, np.ndarray, tuple] | None:
    """A cache entry ``(image, matrix, original_size)``, or None when it is corrupt or
    does not fit (then it is removed with a warning, and rebuilt by the caller)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            image, matrix = data["image"], data["matrix"]
            original_size = tuple(int(v) for v in data["original_size"])
        if image.shape != (1, input_size[1], input_size[0]) or matrix.shape != (3, 3) \
                or len(original_size) != 2:
            raise ValueError(f"shapes {image.shape}, {matrix.shape}")
        return image, matrix, original_size
    except Exception as err:  # noqa: BLE001 - any damage: rebuild the entry
        log.warning("%s: corrupt cache entry (%s: %s); re-decoding the image and rewriting it",
                    path, type(err).__name__, err)
        path.unlink(missing_ok=True)
        return None


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
            raise ValueError(f"{spec.name}: split {split!r} has no records")
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
        cached = None
        if self.cache_dir is not None:
            cached = self.cache_dir / f"{self.spec.name}" / \
                f"{record.id}-{_cache_key(record, self.input_size, self.mode)}.npz"
            if cached.is_file():
                hit = _read_cache(cached, self.input_size)
                if hit is not None:
                    image, matrix, original_size = hit
                    return image, Geometry(original_size, record.spacing, matrix,
                                           self.input_size)
        array, _ = read_image(record.image_path)
        image, geometry = preprocess(array, record.spacing, self.input_size, self.mode)
        image = image.astype(np.float16)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(cached) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, image=image, matrix=geometry.matrix,
                         original_size=np.array(geometry.original_size))
        return image, geometry

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
