"""The orientation rule shared by prediction (``predict.Detector``) and the exported
ONNX graph (``export.graph``): which of an image and its left-right mirror to read.

A model learns the orientation of its training images; a mirrored scan read as it is
gives low peak confidences, read mirrored gives the usual ones. A near-symmetric image (a
chest, a phantom, a model trained with flips) scores about the same both ways: there the
original is kept unless the mirror is clearly more confident, so one image is never
turned round on a small difference of confidence. And an image read confidently as it is
(mean peak confidence at least ``CONFIDENT_ORIGINAL``) is kept without looking at its
mirror: prediction skips the mirror pass for it, which halves stage 1's cost for the
usual image.
"""

from __future__ import annotations

MIRROR_CONFIDENCE_RATIO = 1.5
"""The mirror is read only when its mean peak confidence is at least this many times the
original's."""


CONFIDENT_ORIGINAL = 0.5
"""An image whose original pass has at least this mean peak confidence is read as it is."""


def mirror_pass_needed(original_confidence):
    """original_confidence: (B, K) peak confidences of the original pass (numpy or torch)
    -> (B,) bool: the mirror must be decoded too before deciding."""
    return original_confidence.mean(1) < CONFIDENT_ORIGINAL


def reads_mirrored(original_confidence, mirrored_confidence):
    """original_confidence, mirrored_confidence: (B, K) peak confidences of the two passes
    (numpy arrays or torch tensors alike; the mirror's rows are ignored where
    :func:`mirror_pass_needed` is False) -> (B,) bool: read the mirror."""
    clearly = mirrored_confidence.mean(1) > MIRROR_CONFIDENCE_RATIO * original_confidence.mean(1)
    return mirror_pass_needed(original_confidence) & clearly
