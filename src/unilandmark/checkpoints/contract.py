"""A model file is a prediction contract: what prediction needs from each stage, read
without the training schema.

A stage of a checkpoint or model file carries its resolved training config (``config``)
for provenance. Prediction reads only two parts of it: ``model`` (what rebuilds the network:
:class:`~unilandmark.models.config.ModelConfig`, strict, since an unknown model option
would build another network) and, for a refinement stage, the patch geometry
(:class:`PatchGeometry`). Every other key (``train``, ``optim``, ``domains``, options a
later or earlier version added) is ignored, so a new training option never breaks a
shipped or shared model file, in either direction.

Before anything is built from a file, :func:`check_chain` holds every stage to the limits
of ``core.limits`` (stage count, domain and landmark counts, clean landmark names, input
sizes, network sizes, patch scales) and names the file and the key of the first fault;
:func:`load_weights` names the tensors a stage's weights lack or have too many of.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..core.errors import InputError
from ..core.limits import (
    MAX_STAGES,
    PATCH_SCALE_MM_RANGE,
    PATCH_SCALE_RANGE,
    VOLUME_PATCH_SIDE_RANGE,
)
from ..core.modelmeta import domain_fault, domains_fault
from ..models.config import ModelConfig

#: the stage kinds a model file holds (``stage.kind`` of the training config)
STAGE_KINDS = ("image", "patch", "volume", "volume-patch")


class PatchGeometry(BaseModel):
    """A refinement stage's patch grid (docs/training.md, "Coarse to fine"):
    ``patch_size`` x ``patch_size`` patch pixels at ``scale`` original pixels per patch
    pixel, or ``scale_mm`` mm per patch pixel (from each image's spacing); the heatmap
    ``sigma`` in patch pixels; ``test_offsets`` > 0 averages five crops shifted by that
    many patch pixels."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["patch"] = "patch"
    patch_size: int = Field(64, ge=16, le=4096)
    scale: float = Field(2.0, ge=PATCH_SCALE_RANGE[0], le=PATCH_SCALE_RANGE[1])
    scale_mm: float | None = Field(None, ge=PATCH_SCALE_MM_RANGE[0],
                                   le=PATCH_SCALE_MM_RANGE[1])
    sigma: float = Field(2.0, gt=0)
    test_offsets: float = Field(0.0, ge=0)


class VolumePatchGeometry(BaseModel):
    """A volume refinement stage's patch grid (docs/volumes.md, "Coarse to fine"): cubes
    of ``patch_size`` voxels a side at ``spacing`` mm per patch voxel (None: the volume's
    own spacing), the heatmap ``sigma`` in patch voxels."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["volume-patch"] = "volume-patch"
    patch_size: int = Field(24, ge=VOLUME_PATCH_SIDE_RANGE[0],
                            le=VOLUME_PATCH_SIDE_RANGE[1])
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


def stage_contract(stage: dict, source: str = "model file",
                   label: str | None = None) -> StageContract:
    """The prediction contract of one stage dict (``kind``, ``config``, ...).

    Raises :class:`ContractError` naming ``source``, the stage (``label``, by default its
    kind) and every faulty key."""
    label = label or f"stage {stage.get('kind', '?')!r}"
    config = stage.get("config")
    if not isinstance(config, dict):
        raise ContractError(f"{source}: {label} has no config mapping (not a unilandmark "
                            "model file?)")
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
        raise ContractError(f"{source}: {label}: {faults}") from None


def stage_label(stage: dict, index: int) -> str:
    """How a message names stage ``index`` (0: the whole-image stage): as its tensors are
    named in a model file, with its kind."""
    kind = stage.get("kind", "?") if isinstance(stage, dict) else "?"
    return f"stage{index} ({repr(kind)[:40]})"


def check_chain(chain: list, source: str) -> None:
    """Refuse, with one sentence naming ``source`` (the file), the stage and the key, a
    stage chain (first to last stage dicts) that prediction could not build or that would
    make it allocate without bound: too many stages; a stage that is not a mapping, of an
    unknown kind, or without ``config``, ``domains`` or ``model``; a domain whose
    metadata breaks the limits (:func:`~unilandmark.core.modelmeta.domain_fault`); a
    broken prediction contract (:func:`stage_contract`: network sizes, patch geometry).
    """
    if not isinstance(chain, list) or not chain:
        raise ContractError(f"{source}: a model file without stages")
    if len(chain) > MAX_STAGES:
        raise ContractError(f"{source}: {len(chain)} stages, more than the limit of "
                            f"{MAX_STAGES}; refused")
    for index, stage in enumerate(chain):
        label = stage_label(stage, index)
        if not isinstance(stage, dict):
            raise ContractError(f"{source}: {label} is not a mapping (not a unilandmark "
                                "model file?)")
        if stage.get("kind") not in STAGE_KINDS:
            raise ContractError(f"{source}: {label}: unknown stage kind; expected one of "
                                f"{', '.join(STAGE_KINDS)}")
        for key in ("config", "domains", "model"):
            if key not in stage:
                raise ContractError(f"{source}: {label} has no {key!r} (a damaged or "
                                    "foreign file)")
        if not isinstance(stage["model"], dict) or not all(
                hasattr(v, "is_floating_point") for v in stage["model"].values()):
            raise ContractError(f"{source}: {label}: 'model' is not a mapping of tensors")
        fault = domains_fault(stage["domains"])
        if fault:
            raise ContractError(f"{source}: {label}: {fault}")
        for name, meta in stage["domains"].items():
            fault = domain_fault(meta, needs_input=index == 0)
            if fault:
                raise ContractError(f"{source}: {label}: domain {name!r}: {fault}")
        stage_contract(stage, source, label)


def load_weights(model, weights: dict, source: str, label: str) -> None:
    """``model.load_state_dict(weights)`` after checking that the names and shapes agree;
    a :class:`ContractError` naming ``source``, the stage ``label`` and a few of the
    missing, unexpected or misshapen tensors otherwise (the file's weights do not belong
    to the network its config describes)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    if missing or unexpected:
        parts = [f"{len(names)} {what} ({_few(names)})" for names, what in
                 ((missing, "missing"), (unexpected, "unexpected")) if names]
        raise ContractError(f"{source}: {label}: the weights do not fit the network its "
                            f"config describes: tensors {' and '.join(parts)}")
    for key, value in weights.items():
        shape = tuple(getattr(value, "shape", ()))
        if not hasattr(value, "shape") or shape != tuple(expected[key].shape):
            raise ContractError(f"{source}: {label}: tensor {key!r} has shape "
                                f"{list(shape)} where the network needs "
                                f"{list(expected[key].shape)}")
    model.load_state_dict(weights)


def _few(names: list[str], shown: int = 3) -> str:
    more = f", and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(repr(n)[:80] for n in names[:shown]) + more
