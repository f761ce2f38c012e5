"""A stage that starts from a trained checkpoint and adds domains (``config.init``).

Wraps the stage of ``config.stage.kind`` (whole image or patch) and changes only what
adaptation needs:

- **the model**: the checkpoint's architecture with its domains plus the new ones, its
  weights loaded and the new domains initialised from their sources
  (:func:`unilandmark.adapt.transplant`), shared parts frozen or at a lower learning rate
  (``parameter_groups``);
- **the schedule**: old domains listed under ``domains`` are replayed with as many
  samples per epoch as the new domains have (drawn at random from their whole training
  split, so replay never drowns the new domain), or only validated (``replay: false``,
  and always with ``shared: frozen``);
- **forgetting**: the old domains' validation before adaptation is measured once, logged
  and stored in the checkpoint (``adaptation.before``); each validation logs it again
  beside the current figure;
- **the checkpoint**: the old domains that are not listed keep their metadata (and, in
  the model, their weights), so one checkpoint serves old and new domains.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...checkpoints.checkpoint import load_checkpoint, stage_chain
from ...core.errors import InputError
from ...data.sizes import size_advice
from ...models import build_model
from ...models import surgery as adapt
from ..config import ExperimentConfig
from .base import Stage

#: fields of a patch stage that the old domains' refinement was trained with
PATCH_FIELDS = ("patch_size", "scale", "scale_mm", "sigma")


def resolve_checkpoint(name: str) -> Path:
    """``builtin`` (or a built-in model's name: ``head``, ``head-mean``) -> the installed
    model file; anything else is a path."""
    from ...checkpoints.builtin import model_path

    return model_path(name)


def init_stage(config: ExperimentConfig) -> tuple[int, dict]:
    """(index, state) of the checkpoint stage ``config.init`` starts from."""
    init = config.init
    chain = stage_chain(load_checkpoint(resolve_checkpoint(init.checkpoint)))
    kind = config.stage.kind
    index = init.stage if init.stage is not None else (0 if kind == "image" else 1)
    kinds = [s["kind"] for s in chain]
    if index >= len(chain):
        raise InputError(f"init.stage {index}: {init.checkpoint} has {len(chain)} stage(s) "
                         f"({', '.join(kinds)})")
    if kinds[index] != kind:
        raise InputError(f"init.stage {index} of {init.checkpoint} is a {kinds[index]} stage, "
                         f"but this stage's kind is {kind}; its stages: {', '.join(kinds)}")
    return index, chain[index]


class AdaptedStage(Stage):
    def __init__(self, inner: Stage, config: ExperimentConfig, device: torch.device,
                 log=print):
        self.inner, self.config, self.device, self.log = inner, config, device, log
        self.kind = inner.kind
        init = config.init
        self.index, source = init_stage(config)
        self.weights = {k: v.float() if v.is_floating_point() else v
                        for k, v in source["model"].items()}
        self.old_meta: dict[str, dict] = source["domains"]
        self.old_config = ExperimentConfig.model_validate(source["config"])
        self._check_model(config)
        listed = dict(inner.domains)
        self.new = [d for d in listed if d not in self.old_meta]
        self.old_listed = [d for d in listed if d in self.old_meta]
        if not self.new:
            raise InputError(f"init: every domain under domains ({sorted(listed)}) is already "
                             f"in {init.checkpoint}; list the new domain's data")
        self._check_old_domains(config)
        if init.shared == "frozen" and init.replay and self.old_listed:
            log(f"shared: frozen: the old domains' parts do not train, so {self.old_listed} "
                "are only validated (replay has no effect)")
        self.replayed = self.old_listed if init.shared == "finetune" and init.replay else []
        self.domains = {**{n: int(m["num_landmarks"]) for n, m in self.old_meta.items()},
                        **listed}
        self.before: dict[str, dict] = {}
        self.report: adapt.TransplantReport | None = None
        self._warn_sizes()

    # -- checks -------------------------------------------------------------------------
    def _check_model(self, config: ExperimentConfig) -> None:
        old = self.old_config.model
        if "model" in config.model_fields_set and config.model != old:
            raise InputError(f"init: model {config.model.model_dump()} differs from the "
                             f"checkpoint's {old.model_dump()}; an adapted model keeps the "
                             "checkpoint's architecture (leave model out)")
        if config.stage.kind == "patch":
            for name in PATCH_FIELDS:
                mine, theirs = getattr(config.stage, name), getattr(self.old_config.stage, name)
                if mine != theirs:
                    raise InputError(f"init: stage.{name} is {mine}, but the checkpoint's "
                                     f"patch stage used {theirs}; its old domains' refinement "
                                     "needs the same patch settings")

    def _check_old_domains(self, config: ExperimentConfig) -> None:
        by_name = {d.name: d for d in config.domains}
        for name in self.old_listed:
            meta = self.old_meta[name]
            names = self._landmark_names(name)
            if list(names) != list(meta["landmark_names"]):
                raise InputError(f"domain {name}: its dataset's landmarks differ from the "
                                 f"checkpoint's domain {name} ({len(names)} vs "
                                 f"{meta['num_landmarks']}); give a new domain another name")
            dc = by_name.get(name)
            if self.kind == "image" and dc is not None and (
                    list(dc.input_size) != list(meta["input_size"]) or
                    dc.resize != meta.get("resize", "stretch")):
                raise InputError(f"domain {name}: input_size {list(dc.input_size)} / resize "
                                 f"{dc.resize} differ from the checkpoint's "
                                 f"{meta['input_size']} / {meta.get('resize', 'stretch')}; "
                                 "an old domain keeps its input")

    def _landmark_names(self, domain: str) -> list[str]:
        return list(self.inner.domain_data[domain].records.spec.landmark_names)

    def _warn_sizes(self) -> None:
        if self.kind != "image":
            return
        for name in self.new:
            d = self.inner.domain_data[name]
            sizes = [g.original_size for g in d.train.geometries]
            advice = size_advice(sizes, d.train.input_size, d.train.mode,
                                 f"domain {name}'s training images")
            for text in advice.warnings:
                self.log(f"warning: {text}")

    # -- the model ----------------------------------------------------------------------
    def resolved_config(self, config: ExperimentConfig) -> ExperimentConfig:
        config = self.inner.resolved_config(config)
        return config.model_copy(update={"model": self.old_config.model})

    def build_model(self, config: ExperimentConfig) -> nn.Module:
        init = config.init
        mc = self.old_config.model
        model = build_model(mc.name, self.domains, **mc.kwargs())
        old = {n: list(m["landmark_names"]) for n, m in self.old_meta.items()}
        new = {n: self._landmark_names(n) for n in self.new}
        self.report = adapt.transplant(model, self.weights, old, new, dict(init.domains),
                                       mc.name, mc.kwargs())
        frozen = adapt.freeze(model, self.new, init.shared)
        for line in self.report.summary():
            self.log(f"init from {init.checkpoint} (stage {self.index}): {line}")
        total = sum(p.numel() for p in model.parameters())
        trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self.log(f"shared parts {init.shared}: {trained:,} of {total:,} parameters train"
                 + (f" ({len(frozen)} tensors frozen)" if frozen else
                    f", shared and old-domain parts at {init.shared_lr_scale} x the "
                    "learning rate"))
        self.before = self._measure_before(model)
        return model

    def parameter_groups(self, model: nn.Module, config: ExperimentConfig) -> list[dict]:
        init = config.init
        return adapt.parameter_groups(model, self.new, init.shared, init.shared_lr_scale,
                                      config.optim.lr)

    def _measure_before(self, model: nn.Module) -> dict[str, dict]:
        """The old listed domains' validation with the checkpoint's weights (the
        transplant leaves them exactly as they were)."""
        if not any(self._validates(d) for d in self.old_listed):
            return {}
        model.to(self.device)
        scores = self.inner.validate(model, self.device)
        before = {d: _brief(scores[d]) for d in self.old_listed if d in scores}
        for d, s in before.items():
            self.log(f"before adaptation: {d} {s['mre']:.3f} {s['unit']} validation MRE")
        return before

    def _validates(self, domain: str) -> bool:
        return getattr(self.inner.domain_data[domain], "val", None) is not None

    # -- the schedule -------------------------------------------------------------------
    def sizes(self) -> dict[str, int]:
        """New domains: their samples (a single one counts twice: a batch needs two);
        replayed old domains: as many as the new domains have together."""
        sizes = self.inner.sizes()
        out = {d: max(2, sizes[d]) for d in self.new}
        for d in self.replayed:
            out[d] = min(sizes[d], sum(out[n] for n in self.new))
        return out

    def batch(self, domain, indices, generator, device):
        full = self.inner.sizes()[domain]
        if domain in self.replayed and full > self.sizes()[domain]:
            # a random subset of the whole split, new every batch
            pick = torch.randperm(full, generator=generator)[:len(indices)]
            indices = np.sort(pick.numpy())
        elif domain in self.new:
            indices = np.asarray(indices) % full  # one image drawn twice, augmented apart
        return self.inner.batch(domain, indices, generator, device)

    def loss(self, domain, outputs, targets):
        return self.inner.loss(domain, outputs, targets)

    # -- validation and checkpoints ------------------------------------------------------
    def validate(self, model, device):
        scores = self.inner.validate(model, device)
        for d, before in self.before.items():
            if d in scores:
                now = scores[d]["mre"]
                scores[d]["before_mre"] = before["mre"]
                change = 100.0 * (now / before["mre"] - 1) if before["mre"] > 0 else 0.0
                self.log(f"old domain {d}: {now:.3f} {before['unit']} (before adaptation "
                         f"{before['mre']:.3f}, {change:+.1f} %)")
        return scores

    def has_validation(self) -> bool:
        """Only when every new domain validates; otherwise the best checkpoint is the
        last (old domains alone must not choose the epoch for a new one)."""
        return all(self._validates(d) for d in self.new)

    def reference(self):
        return self.inner.reference()

    def checkpoint_fields(self, validation):
        fields = self.inner.checkpoint_fields(validation)
        init = self.config.init
        # old domains keep the checkpoint's metadata (their data and preprocessing did not
        # change), except a patch stage's gates where this run validated them again
        fresh = set(self.new) | ({d for d in self.old_listed if d in validation}
                                 if self.kind == "patch" else set())
        fields["domains"] = {**{n: m for n, m in self.old_meta.items() if n not in fresh},
                             **{n: m for n, m in fields["domains"].items() if n in fresh}}
        fields["adaptation"] = {
            "checkpoint": init.checkpoint, "stage": self.index,
            "sources": dict(init.domains), "shared": init.shared,
            "shared_lr_scale": init.shared_lr_scale, "replayed": list(self.replayed),
            "old_domains": list(self.old_meta), "new_domains": list(self.new),
            "before": self.before}
        return fields

    @property
    def domain_data(self):
        return self.inner.domain_data


def _brief(score: dict) -> dict:
    return {k: score[k] for k in ("mre", "median", "unit", "sdr") if k in score}
