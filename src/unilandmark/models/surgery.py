"""Model surgery for adaptation: a trained model plus new domains.

Every model of the registry keeps its per-domain parts in ``nn.ModuleDict``s keyed by
domain name (GU2Net: the 1x1 input and output convs, the depthwise convs and BatchNorm of
every separable block, the whole global network; FamilyNet: the 1x1 input, the BatchNorm
of every block, the head; the plain U-Net: the 1x1 input and output). Everything else is
shared by all domains. A weight's *part* is therefore read off its state-dict key:
``<module dict>.<domain>.<rest>`` is domain ``domain``'s, any other key is shared.

:func:`transplant` builds the new model's weights: every old domain's and shared weight
is copied from the checkpoint; each new domain's parts are copied from its source domain
(or the mean over the old domains) wherever the shape matches, except the parts whose
shape depends on the landmark count (found by probing the architecture with two landmark
counts): those are copied only when the new domain's landmark names equal the source's,
and otherwise keep the fresh initialisation of the model's constructor (heatmap outputs
start at the background prior, ``models.layers.init_prior_bias``).

:func:`freeze` and :func:`parameter_groups` decide what trains: ``finetune`` trains
everything, the shared and old-domain parts at ``shared_lr_scale`` times the learning
rate; ``frozen`` trains only the new domains' parts (frozen BatchNorm layers also keep
their running statistics: they normalise in evaluation mode).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..core.errors import InputError
from . import build_model

#: source name meaning "the mean over the checkpoint's domains"
MEAN = "mean"
SHARED_MODES = ("finetune", "frozen")


def domain_dict_prefixes(model: nn.Module) -> list[str]:
    """State-dict prefixes (``local.inputs``, ...) of the model's per-domain ModuleDicts:
    those keyed by exactly the model's domains (``model.domains``)."""
    domains = set(getattr(model, "domains", []))
    if not domains:
        raise InputError(f"{type(model).__name__} has no per-domain parts (no .domains)")
    return [name for name, m in model.named_modules()
            if isinstance(m, nn.ModuleDict) and name and set(m.keys()) == domains]


def split_key(key: str, prefixes: list[str], domains) -> tuple[str, str, str] | None:
    """``(prefix, domain, rest)`` of a per-domain state-dict key, None for a shared one."""
    for prefix in prefixes:
        head = prefix + "."
        if key.startswith(head):
            domain, _, rest = key[len(head):].partition(".")
            if domain in domains:
                return prefix, domain, rest
    return None


def owner_of(key: str, prefixes: list[str], domains) -> str | None:
    """The domain a state-dict key belongs to, or None for a shared weight."""
    parts = split_key(key, prefixes, domains)
    return parts[1] if parts else None


def landmark_dependent(model_name: str, model_kwargs: dict) -> set[tuple[str, str]]:
    """Per-domain modules ``(module dict prefix, module path inside the domain's entry)``
    with a weight whose shape depends on the number of landmarks (output layers, and
    inputs that take a heatmap), found by building the architecture with one and with
    two landmarks. Such a module is copied or left fresh as a whole."""
    shapes = []
    for k in (1, 2):
        model = build_model(model_name, {"probe": k}, **model_kwargs)
        prefixes = domain_dict_prefixes(model)
        shapes.append({split_key(key, prefixes, {"probe"}): tuple(v.shape)
                       for key, v in model.state_dict().items()})
    return {(parts[0], _module(parts[2])) for parts, shape in shapes[0].items()
            if parts is not None and shapes[1][parts] != shape}


def _module(rest: str) -> str:
    """``out.weight`` -> ``out``; ``weight`` -> ``""`` (the entry itself)."""
    return rest.rsplit(".", 1)[0] if "." in rest else ""


@dataclass
class TransplantReport:
    """What :func:`transplant` did, per new domain: keys copied from the source (or the
    mean), keys left at their fresh initialisation (and why)."""

    sources: dict[str, str]
    copied: dict[str, list[str]] = field(default_factory=dict)
    fresh: dict[str, dict[str, str]] = field(default_factory=dict)

    def summary(self) -> list[str]:
        lines = []
        for domain, source in self.sources.items():
            fresh = self.fresh.get(domain, {})
            what = ", ".join(sorted({_short(k) for k in fresh})) or "none"
            lines.append(f"{domain}: {len(self.copied.get(domain, []))} weights from "
                         f"{source}, {len(fresh)} fresh ({what})")
        return lines


def _short(key: str) -> str:
    """``local.outputs.hand.weight`` -> ``local.outputs.hand``: the module of a key."""
    return key.rsplit(".", 1)[0]


