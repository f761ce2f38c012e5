"""What a training stage supplies to the one training loop (``training.fit``).

A stage owns its data and targets; the loop owns the model's optimisation, devices, AMP,
DDP, resume, checkpoints and logs. Every stage kind (whole image, patch refinement, ...)
implements :class:`Stage`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from ...core.errors import InputError
from ...core.metrics import radial_errors, summarise
from ...core.types import DatasetSpec, Record, error_unit, truth_points
from ...data.adapters.catalog import build_dataset
from ...models import build_model
from ..config import DomainConfig, ExperimentConfig


class Stage(ABC):
    """One kind of training stage.

    ``domains`` maps each domain to its number of landmarks (the model's outputs).
    The loop draws batches by ``schedule sizes`` (samples per domain), asks ``batch`` for
    inputs and targets on the device, ``loss`` for the loss, and ``validate`` once per
    validation epoch for per-domain errors.
    """

    kind: str = ""
    domains: dict[str, int]

    @abstractmethod
    def build_model(self, config: ExperimentConfig) -> nn.Module:
        """The model this stage trains (any registry entry with per-domain outputs)."""

    @abstractmethod
    def sizes(self) -> dict[str, int]:
        """Samples per domain in one epoch (the batch schedule's units)."""

    @abstractmethod
    def batch(self, domain: str, indices: np.ndarray, generator: torch.Generator,
              device: torch.device) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(inputs (B, C, H, W), targets) for samples ``indices`` of ``domain``."""

    @abstractmethod
    def loss(self, domain: str, outputs: dict, targets: dict) -> torch.Tensor:
        """The scalar loss of a batch (domain weight included)."""

    @abstractmethod
    def validate(self, model: nn.Module, device: torch.device) -> dict[str, dict]:
        """{domain: {"mre", "sd", "median", "unit", "sdr", "per_landmark_mre"}}; domains
        without validation data are left out."""

    def resolved_config(self, config: ExperimentConfig) -> ExperimentConfig:
        """The config as trained (e.g. with inherited domains filled in)."""
        return config

    def parameter_groups(self, model: nn.Module, config: ExperimentConfig) -> list[dict]:
        """The optimiser's parameter groups (frozen parameters left out). A group's
        ``lr_scale`` (default 1) scales the learning-rate schedule for that group."""
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def has_validation(self) -> bool:
        """Whether any domain validates (without, the best checkpoint is the last)."""
        return any(getattr(d, "val", None) is not None
                   for d in getattr(self, "domain_data", {}).values())

    def reference(self) -> dict[str, float] | None:
        """Per-domain validation MRE the selection score is relative to (None: the first
        validation of this run)."""
        return None

    @abstractmethod
    def checkpoint_fields(self, validation: dict[str, dict]) -> dict:
        """What a checkpoint keeps to predict without the training data (``domains``
        metadata, and for refinement stages the previous stages)."""


class RefinementGate:
    """What every refinement stage (``patch``, ``volume-patch``) shares: its domains
    resolved against the previous stage's, the model, the (volume, landmark) pairs as
    samples, the codec's loss, the per-landmark gate on the validation error and the
    previous stage's error as the reference. Needs ``self.stage_config`` (``previous``,
    ``gate``), ``self.codec`` and ``self.domain_data`` of objects with ``records``,
    ``pairs`` and ``previous_score``."""

    def resolve_domains(self, config: ExperimentConfig, previous: dict,
                        previous_domains: dict) -> list[DomainConfig]:
        """The domains to refine: the config's, or the previous stage's; a domain the
        previous stage does not know is refused."""
        domain_configs = config.domains or [
            DomainConfig.model_validate(d) for d in previous["config"]["domains"]]
        unknown = [d.name for d in domain_configs if d.name not in previous_domains]
        if unknown:
            raise InputError(f"{self.stage_config.previous}: the previous stage has no "
                             f"domain(s) {unknown}; it knows {sorted(previous_domains)}")
        self.resolved_domains = domain_configs
        return domain_configs

    def build_model(self, config: ExperimentConfig) -> nn.Module:
        return build_model(config.model.name, self.domains, **config.model.kwargs())

    def resolved_config(self, config: ExperimentConfig) -> ExperimentConfig:
        return config.model_copy(update={"domains": self.resolved_domains})

    def sizes(self) -> dict[str, int]:
        return {n: len(d.pairs) for n, d in self.domain_data.items()}

    def loss(self, domain, outputs, targets):
        d = self.domain_data[domain]
        return self.codec.loss(outputs, targets) * d.config.loss_weight

    def gate(self, d, score: dict) -> list[bool]:
        """Per landmark: does this stage lower the validation error (or is it not
        gated)?"""
        k = d.records.spec.num_landmarks
        if not self.stage_config.gate or d.previous_score is None:
            return [True] * k
        before, after = d.previous_score["per_landmark_mre"], score["per_landmark_mre"]
        return [bool(not np.isfinite(b) or a <= b) for a, b in zip(after, before, strict=True)]

    def reference(self):
        return {n: d.previous_score["mre"] for n, d in self.domain_data.items()
                if d.previous_score is not None}


def selection_score(validation: dict[str, dict], reference: dict[str, float]) -> float:
    """A unit-free score to pick the best epoch across domains (lower is better).

    The geometric mean over domains of each domain's validation MRE divided by its
    reference MRE (the previous stage's, or this run's first validation): millimetres and
    pixels never mix, each domain's improvement counts the same, and 1.0 means "as good
    as the reference".
    """
    logs = [math.log(max(v["mre"], 1e-12) / max(reference[d], 1e-12))
            for d, v in validation.items() if d in reference and math.isfinite(v["mre"])]
    return math.exp(sum(logs) / len(logs)) if logs else float("nan")


@dataclass
class DomainRecords:
    """A domain's dataset with its train and validation records resolved."""

    config: DomainConfig
    spec: DatasetSpec
    train: list[Record]
    val: list[Record]


def load_domain(dc: DomainConfig) -> DomainRecords:
    """Build the dataset of a domain and resolve its splits, with clear errors.

    An unknown split name is an error listing the known ones; an empty split is an error;
    ``val_split: null`` means no validation (the best checkpoint is then the last epoch).
    """
    spec = build_dataset(dc.dataset, dc.root, **dc.options)
    spec = spec if spec.domain == dc.name else replace(spec, domain=dc.name)
    splits = {"train_split": dc.train_split}
    if dc.val_split is not None:
        splits["val_split"] = dc.val_split
    resolved = {}
    for key, split in splits.items():
        if split not in spec.splits:
            known = ", ".join(sorted(spec.splits))
            raise InputError(f"domain {dc.name}: {key} {split!r} is not a split of "
                             f"{spec.name}; known splits: {known}")
        records = spec.split_records(split)
        if not records:
            raise InputError(f"domain {dc.name}: {key} {split!r} of {spec.name} has no "
                             "records with an image")
        resolved[key] = records
    return DomainRecords(dc, spec, resolved["train_split"], resolved.get("val_split", []))


def score_domain(pred: np.ndarray, records: list[Record], thresholds) -> dict:
    """Validation errors of (N, K, 2) predictions in original pixels: mm where every
    record has a spacing, else pixels."""
    truth = truth_points(records)
    unit = error_unit(records)
    scale = np.array([r.spacing for r in records])[:, None, :] if unit == "mm" else None
    errors = radial_errors(pred, truth, scale)
    s = summarise(errors, thresholds)
    per = np.nanmean(np.where(np.isfinite(errors), errors, np.nan), axis=0)
    return {"mre": s["mre"], "sd": s["sd"], "median": s["median"], "unit": unit,
            "sdr": s["sdr"], "per_landmark_mre": [float(v) for v in per]}
