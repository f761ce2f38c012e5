"""Models: one registry (``models.registry.MODELS``: name -> ``ModelEntry`` with builder,
codec, family and stage kinds), the model config, GU2Net, the survey's families on one
backbone, shared layers, and surgery (adding a domain to a trained model)."""

from __future__ import annotations

from .families import FamilyNet
from .gu2net import GU2Net, UNet
from .layers import count_parameters
from .registry import MODELS, ModelEntry, build_model, codec_for, model_entry, stage_models

__all__ = ["MODELS", "FamilyNet", "GU2Net", "ModelEntry", "UNet", "build_model", "codec_for",
           "count_parameters", "model_entry", "stage_models"]
