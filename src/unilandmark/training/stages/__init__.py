"""Training stages: what the one training loop (``training.fit``) learns.

``build_stage`` picks the class of ``config.stage.kind``: ``image`` (landmarks on the
whole image), ``patch`` (coarse-to-fine refinement of a previous stage), ``volume``
(landmarks in whole volumes, 3-D models) or ``volume-patch`` (their refinement); with
``config.init`` it wraps it for adaptation.
"""

from __future__ import annotations

from .base import Stage, selection_score
from .image import ImageStage
from .patch import PatchStage


def build_stage(config, device, log=print) -> Stage:
    """The stage of ``config`` with its data loaded (errors name the faulty part)."""
    if config.stage.kind == "volume":
        from .volume import VolumeStage

        stage = VolumeStage(config, log)
    elif config.stage.kind == "volume-patch":
        from .volume_patch import VolumePatchStage

        stage = VolumePatchStage(config, device, log)
    elif config.stage.kind == "patch":
        stage = PatchStage(config, device, log)
    else:
        stage = ImageStage(config, log)
    if config.init is not None:  # adaptation of a trained checkpoint (stages.adapted)
        from .adapted import AdaptedStage

        stage = AdaptedStage(stage, config, device, log)
    return stage


__all__ = ["ImageStage", "PatchStage", "Stage", "build_stage", "selection_score"]
