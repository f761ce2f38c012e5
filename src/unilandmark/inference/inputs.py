"""Reading a batch of inputs for prediction, shared by every backend (PyTorch, ONNX):
one input (a path or an array) read and normalised, the spacing for images without one,
and the inputs read ahead in batches, an unreadable one reported and skipped. Imports
neither torch nor any training code."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import InputError
from ..core.geometry import content_size, scaled_size
from ..core.naming import file_stem
from ..core.types import Spacing
from ..imageio.read import normalise_intensity, read_image_reduced
from ..imageio.resample import resize_extent
from ..imageio.spacing_file import read_spacing_file
from .prefetch import prefetch
from .results import READ_ERRORS, PredictionFailure, describe_input, failure_reason

#: ``least_size((W, H), spacing) -> (w, h)``: the fewest pixels an image may be read at
LeastSize = Callable[[tuple[int, int], Spacing | None], tuple[int, int]]


@dataclass
class RawInput:
    """One input read and normalised: ``normalised`` (h, w) float32 in [0, 1]
    (``io.normalise_intensity``) at ``pixel_scale`` original pixels per pixel (1, or more
    for a JPEG decoded at reduced size, ``io.read_image_reduced``) of an image of
    ``original_size`` (W, H); its spacing (mm per original pixel, (x, y)) and where that
    came from (``file``, ``option``, ``model`` or None), its id (the file's stem, or
    ``array<i>``) and its path (None for an array). Points are always in original pixels:
    use :meth:`resized`, never ``normalised.shape``, for the image's geometry."""

    normalised: np.ndarray
    spacing: Spacing | None
    spacing_source: str | None
    id: str
    path: str | None
    original_size: tuple[int, int]
    pixel_scale: float = 1.0

    def resized(self, size: tuple[int, int]) -> np.ndarray:
        """The whole image resized to ``size`` (w, h), (h, w) float32, anti-aliased."""
        return resize_extent(self.normalised, self.original_size, size, self.pixel_scale)


def read_input(item, index: int, fallback: Spacing | None, fallback_source: str,
               least_size: LeastSize | None = None,
               spacings: Mapping[str, Spacing] | None = None) -> RawInput:
    """A path or a 2-D array -> :class:`RawInput`; ``fallback`` is the spacing of an
    input whose file carries none (``fallback_spacing``). A path's own calibration
    (``NAME.spacing.json`` beside it, :mod:`..imageio.spacing_file`: a ruler measured in
    the review app) comes first, before the file's header and ``fallback``; before it, a
    path's entry in ``spacings`` (absolute path -> spacing: ``predict --spacing-file``,
    source ``spacing-file``). With
    ``least_size`` a JPEG is decoded at the smallest size that still has the pixels the
    model needs
    (:func:`least_size_rule`). Runs in the reader threads, so decoding and normalising
    overlap the model."""
    if isinstance(item, (str, os.PathLike)):
        def wanted(size):
            return size if least_size is None else least_size(size, fallback)

        listed = spacings.get(os.path.abspath(item)) if spacings else None
        calibrated = (listed, "spacing-file") if listed is not None else \
            read_spacing_file(item)  # a ruler measured on this image wins
        if calibrated is not None:
            fallback, fallback_source = calibrated
        read = read_image_reduced(item, wanted)
        sp = None if calibrated is not None else read.spacing
        source = "file" if sp else (fallback_source if fallback else None)
        return RawInput(normalise_intensity(read.array), sp or fallback, source,
                        file_stem(item), str(item), read.original_size, read.pixel_scale)
    array = np.asarray(item)
    if array.ndim != 2:
        raise InputError(f"array{index}: expected a 2-D image array, got shape {array.shape}")
    return RawInput(normalise_intensity(array), fallback,
                    fallback_source if fallback else None, f"array{index}", None,
                    (array.shape[1], array.shape[0]))


def stage1_inputs(raws: list[RawInput], input_size: tuple[int, int], mode: str,
                  ) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Stage 1's network inputs (B, 1, H, W) float32 for ``input_size`` (W, H) and resize
    ``mode``: each image's content resized in, the rest (letterbox padding) zero; and each
    image's content size (w, h)."""
    contents = [content_size(r.original_size, input_size, mode) for r in raws]
    inputs = np.zeros((len(raws), 1, input_size[1], input_size[0]), dtype=np.float32)
    for j, (raw, (cw, ch)) in enumerate(zip(raws, contents, strict=True)):
        inputs[j, 0, :ch, :cw] = raw.resized((cw, ch))
    return inputs, contents


def least_size_rule(input_size: tuple[int, int], mode: str,
                    patch_scales: list[Callable[[Spacing | None], float]]) -> LeastSize:
    """The fewest pixels a model looks at an image with: stage 1's content size inside its
    ``input_size`` (W, H) for resize ``mode``, and each patch stage's image resized by
    ``1 / s`` (``patch_scales``: spacing -> s, original pixels per patch pixel). A stage
    that cannot say (``scale_mm`` without a spacing) asks for the whole image."""

    def least_size(size: tuple[int, int], spacing: Spacing | None) -> tuple[int, int]:
        w, h = content_size(size, input_size, mode)
        for scale in patch_scales:
            try:
                s = scale(spacing)
            except ValueError:
                return size
            sw, sh = scaled_size(size, s)
            w, h = max(w, sw), max(h, sh)
        return min(w, size[0]), min(h, size[1])

    return least_size


def fallback_spacing(spacing: Spacing | None, assume_training_spacing: bool,
                     trained, domain: str) -> tuple[Spacing | None, str]:
    """The spacing for inputs whose file carries none, and its source: ``spacing`` as
    given (``option``), else with ``assume_training_spacing`` the model's training
    spacing ``trained`` (``model``; a clear error when the model records none)."""
    if spacing is None and assume_training_spacing:
        if not trained:
            raise InputError(f"this model does not record the spacing of its training "
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


def image_paths(items: Iterable[str | os.PathLike]
                ) -> tuple[list, list[tuple[str, str]], int]:
    """Files and folders -> the image files, in order: files as given, every image file of
    a folder (by name or content, sorted, not recursive). Hidden files (a macOS
    ``._scan.png`` resource fork beside ``scan.png``, ``.DS_Store``) are not the user's
    images: left out, as the review app does. Returns (paths, [(input, reason)] for inputs
    that do not exist or hold no image, number of folder files that are not images)."""
    from pathlib import Path

    from ..imageio.read import is_image_file

    paths, missing, skipped = [], [], 0
    for item in map(Path, items):
        if item.is_dir():
            files = sorted(p for p in item.iterdir() if p.is_file() and
                           not p.name.startswith("."))
            found = [p for p in files if is_image_file(p)]
            skipped += len(files) - len(found)
            if not found:
                missing.append((str(item), "no image files in this folder"))
            paths += found
        elif item.is_file():
            paths.append(item)
        else:
            missing.append((str(item), "no such file or folder"))
    return paths, missing, skipped
