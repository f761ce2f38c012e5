"""Experiment configuration: pydantic models <-> YAML, with dotted ``key=value`` overrides.

The resolved configuration is saved in every checkpoint, so a checkpoint alone can rebuild
its model and preprocessing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .data.augment import AugmentConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DomainConfig(_Strict):
    """One dataset trained as one domain."""

    name: str = Field(description="domain key, e.g. head; unique within a config")
    dataset: str = Field(description="adapter name, see `unilandmark datasets list`")
    root: str
    options: dict[str, Any] = Field(default_factory=dict)
    train_split: str = "train"
    val_split: str | None = "val"
    input_size: tuple[int, int] = (416, 512)
    resize: str = "stretch"
    sigma: float = 3.0
    sigma_mm: float | None = None
    loss_weight: float = 1.0


class ModelConfig(_Strict):
    name: str = "gu2net"
    width: int = 64
    depth: int = 4
    global_width: int = 128
    dilations: tuple[int, ...] = (1, 2, 5, 2, 1)

    def kwargs(self) -> dict[str, Any]:
        out = {"width": self.width, "depth": self.depth}
        if self.name.startswith("gu2net"):
            out.update(global_width=self.global_width, dilations=self.dilations)
        return out


class OptimConfig(_Strict):
    """Adam with a cyclic learning rate between ``lr`` and ``max_lr`` (GU2Net's choice)."""

    lr: float = 1e-4
    max_lr: float = 1e-2
    schedule: str = "cyclic"  # cyclic | constant | cosine
    cycle_epochs: float = 2.0  # epochs from lr to max_lr (half a cycle)
    weight_decay: float = 0.0
    loss: str = "bce"  # heatmap codecs: bce | mse | awing

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v):
        if v not in ("cyclic", "constant", "cosine"):
            raise ValueError(f"unknown schedule {v!r}; expected cyclic, constant or cosine")
        return v


class TrainConfig(_Strict):
    epochs: int = 100
    batch_size: int = Field(default=4, ge=1)
    mixing: str = "round-robin"
    seed: int = 0
    amp: bool = True
    device: str = "auto"
    threads: int | None = Field(default=None, ge=1)
    cache_dir: str | None = "cache"
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    val_every: int = 1
    max_steps_per_epoch: int | None = None


class ExperimentConfig(_Strict):
    name: str = "experiment"
    out_dir: str = "runs/experiment"
    domains: list[DomainConfig]
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @field_validator("domains")
    @classmethod
    def _unique(cls, v):
        names = [d.name for d in v]
        if len(set(names)) != len(names):
            raise ValueError(f"domain names must be unique, got {names}")
        if not v:
            raise ValueError("at least one domain is needed")
        return v


class ConfigError(ValueError):
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
            raise ValueError("give a config path or data")
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
