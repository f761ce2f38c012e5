"""What a model file needs to rebuild its network: the model configuration.

The training schema (``training.config``) builds on it; prediction reads it alone.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    """A pydantic model that refuses unknown keys (a typo in a config is an error)."""

    model_config = ConfigDict(extra="forbid")


class ModelConfig(StrictModel):
    name: str = "gu2net"
    width: int = Field(64, gt=0)
    depth: int = Field(4, gt=0)
    global_width: int = Field(128, gt=0)
    dilations: tuple[int, ...] = (1, 2, 5, 2, 1)

    def kwargs(self) -> dict[str, Any]:
        out = {"width": self.width, "depth": self.depth}
        if self.name.startswith("gu2net"):
            out.update(global_width=self.global_width, dilations=self.dilations)
        return out
