"""Training stages: what the one training loop (``train.fit``) learns.

``STAGES`` maps ``config.stage.kind`` to its class: ``image`` (landmarks on the whole
image) and ``patch`` (coarse-to-fine refinement of a previous stage).
"""

from __future__ import annotations

from .base import Stage, selection_score
from .image import ImageStage
from .patch import PatchStage

STAGES = {"image": ImageStage, "patch": PatchStage}


def build_stage(config, device, log=print) -> Stage:
    """The stage of ``config`` with its data loaded (errors name the faulty part)."""
    if config.stage.kind == "patch":
        return PatchStage(config, device, log)
    return ImageStage(config, log)


__all__ = ["STAGES", "ImageStage", "PatchStage", "Stage", "build_stage", "selection_score"]
