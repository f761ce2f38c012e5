"""Reading a batch of inputs for prediction, shared by every backend (PyTorch, ONNX):
one input (a path or an array) read and normalised, the spacing for images without one,
and the inputs read ahead in batches, an unreadable one reported and skipped. Imports
neither torch nor any training code."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .io import normalise_intensity, read_image
from .naming import file_stem
from .prefetch import prefetch
from .results import READ_ERRORS, PredictionFailure, describe_input, failure_reason
from .types import Spacing


@dataclass
class RawInput:
    """One input read and normalised: ``normalised`` (H, W) float32 in [0, 1]
    (``io.normalise_intensity``), its spacing (mm/px, (x, y)) and where that came from
    (``file``, ``option``, ``model`` or None), its id (the file's stem, or ``array<i>``)
    and its path (None for an array)."""

    normalised: np.ndarray
    spacing: Spacing | None
    spacing_source: str | None
    id: str
    path: str | None


def read_input(item, index: int, fallback: Spacing | None, fallback_source: str) -> RawInput:
    """A path or a 2-D array -> :class:`RawInput`; ``fallback`` is the spacing of an
    input whose file carries none (``fallback_spacing``). Runs in the reader threads, so
    decoding and normalising overlap the model."""
    if isinstance(item, (str, os.PathLike)):
        array, sp = read_image(item)
        source = "file" if sp else (fallback_source if fallback else None)
        return RawInput(normalise_intensity(array), sp or fallback, source, file_stem(item),
                        str(item))
    array = np.asarray(item)
    if array.ndim != 2:
        raise ValueError(f"array{index}: expected a 2-D image array, got shape {array.shape}")
    return RawInput(normalise_intensity(array), fallback,
                    fallback_source if fallback else None, f"array{index}", None)


def fallback_spacing(spacing: Spacing | None, assume_training_spacing: bool,
                     trained, domain: str) -> tuple[Spacing | None, str]:
    """The spacing for inputs whose file carries none, and its source: ``spacing`` as
    given (``option``), else with ``assume_training_spacing`` the model's training
    spacing ``trained`` (``model``; a clear error when the model records none)."""
    if spacing is None and assume_training_spacing:
        if not trained:
            raise ValueError(f"this model does not record the spacing of its training "
                             f"images for domain {domain!r}; give the spacing explicitly "
                             "(--spacing)")
        return (float(trained[0]), float(trained[1])), "model"
    return spacing, "option"


def read_batches(images: Iterable, load: Callable[[int, Any], Any], batch_size: int,
                 readers: int = 2,
                 on_failure: Callable[[PredictionFailure], None] | None = None,
                 ) -> Iterator[list]:
    """``load(index, item)`` of every input, read ahead in ``readers`` threads, in lists
    of ``batch_size`` (the last one shorter). An input that fails with a read error is
    reported to ``on_failure`` and left out; without ``on_failure`` its error is raised."""
    chunk: list = []
    for index, item, value in prefetch(load, images, readers, ahead=2 * batch_size):
        if isinstance(value, BaseException):
            if on_failure is None or not isinstance(value, READ_ERRORS):
                raise value
            name = describe_input(item, index)
            on_failure(PredictionFailure(index, name, failure_reason(value, name)))
            continue
        chunk.append(value)
        if len(chunk) == batch_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
