"""The review state of each volume, and the volumes held in memory for the page.

As for images (:mod:`.state`): a volume is opened once; saved human points (the markups
file beside it, or rows in the volume review table) are loaded as ``saved`` and the model
is not asked; otherwise the model predicts (once per file version) and the volume is
``predicted``. Edits make it ``reviewed``; saving writes the files and makes it ``saved``.

Points are ``(K, 3)`` float64 world millimetres in **LPS** (``x`` towards the patient's
left, ``y`` posterior, ``z`` superior); a NaN row is a landmark marked absent. Voxel
points, where given, are ``(x, y, z)`` indices of the volume as stored (the numpy array
``(Z, Y, X)``'s axes reversed; the centre of the first voxel at 0).

A volume is a file or a DICOM series folder (:mod:`.volume_folder`); its version is the
file's modification time and size, or those of every file of the series folder
(:func:`.volume_folder.volume_version`). Volumes are read once into memory
(:class:`VolumeCache`, the last few, bounded in bytes) and served slice by slice
(:mod:`.slices`); the model is given the array already read, so a volume is decoded once
for both.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.world import VolumeGeometry
from ..imageio.volume import read_volume, read_volume_info
from .saving import SaveError, cannot_write
from .slices import LoadedVolume
from .state import NEW, PREDICTED, REVIEWED, SAVED, pick_domain
from .volume_folder import VolumeFolder, check_self_contained, volume_version
from .volume_saving import (
    DEFAULT_VOLUME_CSV_NAME,
    markups_file,
    read_volume_csv,
    read_volume_markups,
    review_rows,
    saved_volume_ids,
    volume_formats_of,
    write_volume_csv,
    write_volume_markups,
)

#: bytes of voxels the server keeps in memory at most (the volume on screen always stays)
CACHE_BYTES = 2 * 1024**3
#: volumes kept in memory at most
CACHE_VOLUMES = 3
#: seconds a DICOM series folder's version (a stat of each file) is reused while the
#: folder's own modification time stands (files added or removed change it at once)
SERIES_VERSION_SECONDS = 1.0


def is_volume_detector(detector) -> bool:
    """Whether ``detector`` predicts volumes: every domain it knows holds 3-D inputs
    (``dims`` 3 in its domain metadata, as a volume model file records it)."""
    domains = getattr(detector, "domains", None) or {}
    return bool(domains) and all(isinstance(m, dict) and m.get("dims") == 3
                                 for m in domains.values())


@dataclass(frozen=True)
class VolumeState:
    """One volume under review.

    ``points`` (K, 3) world LPS mm, the current points (NaN: absent); ``predicted``
    (K, 3) the model's positions (its best guess also where it calls a landmark absent),
    ``confidence`` (K,) its heatmap peaks and ``present`` (K,) bool its presence verdicts,
    when the model was asked; ``flags`` (K,) and ``qc`` where the model gives quality
    verdicts; ``source`` is ``model`` or ``file``; ``geometry`` the volume's world frame.
    """

    name: str
    status: str
    names: tuple[str, ...]
    points: np.ndarray
    geometry: VolumeGeometry
    source: str
    predicted: np.ndarray | None = None
    confidence: np.ndarray | None = None
    present: np.ndarray | None = None
    flags: np.ndarray | None = None
    qc: str | None = None
    files: tuple[str, ...] = field(default=())

    def model_points(self) -> np.ndarray | None:
        """(K, 3) the model's answer as a reviewer starts from it: its positions, NaN where
        it calls a landmark absent; None when the model was not asked."""
        if self.predicted is None:
            return None
        if self.present is None:
            return self.predicted.copy()
        return np.where(self.present[:, None], self.predicted, np.nan)

    def human(self) -> np.ndarray:
        """(K,) bool: which points a person placed, moved or marked absent."""
        model = self.model_points()
        if self.source == "file" or model is None:
            return np.ones(len(self.names), dtype=bool)
        same = np.isclose(self.points, model, rtol=0.0, atol=1e-6, equal_nan=True)
        return ~same.all(axis=1)

    def to_json(self) -> dict:
        def pts(a):
            return [None if not np.isfinite(p).all() else [float(v) for v in p] for p in a]

        voxels = self.geometry.world_to_index(np.nan_to_num(self.points))
        voxels[~np.isfinite(self.points).all(axis=1)] = np.nan
        return {
            "name": self.name, "status": self.status, "source": self.source,
            "names": list(self.names), "frame": "LPS", "points": pts(self.points),
            "voxels": pts(voxels), "human": self.human().tolist(),
            "predicted": pts(self.predicted) if self.predicted is not None else None,
            "confidence": ([float(c) for c in self.confidence]
                           if self.confidence is not None else None),
            "present": ([bool(p) for p in self.present]
                        if self.present is not None else None),
            "flags": [bool(f) for f in self.flags] if self.flags is not None else None,
            "qc": self.qc, "files": list(self.files),
        }


def parse_world_points(raw, count: int, geometry: VolumeGeometry) -> np.ndarray:
    """Points from the page: ``count`` entries, each ``[x, y, z]`` world LPS mm (finite)
    or None (absent) -> (K, 3) with NaN rows.

    A point may lie outside the volume (a model can place a landmark just past a cropped
    edge) but not further than the volume's own extent beyond it along any of its index
    axes, which only a fault could produce.
    """
    if not isinstance(raw, (list, tuple)) or len(raw) != count:
        got = len(raw) if isinstance(raw, (list, tuple)) else type(raw).__name__
        raise InputError(f"expected {count} points (one per landmark), got {got}")
    out = np.full((count, 3), np.nan)
    size = np.array(geometry.size, dtype=np.float64)
    for k, item in enumerate(raw):
        if item is None:
            continue
        if not isinstance(item, (list, tuple)) or len(item) != 3:
            raise InputError(f"landmark {k + 1}: expected [x, y, z] (LPS mm) or null, "
                             f"got {item!r}")
        try:
            point = [float(v) for v in item]
        except (TypeError, ValueError):
            raise InputError(f"landmark {k + 1}: not numbers: {item!r}") from None
        if not all(math.isfinite(v) for v in point):
            raise InputError(f"landmark {k + 1}: not finite numbers: {item!r}")
        voxel = geometry.world_to_index(np.array(point))
        if not ((voxel >= -size) & (voxel <= 2 * size)).all():
            shown = " x ".join(str(s) for s in geometry.size)
            raise InputError(f"landmark {k + 1}: ({', '.join(f'{v:g}' for v in point)}) mm "
                             f"lies far outside the {shown} volume")
        out[k] = point
    return out


class VolumeCache:
    """The volumes read into memory, most recently used last: at most ``capacity``
    volumes and ``max_bytes`` bytes of voxels (the most recent one always stays). Each
    version of a file or series folder is read once, also when several requests ask for
    it at the same time; what would read outside its place is refused first
    (:func:`.volume_folder.check_self_contained`)."""

    def __init__(self, capacity: int = CACHE_VOLUMES, max_bytes: int = CACHE_BYTES):
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict = {}
        self._versions: dict[str, tuple[int, float, str]] = {}

    def version(self, path: Path) -> str:
        """The volume's version (:func:`.volume_folder.volume_version`); a series folder's
        is reused for :data:`SERIES_VERSION_SECONDS` while the folder's own modification
        time stands, so that a slice request does not stat every file of the series."""
        if not path.is_dir():
            return volume_version(path)
        mtime, now = path.stat().st_mtime_ns, time.monotonic()
        with self._lock:
            memo = self._versions.get(str(path))
        if memo is not None and memo[0] == mtime and now - memo[1] < SERIES_VERSION_SECONDS:
            return memo[2]
        version = volume_version(path)
        with self._lock:
            self._versions[str(path)] = (mtime, now, version)
        return version

    def get(self, path: Path) -> LoadedVolume:
        version = self.version(path)
        key = (str(path), version)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one reader per file version; the others wait for it
            with self._lock:
                if key in self._items:
                    return self._items[key]
            try:
                check_self_contained(path)
                array, geometry = read_volume(path)
                volume = LoadedVolume(array, geometry, version)
            finally:
                with self._lock:
                    self._loading.pop(key, None)
            with self._lock:
                for old in [k for k in self._items if k[0] == key[0]]:
                    del self._items[old]  # an older version of the same file
                self._items[key] = volume
                self._evict()
            return volume

    def _evict(self) -> None:
        while len(self._items) > 1 and (
                len(self._items) > self.capacity
                or sum(v.nbytes for v in self._items.values()) > self.max_bytes):
            self._items.popitem(last=False)


class VolumeReviewStore:
    """Review states of a folder's volumes for one domain of a volume model.

    ``save`` is the default format (``csv``, ``markups`` or ``both``); ``csv_path`` the
    review table (default ``FOLDER/landmarks_reviewed_volumes.csv``).
    """

    def __init__(self, folder: VolumeFolder, detector, domain: str | None = None,
                 save: str = "both", csv_path: str | Path | None = None,
                 cache: VolumeCache | None = None):
        self.folder = folder
        self.detector = detector
        self.domain = pick_domain(detector.domains, domain)
        self.names = tuple(detector.domains[self.domain]["landmark_names"])
        volume_formats_of(save)  # validates
        self.save_format = save
        self.csv_path = (Path(csv_path) if csv_path
                         else folder.root / DEFAULT_VOLUME_CSV_NAME)
        self.cache = cache or VolumeCache()
        self._states: dict[str, VolumeState] = {}
        self._predictions: dict[tuple, object] = {}
        self._lock = threading.RLock()
        self._model_lock = threading.Lock()

    # -- reading -------------------------------------------------------------------------
    def listing(self) -> list[dict]:
        """``[{name, status}]`` of the folder's volumes (``new`` = not opened yet)."""
        on_disk = saved_volume_ids(self.csv_path)
        return [{"name": name, "status": self._status(name, on_disk)}
                for name in self.folder.names()]

    def status_of(self, name: str) -> str:
        self.folder.path(name)
        return self._status(name, saved_volume_ids(self.csv_path))

    def _status(self, name: str, csv_ids: set[str]) -> str:
        with self._lock:
            state = self._states.get(name)
        if state is not None:
            return state.status
        if (self.folder.record_id(name) in csv_ids
                or markups_file(self.folder.root / name).is_file()):
            return SAVED
        return NEW

    def volume(self, name: str) -> LoadedVolume:
        """The volume ``name`` in memory (read once per file version)."""
        return self.cache.get(self.folder.path(name))

    def get(self, name: str) -> VolumeState:
        """The state of volume ``name``, opening it (saved points or a prediction) if new."""
        path = self.folder.path(name)
        with self._lock:
            if name in self._states:
                return self._states[name]
        check_self_contained(path)  # before any header is read
        geometry = read_volume_info(path)
        saved = self._read_saved(path, geometry)
        if saved is not None:
            state = VolumeState(name, SAVED, self.names, saved, geometry, "file")
        else:
            state = self._predicted_state(name)
        with self._lock:
            return self._states.setdefault(name, state)

    def prediction(self, name: str):
        """The model's result for volume ``name`` (a ``VolumeResult``), once per file
        version; the model is given the array the page's slices come from."""
        path = self.folder.path(name)
        key = (name, self.cache.version(path))
        with self._model_lock:
            if key not in self._predictions:
                loaded = self.cache.get(path)
                self._predictions[key] = self.detector.predict(
                    (loaded.array, loaded.geometry), self.domain)
            return self._predictions[key]

    def _predicted_state(self, name: str) -> VolumeState:
        result = self.prediction(name)
        world = np.asarray(result.world, dtype=np.float64)
        present = getattr(result, "present", None)
        present = None if present is None else np.asarray(present, dtype=bool)
        flags = getattr(result, "flags", None)
        state = VolumeState(
            name, PREDICTED, self.names, world.copy(), result.geometry, "model",
            predicted=world, confidence=np.asarray(result.confidence, dtype=np.float64),
            present=present, flags=None if flags is None else np.asarray(flags, dtype=bool),
            qc=getattr(result, "qc", None))
        return replace(state, points=state.model_points())

    def with_prediction(self, name: str) -> VolumeState:
        """The state with the model's prediction attached (points unchanged), for the
        page's 'model points'; the status does not change."""
        state = self.get(name)
        if state.predicted is not None:
            return state
        model = self._predicted_state(name)
        with self._lock:
            state = replace(self._states[name], predicted=model.predicted,
                            confidence=model.confidence, present=model.present,
                            flags=model.flags, qc=model.qc)
            self._states[name] = state
            return state

    def _read_saved(self, path: Path, geometry: VolumeGeometry) -> np.ndarray | None:
        """Human points from the first saved format that has the volume."""
        order = volume_formats_of(self.save_format)
        order += tuple(f for f in ("markups", "csv") if f not in order)
        for fmt in order:
            if fmt == "markups":
                saved = read_volume_markups(path, self.names)
            else:
                saved = read_volume_csv(self.csv_path, self.folder.record_id(path.name),
                                        self.names, geometry)
            if saved is not None:
                return saved
        return None

    # -- editing and saving ----------------------------------------------------------------
    def update(self, name: str, raw_points) -> VolumeState:
        """Store the page's current points: the volume becomes ``reviewed``."""
        state = self.get(name)
        points = parse_world_points(raw_points, len(self.names), state.geometry)
        with self._lock:
            state = replace(self._states[name], points=points, status=REVIEWED)
            self._states[name] = state
            return state

    def save(self, name: str, raw_points, fmt: str | None = None) -> VolumeState:
        """Write the points to the chosen format(s), atomically: the volume becomes
        ``saved``."""
        formats = volume_formats_of(fmt or self.save_format)
        state = self.get(name)
        points = parse_world_points(raw_points, len(self.names), state.geometry)
        path = self.folder.path(name)
        record = self.folder.record_id(name)
        clash = self.folder.shared_stem(name)
        if clash:
            raise InputError(f"{name}: other volumes share its record id "
                             f"{record!r} ({', '.join(clash)}); rename them first")
        written = []
        with self._lock:
            for f in formats:
                target = markups_file(path) if f == "markups" else self.csv_path
                try:
                    if f == "markups":
                        written.append(write_volume_markups(path, self.names, points))
                    else:
                        rows = review_rows(record, self.names, points, state.geometry,
                                           self.domain)
                        written.append(write_volume_csv(self.csv_path, record, rows))
                except OSError as err:
                    error = cannot_write(target, err)
                    if written:
                        error = SaveError(f"{error}; written: {', '.join(map(str, written))}")
                    raise error from None
            state = replace(self._states[name], points=points, status=SAVED,
                            files=tuple(str(p) for p in written))
            self._states[name] = state
            return state
