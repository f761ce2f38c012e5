"""The review state of each image: predicted, reviewed (edited, not saved) or saved.

An image is opened once: if it already has human landmarks on disk (a labelme JSON beside
it, or rows in the review CSV) they are loaded as ``saved`` and the model is not asked;
otherwise the model predicts (once per image file; the result is cached) and the image is
``predicted``. Edits make it ``reviewed``; saving writes the files and makes it ``saved``.
A prediction never replaces human points: only an explicit edit from the page does.

Points are ``(K, 2)`` float arrays in original pixels (x right, y down, centre of the
top-left pixel is ``(0, 0)``); a row of NaN is a landmark marked not visible.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.naming import file_stem
from ..core.types import Spacing
from ..imageio.read import read_image_info
from ..imageio.spacing_file import read_spacing_file, write_ruler_spacing
from .folder import ImageFolder
from .saving import (
    DEFAULT_CSV_NAME,
    SavedFileError,
    SaveError,
    cannot_write,
    csv_rows,
    formats_of,
    labelme_file,
    read_csv,
    read_labelme,
    saved_ids,
    write_csv,
    write_labelme,
)

NEW, PREDICTED, REVIEWED, SAVED = "new", "predicted", "reviewed", "saved"
STATUSES = (NEW, PREDICTED, REVIEWED, SAVED)


@dataclass(frozen=True)
class ImageState:
    """One image under review.

    ``points`` (K, 2) the current points (NaN: not visible); ``predicted`` (K, 2) and
    ``confidence`` (K,) the model's, when it was asked; ``flags`` (K,) bool and ``qc`` the
    model's quality verdicts where the model gives them; ``source`` is ``model`` or
    ``file`` (human points read from disk); ``size`` is ``(width, height)``;
    ``orientation`` is ``original``/``mirrored`` where known (the model's decision, kept
    in the saved files; measurements need it).
    """

    name: str
    status: str
    names: tuple[str, ...]
    points: np.ndarray
    size: tuple[int, int]
    spacing: Spacing | None
    source: str
    predicted: np.ndarray | None = None
    confidence: np.ndarray | None = None
    flags: np.ndarray | None = None
    qc: str | None = None
    orientation: str | None = None
    files: tuple[str, ...] = field(default=())
    #: where ``spacing`` came from: ``ruler`` (the image's own calibration file),
    #: ``file`` (its header), ``option`` (``serve --spacing``), or None (no spacing)
    spacing_source: str | None = None

    @property
    def mirrored(self) -> bool:
        """Whether the image is a left-right mirror of the model's training orientation."""
        return self.orientation == "mirrored"

    def human(self) -> np.ndarray:
        """(K,) bool: which points a person placed (read from a file, or moved/hidden)."""
        if self.source == "file" or self.predicted is None:
            return np.ones(len(self.names), dtype=bool)
        same = np.isclose(self.points, self.predicted, rtol=0.0, atol=1e-6, equal_nan=True)
        return ~same.all(axis=1)

    def to_json(self) -> dict:
        def pts(a):
            return [None if not np.isfinite(p).all() else [float(p[0]), float(p[1])] for p in a]

        return {
            "name": self.name, "status": self.status, "source": self.source,
            "names": list(self.names), "points": pts(self.points),
            "human": self.human().tolist(), "size": list(self.size),
            "spacing": list(self.spacing) if self.spacing else None,
            "spacing_source": self.spacing_source if self.spacing else None,
            "predicted": pts(self.predicted) if self.predicted is not None else None,
            "confidence": ([float(c) for c in self.confidence]
                           if self.confidence is not None else None),
            "flags": [bool(f) for f in self.flags] if self.flags is not None else None,
            "qc": self.qc, "orientation": self.orientation, "mirrored": self.mirrored,
            "files": list(self.files),
        }


def parse_points(raw, count: int, size: tuple[int, int]) -> np.ndarray:
    """Points from the page: ``count`` entries, each ``[x, y]`` (finite) or None (not
    visible) -> (K, 2) with NaN rows.

    A point may lie off the image (a model can place a landmark just past a cropped edge)
    but not further than the image's own width or height beyond it, which only a fault
    could produce.
    """
    if not isinstance(raw, (list, tuple)) or len(raw) != count:
        got = len(raw) if isinstance(raw, (list, tuple)) else type(raw).__name__
        raise InputError(f"expected {count} points (one per landmark), got {got}")
    out = np.full((count, 2), np.nan)
    width, height = size
    for k, item in enumerate(raw):
        if item is None:
            continue
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise InputError(f"landmark {k + 1}: expected [x, y] or null, got {item!r}")
        try:
            x, y = float(item[0]), float(item[1])
        except (TypeError, ValueError):
            raise InputError(f"landmark {k + 1}: not numbers: {item!r}") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise InputError(f"landmark {k + 1}: not finite numbers: {item!r}")
        if not (-width <= x <= 2 * width and -height <= y <= 2 * height):
            raise InputError(f"landmark {k + 1}: ({x}, {y}) lies far outside the "
                             f"{width}x{height} image")
        out[k] = (x, y)
    return out


