"""A model file is a prediction contract: what prediction needs from each stage, read
without the training schema.

A stage of a checkpoint or model file carries its resolved training config (``config``)
for provenance. Prediction reads only two parts of it: ``model`` (what rebuilds the network:
:class:`~unilandmark.models.config.ModelConfig`, strict, since an unknown model option
would build another network) and, for a refinement stage, the patch geometry
(:class:`PatchGeometry`). Every other key (``train``, ``optim``, ``domains``, options a
later or earlier version added) is ignored, so a new training option never breaks a
shipped or shared model file, in either direction.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..core.errors import InputError
from ..models.config import ModelConfig


class PatchGeometry(BaseModel):
    """A refinement stage's patch grid (docs/training.md, "Coarse to fine"):
    ``patch_size`` x ``patch_size`` patch pixels at ``scale`` original pixels per patch
    pixel, or ``scale_mm`` mm per patch pixel (from each image's spacing); the heatmap
    ``sigma`` in patch pixels; ``test_offsets`` > 0 averages five crops shifted by that
    many patch pixels."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["patch"] = "patch"
    patch_size: int = Field(64, ge=16, le=4096)
    scale: float = Field(2.0, gt=0)
    scale_mm: float | None = Field(None, gt=0)
    sigma: float = Field(2.0, gt=0)
    test_offsets: float = Field(0.0, ge=0)


class VolumePatchGeometry(BaseModel):
    """A volume refinement stage's patch grid (docs/volumes.md, "Coarse to fine"): cubes
    of ``patch_size`` voxels a side at ``spacing`` mm per patch voxel (None: the volume's
    own spacing), the heatmap ``sigma`` in patch voxels."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["volume-patch"] = "volume-patch"
    patch_size: int = Field(24, ge=8, le=512)
    spacing: float | None = Field(None, gt=0)
    sigma: float = Field(1.5, gt=0)


class StageContract(BaseModel):
    """What prediction reads from one stage's stored config."""

    model_config = ConfigDict(extra="ignore")

    model: ModelConfig = Field(default_factory=ModelConfig)
    patch: PatchGeometry | None = None
    volume_patch: VolumePatchGeometry | None = None


class ContractError(InputError):
    """A model file whose prediction contract is broken (names the file and the key)."""


def stage_contract(stage: dict, source: str = "model file") -> StageContract:
    """The prediction contract of one stage dict (``kind``, ``config``, ...).

    Raises :class:`ContractError` naming ``source``, the stage and every faulty key."""
    config = stage.get("config")
    if not isinstance(config, dict):
        raise ContractError(f"{source}: stage {stage.get('kind', '?')!r} has no config "
                            "mapping (not a unilandmark model file?)")
    data: dict = {"model": config.get("model", {})}
    if stage.get("kind") == "patch":
        data["patch"] = config.get("stage", {})
    elif stage.get("kind") == "volume-patch":
        data["volume_patch"] = config.get("stage", {})
    try:
        return StageContract.model_validate(data)
    except ValidationError as err:
        faults = "; ".join(f"{'.'.join(str(v) for v in e['loc'])}: {e['msg']}"
                           for e in err.errors())
        raise ContractError(f"{source}: stage {stage.get('kind', '?')!r}: {faults}") from None
