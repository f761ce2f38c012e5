"""Image sizes against a network input: warnings and a suggested input size.

A domain's images are resized into one network input (``stretch`` or ``letterbox``).
When the images' aspect ratios differ a lot from each other, or from the input's,
stretching squeezes the anatomy by different amounts, and a model trained on a handful of
images cannot learn every distortion. :func:`size_advice` says so and proposes an input
size with the images' median aspect and the same number of pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: aspect ratios (W / H) further apart than this factor are worth a warning
ASPECT_SPREAD = 1.3
#: image areas further apart than this factor are worth a warning
AREA_SPREAD = 2.0
#: the input's aspect may differ from the images' median by this factor without a warning
INPUT_ASPECT = 1.2
#: suggested sizes are multiples of this (four 2x poolings)
MULTIPLE = 16


@dataclass
class SizeAdvice:
    """``warnings`` (sentences) and ``suggested`` (W, H) input size."""

    warnings: list[str] = field(default_factory=list)
    suggested: tuple[int, int] | None = None
    median_aspect: float = float("nan")


def suggest_input_size(sizes: list[tuple[int, int]], pixels: int) -> tuple[int, int]:
    """(W, H) with the median aspect (W / H) of ``sizes`` and about ``pixels`` pixels,
    each side a multiple of 16 (at least 32)."""
    aspect = float(np.median([w / h for w, h in sizes]))
    w, h = math.sqrt(pixels * aspect), math.sqrt(pixels / aspect)
    return (max(2 * MULTIPLE, MULTIPLE * round(w / MULTIPLE)),
            max(2 * MULTIPLE, MULTIPLE * round(h / MULTIPLE)))


def size_advice(sizes: list[tuple[int, int]], input_size: tuple[int, int],
                resize: str = "stretch", what: str = "the images") -> SizeAdvice:
    """Warnings about ``sizes`` ((W, H) of each image) resized into ``input_size`` (W, H)
    and the suggested input size (same pixel count as ``input_size``)."""
    if not sizes:
        return SizeAdvice()
    aspects = np.array([w / h for w, h in sizes], dtype=np.float64)
    areas = np.array([w * h for w, h in sizes], dtype=np.float64)
    median = float(np.median(aspects))
    suggested = suggest_input_size(sizes, int(input_size[0]) * int(input_size[1]))
    advice = SizeAdvice(suggested=suggested, median_aspect=median)
    if aspects.max() / aspects.min() > ASPECT_SPREAD:
        i, j = int(aspects.argmin()), int(aspects.argmax())
        advice.warnings.append(
            f"{what} differ a lot in shape (aspect W/H from {aspects[i]:.2f}, "
            f"{sizes[i][0]}x{sizes[i][1]}, to {aspects[j]:.2f}, {sizes[j][0]}x{sizes[j][1]})"
            + (": stretching squeezes each differently; consider resize: letterbox"
               if resize == "stretch" else ""))
    if areas.max() / areas.min() > AREA_SPREAD:
        i, j = int(areas.argmin()), int(areas.argmax())
        advice.warnings.append(
            f"{what} differ a lot in size (from {sizes[i][0]}x{sizes[i][1]} to "
            f"{sizes[j][0]}x{sizes[j][1]} pixels): check that they show the anatomy at "
            "a similar scale")
    aspect_in = input_size[0] / input_size[1]
    if resize == "stretch" and max(aspect_in / median, median / aspect_in) > INPUT_ASPECT:
        advice.warnings.append(
            f"the input size {input_size[0]}x{input_size[1]} (aspect {aspect_in:.2f}) differs "
            f"from {what}' median aspect {median:.2f}: stretching squeezes them; suggested "
            f"input size {suggested[0]}x{suggested[1]} (about the same number of pixels)")
    return advice
