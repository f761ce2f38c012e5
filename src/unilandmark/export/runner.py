"""``OnnxDetector``: prediction with an exported graph through onnxruntime, without torch.

The same interface as ``Detector`` (``predict``, ``predict_many``, ``iter_predict``, the
same options and :class:`~unilandmark.results.LandmarkResult`), for the one domain the
graph was exported for. Around the graph, in numpy: reading and normalising images
(:mod:`unilandmark.io`), the graph's inputs (:mod:`.inputs`), millimetres from the
spacing, and the shape-model residuals from the metadata (``Detector(relocate=False)``:
no re-localisation).

Threads: onnxruntime's own pool, ``threads`` or else ``OMP_NUM_THREADS`` when set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.geometry import flip_permutation
from ..core.modelmeta import calibration_fault
from ..core.types import Spacing, pixels_to_mm
from ..inference.inputs import fallback_spacing, read_batches, read_input
from ..inference.results import LandmarkResult, PredictionFailure
from ..inference.shape import ShapeModel, fit_shape
from ..quality.evidence import assess
from .contract import ORIENTATION_CODES, parse_metadata
from .inputs import graph_inputs, least_size
from .session import MissingExtraError, onnxruntime, open_session, output_fault
from .session import providers as _providers

#: re-exported for code written against this module (they live in :mod:`.session`)
__all__ = ["MissingExtraError", "OnnxDetector", "_providers", "onnxruntime"]


class OnnxDetector:
    """An exported graph (``unilandmark export``) ready to predict."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu",
                 threads: int | None = None, opened: tuple | None = None):
        """``opened``: the ``(session, device)`` of :func:`.session.open_session` for
        ``path`` where the caller has it already (the file is then not read again)."""
        path = Path(path)
        self.session, self.device = opened or open_session(path, device, threads)
        try:
            self.meta = parse_metadata(self.session.get_modelmeta().custom_metadata_map)
        except ValueError as err:
            raise InputError(f"{path}: {err}") from None
        fault = _declared_fault(self.session, self.meta)
        if fault:
            raise InputError(f"{path}: {fault}")
        self.path = path
        self.domain = self.meta["domain"]
        self.names = tuple(self.meta["landmark_names"])
        graph_k = _graph_landmarks(self.session)
        if graph_k is not None and graph_k != len(self.names):
            raise InputError(f"{path}: the metadata names {len(self.names)} landmarks but the "
                             f"graph outputs {graph_k}: the file is inconsistent (edited "
                             "metadata?); export the model again")
        if list(self.meta["domain_meta"]["landmark_names"]) != list(self.names):
            raise InputError(f"{path}: the metadata's 'domain_meta' names other landmarks "
                             "than its 'landmark_names': the file is inconsistent (edited "
                             "metadata?); export the model again")
        fault = calibration_fault(self.meta.get("calibration"), len(self.names))
        if fault:
            raise InputError(f"{path}: metadata {fault}")
        self.domains = {self.domain: {**self.meta["domain_meta"],
                                      "shape": self.meta.get("shape")}}
        self._shape = ShapeModel.from_dict(self.meta["shape"]) if self.meta.get("shape") \
            else None
        self._flip = flip_permutation(self.names, self.meta.get("flip_pairs") or [])

    def _domain(self, domain: str | None) -> str:
        if domain is not None and domain != self.domain:
            raise InputError(f"{self.path} was exported for domain {self.domain!r}, not "
                             f"{domain!r}")
        return self.domain

    def predict(self, image, domain: str | None = None, spacing: Spacing | None = None,
                **options) -> LandmarkResult:
        """One image: a path (any supported format) or a 2-D array."""
        return self.predict_many([image], domain, spacing, **options)[0]

    def predict_many(self, images, domain: str | None = None, spacing: Spacing | None = None,
                     batch_size: int = 4, **options) -> list[LandmarkResult]:
        """A list of images (paths or arrays) -> a list of results in the same order."""
        return list(self.iter_predict(images, domain, spacing, batch_size, **options))

    def iter_predict(self, images: Iterable, domain: str | None = None,
                     spacing: Spacing | None = None, batch_size: int = 4,
                     orientation: str = "auto", assume_training_spacing: bool = False,
                     on_result: Callable[[LandmarkResult], None] | None = None,
                     on_failure: Callable[[PredictionFailure], None] | None = None,
                     readers: int = 2, reduced_decode: bool = True,
                     spacings: Mapping[str, Spacing] | None = None,
                     ) -> Iterator[LandmarkResult]:
        """Yield one result per image, ``batch_size`` images per graph run; the options
        of ``Detector.iter_predict`` (``on_failure``: report an unreadable image and go on;
        ``readers``: threads reading ahead; ``reduced_decode``: a JPEG decoded at the
        smallest size the graph's stages need; ``spacings``: each image's own spacing by
        absolute path)."""
        domain = self._domain(domain)
        if orientation not in ORIENTATION_CODES:
            raise InputError(f"unknown orientation {orientation!r}; expected one of "
                             f"{tuple(ORIENTATION_CODES)}")
        fallback, fallback_source = fallback_spacing(
            spacing, assume_training_spacing, self.meta.get("training_spacing"), domain)

        fewest = least_size(self.meta) if reduced_decode else None

        def load(index, item):
            return read_input(item, index, fallback, fallback_source, fewest, spacings)

        for chunk in read_batches(images, load, batch_size, readers, on_failure):
            yield from self._predict_chunk(chunk, orientation, on_result)

    def _predict_chunk(self, raws, orientation, on_result):
        feeds = graph_inputs(self.meta, raws, orientation)
        names = ["landmarks", "confidence", "mirrored", "stage_landmarks", "stage_confidence",
                 "stage_spread"]
        points, conf, mirrored, stage_points, stage_conf, stage_spread = self.session.run(
            names, feeds)
        for j, raw in enumerate(raws):
            pts = points[j].astype(np.float32)  # decoded coordinates are float32
            # how far the patch stages moved each point from stage 1 (original px)
            shift = np.linalg.norm(stage_points[j, -1].astype(np.float64)
                                   - stage_points[j, 0], axis=-1)
            mm = pixels_to_mm(pts, raw.spacing)
            result = LandmarkResult(
                id=raw.id, domain=self.domain, names=self.names, points=pts,
                confidence=conf[j].astype(np.float32), spacing=raw.spacing,
                points_mm=None if mm is None else mm.astype(np.float32),
                image_path=raw.path,
                spacing_source=raw.spacing_source if raw.spacing else None,
                orientation="mirrored" if mirrored[j] else "original",
                shape_residual=self._residual(stage_points[j, 0], stage_conf[j, 0],
                                              bool(mirrored[j]), raw),
                stage_confidence=stage_conf[j],
                image_size=raw.original_size,
                refinement_shift=shift.astype(np.float32),
                crop_spread=stage_spread[j].astype(np.float32))
            # quality (docs/quality.md) with the model's calibration where it has one; the
            # mirror evidence is not in the graph's outputs (NaN, as for a confident image)
            result = assess(result, self.domains[self.domain], self.meta.get("calibration"))
            if on_result is not None:
                on_result(result)
            yield result

    def _residual(self, points, conf, mirrored: bool, raw) -> np.ndarray:
        """Stage-1 shape-fit residuals (K,) as ``Detector`` computes them: in the
        orientation the image was read in, in mm where a spacing is known."""
        k = len(self.names)
        if self._shape is None:
            return np.full(k, np.nan)
        points = np.asarray(points, dtype=np.float64)
        if mirrored:  # back to the orientation the graph read the image in
            width = raw.original_size[0]
            points = np.stack([(width - 1) - points[:, 0], points[:, 1]], -1)[self._flip]
            conf = conf[self._flip]
        sp = raw.spacing or self.meta.get("training_spacing")
        scale = np.asarray(sp, dtype=np.float64) if sp else np.ones(2)
        residual = fit_shape(self._shape, points * scale, conf).residual
        return residual[self._flip] if mirrored else residual


def _declared_fault(session, meta: dict) -> str | None:
    """Why the graph's declared shapes are refused, or None: an output whose fixed
    dimensions multiply beyond :data:`~unilandmark.core.limits.MAX_OUTPUT_ELEMENTS` (a
    crafted graph declaring terabytes, :func:`.session.output_fault`), an ``image`` input
    that is not the metadata's ``input_size``."""
    fault = output_fault(session)
    if fault:
        return fault
    w, h = meta["input_size"]
    for graph_input in session.get_inputs():
        shape = graph_input.shape
        if graph_input.name == "image" and (len(shape) != 4 or any(
                isinstance(shape[axis], int) and shape[axis] != size
                for axis, size in ((1, 1), (2, h), (3, w)))):
            return (f"the graph's image input is {list(shape)} but the metadata's "
                    f"input_size is {[w, h]} (W, H): the file is inconsistent (edited "
                    "metadata?); export the model again")
    return None


def _graph_landmarks(session) -> int | None:
    """K of the graph's ``landmarks`` output (batch, K, 2), or None when not fixed."""
    for output in session.get_outputs():
        if output.name == "landmarks" and len(output.shape) == 3 and \
                isinstance(output.shape[1], int):
            return int(output.shape[1])
    return None
