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
    stage = PatchStage(config, device, log) if config.stage.kind == "patch" else \
        ImageStage(config, log)
    if config.init is not None:  # adaptation of a trained checkpoint (stages.adapted)
        from .adapted import AdaptedStage

        stage = AdaptedStage(stage, config, device, log)
    return stage


__all__ = ["STAGES", "ImageStage", "PatchStage", "Stage", "build_stage", "selection_score"]
