"""What a model file needs to rebuild its network: the model configuration.

The training schema (``training.config``) builds on it; prediction reads it alone.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..core.errors import InputError
from ..core.limits import (
    MAX_DILATION,
    MAX_DILATIONS,
    MAX_GLOBAL_WIDTH,
    MAX_MODEL_DEPTH,
    MAX_MODEL_WIDTH,
)


class StrictModel(BaseModel):
    """A pydantic model that refuses unknown keys (a typo in a config is an error)."""

    model_config = ConfigDict(extra="forbid")


class ModelConfig(StrictModel):
    """The network: a registry name (``models.registry.MODELS``) and its sizes.

    ``width`` channels at full resolution, ``depth`` poolings in the U-Net trunk;
    ``global_width`` and ``dilations`` size GU2Net's global branch (models with one).
    Each is bounded (``core.limits``: width 256, depth 8, global width 1024, dilations
    1..64, at most 16 of them), in a training config as in a model file, so a file never
    makes prediction allocate tens of gigabytes for a network."""

    name: str = "gu2net"
    width: int = Field(64, gt=0, le=MAX_MODEL_WIDTH)
    depth: int = Field(4, gt=0, le=MAX_MODEL_DEPTH)
    global_width: int = Field(128, gt=0, le=MAX_GLOBAL_WIDTH)
    dilations: tuple[Annotated[int, Field(ge=1, le=MAX_DILATION)], ...] = Field(
        (1, 2, 5, 2, 1), min_length=1, max_length=MAX_DILATIONS)

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        from .registry import MODELS

        if name not in MODELS:
            raise InputError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
        return name

    def kwargs(self) -> dict[str, Any]:
        from .registry import model_entry

        out = {"width": self.width, "depth": self.depth}
        if model_entry(self.name).global_branch:
            out.update(global_width=self.global_width, dilations=self.dilations)
        return out