def pick_domain(domains: dict, domain: str | None) -> str:
    """The domain to review: ``domain``, or the model's only one when None."""
    if domain is None:
        if len(domains) == 1:
            return next(iter(domains))
        raise InputError(f"this model knows several domains {sorted(domains)}; "
                         "choose one with --domain")
    if domain not in domains:
        raise InputError(f"unknown domain {domain!r}; this model knows {sorted(domains)}")
    return domain


class ReviewStore:
    """Review states of a folder's images for one model domain.

    ``save`` is the default format (``csv``, ``labelme`` or ``both``); ``csv_path`` the
    review table (default ``FOLDER/landmarks_reviewed.csv``); ``spacing`` (mm per pixel,
    (x, y)) applies to images whose file carries none.
    """

    def __init__(self, folder: ImageFolder, detector, domain: str | None = None,
                 spacing: Spacing | None = None, save: str = "both",
                 csv_path: str | Path | None = None):
        self.folder = folder
        self.detector = detector
        self.domain = pick_domain(detector.domains, domain)
        self.names = tuple(detector.domains[self.domain]["landmark_names"])
        self.spacing = spacing
        self.save_format = save
        formats_of(save)  # validates
        self.csv_path = Path(csv_path) if csv_path else folder.root / DEFAULT_CSV_NAME
        self._states: dict[str, ImageState] = {}
        self._predictions: dict[tuple, object] = {}
        self._labelme_seen: dict[str, tuple[tuple[int, int], bool]] = {}
        self._lock = threading.RLock()
        self._model_lock = threading.Lock()

    # -- reading -------------------------------------------------------------------------
    def listing(self) -> list[dict]:
        """``[{name, status}]`` of the folder's images (``new`` = not opened yet)."""
        on_disk = saved_ids(self.csv_path)
        return [{"name": name, "status": self._status(name, on_disk)}
                for name in self.folder.names()]

    def status_of(self, name: str) -> str:
        """The status of one image (``new`` when not opened and nothing saved)."""
        self.folder.path(name)
        return self._status(name, saved_ids(self.csv_path))

    def _status(self, name: str, csv_ids: set[str]) -> str:
        with self._lock:
            state = self._states.get(name)
        if state is not None:
            return state.status
        if file_stem(name) in csv_ids or self._has_labelme(name):
            return SAVED
        return NEW

    def _has_labelme(self, name: str) -> bool:
        """Whether the image's labelme JSON holds any of the landmarks (cached per file
        version: labelme files can embed the whole image)."""
        path = labelme_file(self.folder.root / name)
        try:
            stat = path.stat()
        except OSError:
            return False
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self._labelme_seen.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            has = read_labelme(self.folder.root / name, self.names) is not None
        except SavedFileError:
            has = True  # a broken file of ours: opening the image reports it
        self._labelme_seen[name] = (key, has)
        return has

    def get(self, name: str) -> ImageState:
        """The state of image ``name``, opening it (saved points or a prediction) if new."""
        path = self.folder.path(name)
        with self._lock:
            if name in self._states:
                return self._states[name]
        saved = self._read_saved(path)
        if saved is not None:
            points, orientation = saved
            size, spacing, source = self._info(path)
            state = ImageState(name, SAVED, self.names, points, size, spacing, "file",
                               orientation=orientation, spacing_source=source)
        else:
            state = self._predicted_state(name, path)
        with self._lock:
            return self._states.setdefault(name, state)

    def prediction(self, name: str):
        """The model's result for image ``name`` (a LandmarkResult), computed once per file."""
        path = self.folder.path(name)
        stat = path.stat()
        key = (name, stat.st_mtime_ns, stat.st_size)
        with self._model_lock:
            if key not in self._predictions:
                self._predictions[key] = self.detector.predict(path, self.domain,
                                                               spacing=self.spacing)
            return self._predictions[key]

    def replace_detector(self, detector) -> None:
        """Predict with ``detector`` from now on (an adaptation of the same domain: same
        landmark names). The model's cached answers go, and so do the states of images
        that only hold its points (``predicted``): they are predicted again when opened.
        Reviewed and saved points stay as they are."""
        names = tuple(detector.domains.get(self.domain, {}).get("landmark_names", ()))
        if names != self.names:
            raise InputError(f"the new model's domain {self.domain!r} has other landmarks "
                             f"({len(names)}) than the app's ({len(self.names)})")
        with self._model_lock:
            self.detector = detector
            self._predictions.clear()
        with self._lock:
            for name in [n for n, st in self._states.items() if st.status == PREDICTED]:
                del self._states[name]

    def _predicted_state(self, name: str, path: Path) -> ImageState:
        result = self.prediction(name)
        size, spacing, source = self._info(path)
        flags = getattr(result, "flags", None)
        return ImageState(
            name, PREDICTED, self.names, np.array(result.points, dtype=np.float64), size,
            spacing, "model", predicted=np.array(result.points, dtype=np.float64),
            spacing_source=source,
            confidence=np.asarray(result.confidence, dtype=np.float64),
            flags=None if flags is None else np.asarray(flags, dtype=bool),
            qc=getattr(result, "qc", None),
            orientation=getattr(result, "orientation", None))

    def with_prediction(self, name: str) -> ImageState:
        """The state with the model's prediction attached (points unchanged), for the page's
        'reset to prediction'; the status does not change."""
        state = self.get(name)
        if state.predicted is not None:
            return state
        model = self._predicted_state(name, self.folder.path(name))
        with self._lock:
            state = replace(self._states[name], predicted=model.predicted,
                            confidence=model.confidence, flags=model.flags, qc=model.qc,
                            orientation=state.orientation or model.orientation)
            self._states[name] = state
            return state

    def _read_saved(self, path: Path) -> tuple[np.ndarray, str | None] | None:
        """Human points and orientation from the first saved format that has the image."""
        for fmt in formats_of(self.save_format) + _other_formats(self.save_format):
            if fmt == "labelme":
                saved = read_labelme(path, self.names)
            else:
                saved = read_csv(self.csv_path, file_stem(path.name), self.names)
            if saved is not None:
                return saved
        return None

    def _info(self, path: Path) -> tuple[tuple[int, int], Spacing | None, str | None]:
        """Size (W, H), spacing and its source, first found first (docs/prediction.md,
        "Spacing"): the image's own calibration (a ruler), its header, ``--spacing``."""
        size, header = read_image_info(path)
        calibrated = read_spacing_file(path)
        if calibrated is not None:
            return size, calibrated[0], calibrated[1]
        if header:
            return size, header, "file"
        return size, self.spacing, "option" if self.spacing else None

    def calibrate(self, name: str, start, end, length_mm: float) -> ImageState:
        """Set image ``name``'s spacing from a ruler of ``length_mm`` drawn from ``start``
        to ``end`` (original pixels): written beside the image (``NAME.spacing.json``,
        atomically; :mod:`..imageio.spacing_file`), so ``predict`` and ``measure`` use it
        too. The points stay; their millimetres change. The model's cached answer for the
        image is dropped (a patch stage sized in mm would read it differently)."""
        state = self.get(name)
        path = self.folder.path(name)
        write_ruler_spacing(path, start, end, length_mm)
        _, spacing, source = self._info(path)
        with self._model_lock:
            for key in [k for k in self._predictions if k[0] == name]:
                del self._predictions[key]
        with self._lock:
            state = replace(self._states.get(name, state), spacing=spacing,
                            spacing_source=source)
            self._states[name] = state
            return state

    # -- editing and saving ----------------------------------------------------------------
    def update(self, name: str, raw_points) -> ImageState:
        """Store the page's current points: the image becomes ``reviewed``."""
        state = self.get(name)
        points = parse_points(raw_points, len(self.names), state.size)
        with self._lock:
            state = replace(self._states[name], points=points, status=REVIEWED)
            self._states[name] = state
            return state

    def save(self, name: str, raw_points, fmt: str | None = None) -> ImageState:
        """Write the points to the chosen format(s) (atomically): the image becomes ``saved``."""
        formats = formats_of(fmt or self.save_format)
        state = self.get(name)
        points = parse_points(raw_points, len(self.names), state.size)
        path = self.folder.path(name)
        clash = self.folder.shared_stem(name)
        if clash:
            raise InputError(f"{name}: other images share its record id "
                             f"{file_stem(name)!r} ({', '.join(clash)}); rename them first")
        written = []
        with self._lock:
            for f in formats:
                target = labelme_file(path) if f == "labelme" else self.csv_path
                try:
                    if f == "labelme":
                        written.append(write_labelme(path, self.names, points, state.size,
                                                     state.orientation))
                    else:
                        rows = csv_rows(file_stem(name), name, self.names, points,
                                        state.spacing, self.domain, state.orientation)
                        written.append(write_csv(self.csv_path, file_stem(name), rows))
                except OSError as err:
                    error = cannot_write(target, err)
                    if written:  # "both": the first format was saved, the second not
                        error = SaveError(f"{error}; written: {', '.join(map(str, written))}")
                    raise error from None
            state = replace(self._states[name], points=points, status=SAVED,
                            files=tuple(str(p) for p in written))
            self._states[name] = state
            return state


def _other_formats(choice: str) -> tuple[str, ...]:
    return {"csv": ("labelme",), "labelme": ("csv",), "both": ()}[choice]
