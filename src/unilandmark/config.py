"""Experiment configuration: pydantic models <-> YAML, with dotted ``key=value`` overrides.

The resolved configuration is saved in every checkpoint, so a checkpoint alone can rebuild
its model and preprocessing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

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
    batch_size: int = 4
    mixing: str = "round-robin"
    seed: int = 0
    amp: bool = True
    device: str = "auto"
    threads: int | None = None
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


def set_dotted(data: dict, key: str, value: Any) -> None:
    """Set ``a.b.c`` (list items by index, e.g. ``domains.0.root``) in a nested dict."""
    parts = key.split(".")
    node: Any = data
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[int(part)]
        else:
            node = node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                data: dict | None = None) -> ExperimentConfig:
    """Read YAML (or take ``data``), apply ``key=value`` overrides, validate.

    Relative dataset roots and out/cache dirs in a YAML file stay relative to the current
    working directory, as typed on the command line.
    """
    if data is None:
        if path is None:
            raise ValueError("give a config path or data")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such config file")
        data = yaml.safe_load(path.read_text()) or {}
    data = yaml.safe_load(yaml.safe_dump(data))  # deep copy of plain types
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected key=value")
        key, value = item.split("=", 1)
        set_dotted(data, key.strip(), yaml.safe_load(value))
    return ExperimentConfig.model_validate(data)


def dump_config(config: ExperimentConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