def transplant(model: nn.Module, old_weights: dict[str, torch.Tensor],
               old_domains: dict[str, list[str]], new_domains: dict[str, list[str]],
               sources: dict[str, str], model_name: str, model_kwargs: dict,
               ) -> TransplantReport:
    """Load ``old_weights`` (a checkpoint's state dict) into ``model`` (built with the old
    and the new domains) and initialise the new domains from their sources.

    ``old_domains`` / ``new_domains``: {domain: landmark names}; ``sources``: {new domain:
    old domain or ``mean``}. Raises ValueError naming the fault when the checkpoint does
    not fit the model (another architecture) or a source is unknown.
    """
    for new, source in sources.items():
        if new not in new_domains:
            raise InputError(f"init.domains names {new!r}, which is not a new domain "
                             f"(new domains: {sorted(new_domains)})")
        if source != MEAN and source not in old_domains:
            raise InputError(f"init.domains.{new}: source {source!r} is not a domain of the "
                             f"checkpoint; it knows {sorted(old_domains)} (or use mean)")
    missing = sorted(set(new_domains) - set(sources))
    if missing:
        raise InputError(f"new domain(s) {missing} need a source under init.domains (a "
                         f"domain of the checkpoint, {sorted(old_domains)}, or mean)")
    target = model.state_dict()
    prefixes = domain_dict_prefixes(model)
    new_keys = {k for k in target if owner_of(k, prefixes, new_domains) is not None}
    expected = set(target) - new_keys
    extra, absent = sorted(set(old_weights) - expected), sorted(expected - set(old_weights))
    if extra or absent:
        raise InputError("the checkpoint's weights do not fit its own architecture "
                         f"({model_name}): missing {absent[:5]}, unexpected {extra[:5]}")
    mismatched = [k for k in expected if tuple(old_weights[k].shape) != tuple(target[k].shape)]
    if mismatched:
        raise InputError(f"the checkpoint's weights do not fit {model_name} with its "
                         f"settings: shapes differ for {sorted(mismatched)[:5]}")
    state = {k: old_weights[k].to(target[k].dtype) for k in expected}
    dependent = landmark_dependent(model_name, model_kwargs)
    report = TransplantReport(dict(sources))
    for key in sorted(new_keys):
        prefix, domain, rest = split_key(key, prefixes, new_domains)
        source = sources[domain]
        donors = list(old_domains) if source == MEAN else [source]
        if (prefix, _module(rest)) in dependent and \
                any(list(old_domains[d]) != list(new_domains[domain]) for d in donors):
            report.fresh.setdefault(domain, {})[key] = "landmarks differ"
            state[key] = target[key]
            continue
        values = [old_weights[f"{prefix}.{d}.{rest}"] for d in donors]
        if any(tuple(v.shape) != tuple(target[key].shape) for v in values):
            report.fresh.setdefault(domain, {})[key] = "shape differs"
            state[key] = target[key]
            continue
        state[key] = _mean(values).to(target[key].dtype)
        report.copied.setdefault(domain, []).append(key)
    model.load_state_dict(state)
    return report


def _mean(values: list[torch.Tensor]) -> torch.Tensor:
    if len(values) == 1 or not values[0].is_floating_point():
        return values[0].clone()  # integer buffers (BatchNorm's batch count): the first
    return torch.stack([v.float() for v in values]).mean(0)


def trainable_names(model: nn.Module, new_domains, shared: str) -> set[str]:
    """Parameter names that train: all (``finetune``) or the new domains' (``frozen``)."""
    if shared not in SHARED_MODES:
        raise InputError(f"init.shared must be one of {SHARED_MODES}, got {shared!r}")
    names = {n for n, _ in model.named_parameters()}
    if shared == "finetune":
        return names
    prefixes = domain_dict_prefixes(model)
    return {n for n in names if owner_of(n, prefixes, new_domains) is not None}


def freeze(model: nn.Module, new_domains, shared: str) -> list[str]:
    """Set ``requires_grad`` by :func:`trainable_names`; frozen BatchNorm layers run in
    evaluation mode (a forward pre-hook), so new-domain batches never move the running
    statistics of shared or old-domain normalisation. Returns the frozen names."""
    keep = trainable_names(model, new_domains, shared)
    frozen = []
    for name, p in model.named_parameters():
        p.requires_grad_(name in keep)
        if name not in keep:
            frozen.append(name)
    if shared == "frozen":
        prefixes = domain_dict_prefixes(model)
        for name, module in model.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and \
                    owner_of(name + ".weight", prefixes, new_domains) is None:
                module.register_forward_pre_hook(_evaluation_mode)
    return frozen


def _evaluation_mode(module: nn.Module, _inputs) -> None:
    module.training = False


def parameter_groups(model: nn.Module, new_domains, shared: str, shared_lr_scale: float,
                     lr: float) -> list[dict]:
    """Adam parameter groups: the new domains' parts at ``lr`` (``lr_scale`` 1), the shared
    and old-domain parts (when they train) at ``lr * shared_lr_scale``. Each group carries
    ``lr_scale``, which the training loop's schedules honour."""
    prefixes = domain_dict_prefixes(model)
    new, rest = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (new if owner_of(name, prefixes, new_domains) is not None else rest).append(p)
    groups = [{"params": new, "lr": lr, "lr_scale": 1.0}]
    if rest:
        groups.append({"params": rest, "lr": lr * shared_lr_scale,
                       "lr_scale": shared_lr_scale})
    return groups
