"""Reading a batch of inputs for prediction, shared by every backend (PyTorch, ONNX):
the spacing for images without one, and the inputs read ahead in batches, an unreadable
one reported and skipped. Imports neither torch nor any training code."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .prefetch import prefetch
from .results import READ_ERRORS, PredictionFailure, describe_input, failure_reason
from .types import Spacing


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
