"""Experiment configuration: pydantic models <-> YAML, with dotted ``key=value`` overrides.

One schema for every training stage. ``stage.kind`` says what the stage learns:

- ``image`` (the default): landmarks on the whole image resized into each domain's
  network input (GU2Net or any family), from the domains listed under ``domains``.
- ``volume``: landmarks in whole volumes resampled into each domain's input (3-D models).
- ``volume-patch``: coarse to fine in volumes: cubes around a trained volume stage's
  estimates, at full resolution by default (3-D models or the 2.5-D ``triplanar``).
- ``patch``: a coarse-to-fine refinement stage on top of a trained checkpoint
  (``stage.previous``, itself any stage or cascade): patches cropped around the previous
  stage's estimates, at ``stage.scale`` original pixels (or ``stage.scale_mm`` mm) per
  patch pixel. Its domains default to the previous stage's (their datasets, splits and
  ground truth); list ``domains`` to refine a subset or to change the ground truth
  (e.g. another annotator).

The resolved configuration is saved in every checkpoint, so a checkpoint alone can rebuild
its model and preprocessing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ..core.errors import InputError
from ..core.limits import PATCH_SCALE_MM_RANGE, PATCH_SCALE_RANGE, input_size_fault
from ..models import model_entry, models_for, stage_models
from ..models.config import ModelConfig, StrictModel
from .augment import AugmentConfig


class DomainConfig(StrictModel):
    """One dataset trained as one domain."""

    name: str = Field(description="domain key, e.g. head; unique within a config")
    dataset: str = Field(description="adapter name, see `unilandmark datasets list`")
    root: str
    options: dict[str, Any] = Field(default_factory=dict)
    train_split: str = "train"
    val_split: str | None = Field("val", description="null: no validation (best = last)")
    input_size: tuple[int, int] | tuple[int, int, int] = Field(
        (416, 512), description="network input, (W, H) pixels for images or (X, Y, Z) voxels "
                                "for volumes (stage kind volume)")
    resize: str = "stretch"
    sigma: float = Field(3.0, gt=0)
    sigma_mm: float | None = Field(None, gt=0)
    loss_weight: float = Field(1.0, ge=0)
    flip_pairs: list[tuple[str, str]] = Field(
        default_factory=list,
        description="landmark names that swap under a left-right mirror (e.g. left/right "
                    "lung apex); used by flip augmentation and the orientation decision")

    @field_validator("input_size")
    @classmethod
    def _positive_size(cls, v):
        if min(v) < 8:
            raise InputError(f"input_size must be at least 8 pixels (voxels) per side, got "
                             f"{list(v)}")
        fault = input_size_fault(list(v))  # the limits a model file is held to
        if fault:
            raise InputError(fault)
        return v


class OptimConfig(StrictModel):
    """Adam with a cyclic learning rate between ``lr`` and ``max_lr`` (GU2Net's choice)."""

    lr: float = Field(1e-4, gt=0)
    max_lr: float = Field(1e-2, gt=0)
    schedule: Literal["cyclic", "constant", "cosine"] = "cyclic"
    cycle_epochs: float = Field(2.0, gt=0, description="epochs from lr to max_lr")
    weight_decay: float = Field(0.0, ge=0)
    loss: Literal["bce", "mse", "awing"] = "bce"


class TrainConfig(StrictModel):
    epochs: int = Field(100, gt=0)
    batch_size: int = Field(4, ge=2, description="per step (per process under DDP)")
    mixing: str = "round-robin"
    seed: int = 0
    amp: bool = True
    device: str = "auto"
    threads: int | None = Field(None, ge=1)
    speed: Literal["plain", "channels_last", "channels_last+bf16", "compile",
                   "channels_last+compile"] = Field(
        "plain", description="memory format / bf16 autocast on the CPU / torch.compile of "
        "the training step (unilandmark.speed; docs/results.md measures them)")
    cache_dir: str | None = "cache"
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    val_every: int = Field(1, gt=0)
    max_steps_per_epoch: int | None = Field(None, gt=0)


class ImageStageConfig(StrictModel):
    """Landmarks on the whole image, resized into each domain's network input."""

    kind: Literal["image"] = "image"


class PatchStageConfig(StrictModel):
    """A refinement stage: a heatmap model on patches around the previous estimates.

    The patch grid: ``patch_size`` x ``patch_size`` pixels at ``scale`` original pixels
    per patch pixel (or ``scale_mm`` mm, per image from its spacing). It trains on
    patches centred on the ground truth plus a jitter drawn from the previous stage's own
    validation error vectors (per landmark, times ``jitter_factor``) plus Gaussian noise
    of ``jitter_floor`` patch pixels plus a uniform shift of up to ``jitter_uniform`` patch
    pixels in x and y, so it learns to correct the mistakes the previous stage makes and
    to find a landmark anywhere in the patch by its appearance (without the uniform part a
    refiner learns that the landmark is near the centre and keeps large errors).
    ``train.augment`` applies to the patches: its rotation and scale to the
    crop (its translation is replaced by the jitter), its intensity terms to the pixels.
    Every landmark inside a patch is a target (the others are trained to zero). At
    prediction, ``test_offsets`` > 0 averages five crops shifted by that many
    patch pixels. With ``gate`` the stage applies only to the landmarks whose validation
    error it improves.
    """

    kind: Literal["patch"]
    previous: str = Field(description="checkpoint of the stage (or cascade) to refine")
    patch_size: int = Field(64, ge=16)
    scale: float = Field(2.0, ge=PATCH_SCALE_RANGE[0], le=PATCH_SCALE_RANGE[1],
                         description="original pixels per patch pixel")
    scale_mm: float | None = Field(None, ge=PATCH_SCALE_MM_RANGE[0],
                                   le=PATCH_SCALE_MM_RANGE[1],
                                   description="mm per patch pixel instead")
    sigma: float = Field(2.0, gt=0, description="Gaussian sigma in patch pixels")
    jitter_factor: float = Field(1.0, ge=0)
    jitter_floor: float = Field(2.0, ge=0, description="patch pixels")
    jitter_uniform: float = Field(0.0, ge=0, description="patch pixels, +- in x and y")
    test_offsets: float = Field(0.0, ge=0, description="patch pixels; 0: one crop")
    gate: bool = True


class VolumeStageConfig(StrictModel):
    """Landmarks in whole volumes (CT, CBCT, MRI): each volume resampled to ``spacing`` mm
    (isotropic, along its own axes) and centred in its domain's ``input_size`` (X, Y, Z
    voxels); intensities by ``modality``: ``mr`` the 0.5th..99.5th percentile window, ``ct``
    the Hounsfield window ``ct_window``. Points stay exact through the resampling
    (``training.volumes``); errors are scored in mm in 3-D."""

    kind: Literal["volume"] = "volume"
    spacing: float = Field(4.0, gt=0, description="mm per network voxel (isotropic)")
    modality: Literal["mr", "ct"] = "mr"
    ct_window: tuple[float, float] = (-1000.0, 2000.0)
    presence_threshold: float | None = Field(
        None, ge=0, le=1, description="heatmap peak below which a landmark is reported "
        "absent; null: chosen on the validation split (quality.presence)")


class VolumePatchStageConfig(StrictModel):
    """Coarse-to-fine for volumes: a 3-D model (or the 2.5-D ``triplanar`` model) on
    cubes of ``patch_size`` voxels a side around the previous volume stage's estimates,
    at ``spacing`` mm per patch voxel (null: each volume's own spacing, full resolution,
    so patch voxels ARE the volume's voxels). It trains on patches centred on the ground
    truth plus a previous-stage validation error vector of that landmark (times
    ``jitter_factor``) plus a uniform shift of up to ``jitter_mm`` per axis, rotated and
    scaled by ``train.augment`` (its translation is the jitter); every landmark inside a
    patch is a target. Intensities and orientation are the previous stage's. With
    ``gate`` the stage applies only to the landmarks whose validation error it improves.
    Its domains are the previous stage's."""

    kind: Literal["volume-patch"]
    previous: str = Field(description="checkpoint of the volume stage (or cascade) to refine")
    patch_size: int = Field(24, ge=8, description="voxels per side of the cubic patch")
    spacing: float | None = Field(None, gt=0, description="mm per patch voxel; null: the "
                                  "volume's own spacing (full resolution)")
    sigma: float = Field(1.5, gt=0, description="Gaussian sigma in patch voxels")
    jitter_factor: float = Field(1.0, ge=0)
    jitter_mm: float = Field(6.0, ge=0, description="mm, +- per axis")
    gate: bool = True
    absent_examples: bool = Field(
        True, description="an empty row means the landmark is absent from the volume: "
        "train its channel to zero there (and on patches where the previous stage looks "
        "for it); false for partly annotated sets, where it only means 'not annotated'")
    presence_threshold: float | None = Field(
        None, ge=0, le=1, description="this stage's peak below which a landmark it refines "
        "is reported absent; null: chosen on the validation split (quality.presence)")


#: stage kinds whose inputs are volumes (3-D models)
VOLUME_STAGES = ("volume", "volume-patch")

StageConfig = Annotated[ImageStageConfig | PatchStageConfig | VolumeStageConfig |
                        VolumePatchStageConfig, Field(discriminator="kind")]


class InitConfig(StrictModel):
    """Start from a trained checkpoint and add new domains (few-shot adaptation).

    The model is the checkpoint's (same architecture) with its domains plus the new ones.
    Every new domain's per-domain parts start from ``domains[new]``: an existing domain
    of the checkpoint, or ``mean`` (their mean over the checkpoint's domains); parts whose
    shape depends on the landmark count (output layers) start fresh unless the landmark
    names equal the source's. Old domains listed under the experiment's ``domains`` are
    replayed (``replay``) or only validated, so forgetting is measured. See docs/adapt.md.
    """

    checkpoint: str = Field(description="checkpoint (or cascade) file, or `builtin`")
    stage: int | None = Field(None, ge=0, description="stage of the checkpoint's chain to "
                              "start from (0: whole image); default 0 for image stages, "
                              "1 for patch stages")
    domains: dict[str, str] = Field(default_factory=dict, description="new domain -> "
                                    "source domain of the checkpoint, or mean")
    shared: Literal["finetune", "frozen"] = Field(
        "finetune", description="frozen: only the new domains' parts train")
    shared_lr_scale: float = Field(0.1, gt=0, le=1, description="learning-rate factor of "
                                   "the shared and old-domain parts (finetune)")
    replay: bool = Field(True, description="train the old domains listed under domains "
                         "too (else they are only validated)")


class ExperimentConfig(StrictModel):
    name: str = "experiment"
    out_dir: str = "runs/experiment"
    stage: StageConfig = Field(default_factory=ImageStageConfig)
    domains: list[DomainConfig] = Field(default_factory=list)
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    init: InitConfig | None = Field(None, description="start from a trained checkpoint "
                                    "and add domains (docs/adapt.md)")

    @field_validator("domains")
    @classmethod
    def _unique(cls, v):
        names = [d.name for d in v]
        if len(set(names)) != len(names):
            raise InputError(f"domain names must be unique, got {names}")
        return v

    @model_validator(mode="after")
    def _domains_for_image_stages(self):
        if self.stage.kind == "image" and not self.domains:
            raise InputError("at least one domain is needed (stage kind image)")
        return self

    @model_validator(mode="after")
    def _model_serves_the_stage(self):
        entry = model_entry(self.model.name)
        dims = 3 if self.stage.kind in VOLUME_STAGES else 2
        if dims not in entry.dims:
            raise ValueError(
                f"model.name {self.model.name!r} is a {min(entry.dims)}-D model and cannot "
                f"serve a {self.stage.kind} stage ({dims}-D); models that can: "
                f"{', '.join(models_for(dims))}")
        # a volume stage takes whole-input models ("image"); a volume patch stage a
        # refining 3-D model ("patch") or one made for it only ("volume-patch")
        kinds = {"volume": ("image",), "volume-patch": ("patch", "volume-patch")}.get(
            self.stage.kind, (self.stage.kind,))
        if not set(kinds) & set(entry.stages):
            able = [m for k in kinds for m in stage_models(k) if dims in model_entry(m).dims]
            why = ("a patch stage refines each landmark from its own heatmap channel, which "
                   f"this model's {entry.family} output does not have"
                   if "patch" in kinds else "this model only refines patches")
            raise InputError(
                f"model.name {self.model.name!r} cannot serve as a {self.stage.kind} stage "
                f"({why}); models that can: "
                f"{', '.join(able)}")
        return self


#: keys that may change when a run is resumed (they do not change what is learned)
RESUMABLE_CHANGES = ("name", "train.epochs", "train.threads", "train.device",
                     "train.cache_dir", "train.val_every")


def config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts (plain types)."""
    out = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, path + ".")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and \
                all(isinstance(x, dict) for x in a + b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                out += config_differences(x, y, f"{path}.{i}.")
        elif a != b:
            out.append(path)
    return out


class ConfigError(InputError):
    """A config that cannot be read or validated; the message names the file and key."""


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping from ``path``; broken YAML is a ConfigError naming file and line.

    ``yaml.safe_load`` only: loading a config never runs code from it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    try:
        with open(path, encoding="utf-8-sig") as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: {yaml_problem(err)}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings (key: value), got "
                          f"{type(data).__name__}")
    return data


def yaml_problem(err: yaml.YAMLError) -> str:
    """``line L, column C: problem`` of a YAML error (its first line when it has no mark)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if mark is None:
        return f"not valid YAML ({problem})"
    return f"line {mark.line + 1}, column {mark.column + 1}: not valid YAML ({problem})"


def set_dotted(data: dict, key: str, value: Any) -> None:
    """Set ``a.b.c`` (list items by index, e.g. ``domains.0.root``) in a nested dict.

    A path through a value that is not a section, or a list index that does not exist,
    is a ConfigError naming the key.
    """
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise ConfigError(f"--set {key!r}: expected a dotted key such as train.epochs")
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.lstrip("-").isdigit():
                raise ConfigError(f"--set {key}: {'.'.join(parts[:depth]) or 'the config'} is a "
                                  f"list; use an index 0..{len(node) - 1}, not {part!r}")
            index = int(part)
            if not 0 <= index < len(node):
                raise ConfigError(f"--set {key}: {'.'.join(parts[:depth])} has {len(node)} "
                                  f"item(s) (indices 0..{len(node) - 1}); no item {index}")
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            parent = ".".join(parts[:depth])
            raise ConfigError(f"--set {key}: {parent} is a value ({node!r}), not a section; "
                              f"it has no key {part!r}")


def validate_model(model: type[BaseModel], data: Any, source: str) -> BaseModel:
    """``model.model_validate(data)``; a ValidationError becomes one ConfigError naming
    ``source`` (a file), each bad key, and for an unknown key the valid ones."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            loc = ".".join(str(v) for v in e["loc"]) or "(top level)"
            if e["type"] == "extra_forbidden":
                valid = _valid_keys(model, e["loc"][:-1])
                problems.append(f"unknown key {loc!r}" +
                                (f" (valid here: {', '.join(valid)})" if valid else ""))
            elif e["type"] == "missing":
                problems.append(f"{loc}: missing")
            else:
                shown = repr(e.get("input"))
                shown = shown if len(shown) <= 60 else shown[:57] + "..."
                problems.append(f"{loc}: {e['msg']} (got {shown})")
        raise ConfigError(f"{source}: invalid config: " + "; ".join(problems)) from None


def _valid_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the section at ``loc`` (list indices skipped), [] when unknown."""
    import typing

    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        annotation = fields[part].annotation
        args = [a for a in typing.get_args(annotation) if isinstance(a, type)]
        candidates = [annotation, *args]
        current = next((c for c in candidates if isinstance(c, type) and
                        issubclass(c, BaseModel)), None)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                data: dict | None = None) -> ExperimentConfig:
    """Read YAML (or take ``data``), apply ``key=value`` overrides, validate.

    Relative dataset roots and out/cache dirs in a YAML file stay relative to the current
    working directory, as typed on the command line. Every fault is a ConfigError (or
    FileNotFoundError) naming the file, the line or the key.
    """
    if data is None:
        if path is None:
            raise InputError("give a config path or data")
        data = read_yaml(path)
    data = yaml.safe_load(yaml.safe_dump(data))  # deep copy of plain types
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, value = item.split("=", 1)
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: the value is {yaml_problem(err)}") from None
        set_dotted(data, key.strip(), parsed)
    source = str(path) if path is not None else "config"
    return validate_model(ExperimentConfig, data, source)


def dump_config(config: ExperimentConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
