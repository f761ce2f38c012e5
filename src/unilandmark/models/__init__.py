"""Models: one registry (``models.registry.MODELS``: name -> ``ModelEntry`` with builder,
codec, family and stage kinds), the model config, GU2Net (2-D and 3-D), the survey's
families on one backbone, shared layers, and surgery (adding a domain to a trained model).
``ModelEntry.dims`` says which input dimensionalities a model takes (``models_for``)."""

from __future__ import annotations

from .families import FamilyNet
from .gu2net import GU2Net, UNet
from .gu2net3d import GU2Net3d, UNet3d
from .layers import count_parameters
from .registry import (
    MODELS,
    ModelEntry,
    build_model,
    codec_for,
    model_entry,
    models_for,
    stage_models,
)

__all__ = ["MODELS", "FamilyNet", "GU2Net", "GU2Net3d", "ModelEntry", "UNet", "UNet3d",
           "build_model", "codec_for", "count_parameters", "model_entry", "models_for",
           "stage_models"]
