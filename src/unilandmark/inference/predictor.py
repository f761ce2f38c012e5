"""The interface every prediction backend offers: :class:`~.detector.Detector`
(PyTorch) and ``export.runner.OnnxDetector`` (onnxruntime, no torch).

Commands and the review app type against :class:`Predictor`, so a backend is chosen once
(``--checkpoint`` or ``--model``) and everything after reads results the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

from ..core.types import Spacing
from .results import LandmarkResult


@runtime_checkable
class Predictor(Protocol):
    """Landmarks on new images. ``domains``: {domain name: its metadata (landmark names,
    training spacing, ...)}; results are in original pixels (``LandmarkResult``)."""

    domains: dict[str, dict]

    def predict(self, image, domain: str | None = None, spacing: Spacing | None = None,
                **options) -> LandmarkResult:
        """One image: a path (any supported format) or a 2-D array."""
        ...

    def predict_many(self, images, domain: str | None = None, spacing: Spacing | None = None,
                     batch_size: int = 4, **options) -> list[LandmarkResult]:
        """A list of images -> a list of results in the same order."""
        ...

    def iter_predict(self, images: Iterable, domain: str | None = None,
                     spacing: Spacing | None = None, batch_size: int = 4,
                     **options) -> Iterator[LandmarkResult]:
        """One result per image as it is ready (options: ``orientation``,
        ``assume_training_spacing``, ``on_result``, ``on_failure``, ``readers``,
        ``reduced_decode``, ``spacings``)."""
        ...
