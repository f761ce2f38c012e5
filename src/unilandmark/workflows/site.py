"""Adapting a domain to a site: the same landmarks, another clinic's images and habits.

``unilandmark adapt`` is in *site* mode when the new data's landmark names equal its
source domain's (``--domain head`` on a model with a ``head`` domain adapts that domain in
place; ``--domain clinic_a --from-domain head`` adds the site under its own name). What
this module adds to the plain adaptation (``workflows.adapt``):

- :func:`rename_domain`: the trained site domain takes the place of the domain it adapts
  (its per-domain weights and metadata, in every stage), so ``predict --domain head``
  predicts with the site's model and nothing else about the model changes;
- :func:`carry_source_facts`: what the site's handful of images cannot re-estimate is
  kept from the source domain: its flip pairs, its shape model (unless the site has
  ``SITE_SHAPE_IMAGES`` images or more), the refinement's per-landmark gates; the
  quality calibration is fitted again on the site's validation images where they are
  given, else removed (the model says uncalibrated rather than keeping thresholds fitted
  to another model);
- :func:`site_changes`: the per-landmark mean offset of the model from the site's
  annotations before and after, and the mean shift of the predictions, on the site's
  training images (``adaptation.json``, the review app).
"""

from __future__ import annotations

import numpy as np

from ..checkpoints.checkpoint import stage_chain
from ..core.metrics import radial_errors
from ..core.types import error_scale, truth_points
from ..evaluation.conventions import convention_offsets
from ..models import build_model
from ..models.surgery import domain_dict_prefixes, split_key
from ..training.config import ExperimentConfig

#: a site with fewer training images than this keeps the source domain's shape model
#: (the spread of 19 landmarks is not estimated from a handful of shapes)
SITE_SHAPE_IMAGES = 30


def training_name(domain: str, taken) -> str:
    """A domain name not in ``taken`` to train the site under before it replaces
    ``domain``."""
    name, i = f"{domain}_site", 1
    while name in taken:
        i += 1
        name = f"{domain}_site{i}"
    return name


def rename_domain(state: dict, trained: str, target: str) -> dict:
    """``state`` (a cascade, prediction keys) with domain ``trained`` renamed ``target``
    in every stage, ``target``'s old weights and metadata dropped. A stage without
    ``trained`` (a patch stage that kept refining old domains only) loses ``target``
    there too, so the site is never refined with the old domain's refinement; a stage
    left without domains is dropped from the cascade."""
    out = None
    for stage in stage_chain(state):
        stage = dict(stage)
        stage.pop("previous", None)
        domains = dict(stage["domains"])
        config = ExperimentConfig.model_validate(stage["config"])
        counts = {n: int(m["num_landmarks"]) for n, m in domains.items()}
        prefixes = domain_dict_prefixes(build_model(config.model.name, counts,
                                                    **config.model.kwargs()))
        weights = {}
        for key, value in stage["model"].items():
            parts = split_key(key, prefixes, counts)
            if parts is None:
                weights[key] = value
            elif parts[1] == trained:
                weights[f"{parts[0]}.{target}.{parts[2]}"] = value
            elif parts[1] != target:
                weights[key] = value
        meta = {(target if n == trained else n): m for n, m in domains.items() if n != target}
        stage["model"], stage["domains"] = weights, meta
        listed = [dict(d, name=target) if d.get("name") == trained else d
                  for d in stage["config"].get("domains", []) if d.get("name") != target]
        stage["config"] = {**stage["config"], "domains": listed}
        if not meta:  # a refinement of the replaced domain alone: nothing left to refine
            continue
        if out is not None:
            stage["previous"] = out
        out = stage
    return out


def carry_source_facts(state: dict, source_chain: list[dict], domain: str, source: str,
                       n_images: int) -> list[str]:
    """Keep in ``state`` (in place) what the site's images cannot re-estimate (see the
    module docstring); returns a note per decision."""
    notes = []
    chain, old = stage_chain(state), {i: s["domains"].get(source) for i, s in
                                      enumerate(source_chain)}
    first, src_first = chain[0]["domains"][domain], old.get(0) or {}
    if not first.get("flip_pairs") and src_first.get("flip_pairs"):
        first["flip_pairs"] = src_first["flip_pairs"]
        notes.append(f"flip pairs kept from {source}")
    if src_first.get("shape") and (n_images < SITE_SHAPE_IMAGES or not first.get("shape")):
        first["shape"] = src_first["shape"]
        notes.append(f"shape model kept from {source} (the site has {n_images} training "
                     f"images; {SITE_SHAPE_IMAGES} or more re-estimate it)")
    for index, stage in enumerate(chain[1:], start=1):
        meta, src = stage["domains"].get(domain), old.get(index) or {}
        if meta is None:
            continue
        if "apply" in src:
            meta["apply"] = list(src["apply"])
        meta.pop("calibration", None)
    if len(chain) > 1:
        notes.append(f"refinement gates kept from {source}")
    return notes


def site_changes(before, after, records, unit: str) -> dict:
    """Per landmark, on ``records`` (the site's training images): the model's mean offset
    from the annotations before and after the adaptation, and the mean shift of the
    predictions (after minus before), in mm where the records have a spacing, else px.
    ``before``/``after``: (N, K, 2) predictions in original pixels."""
    truth = truth_points(records)
    scale = error_scale(records) if unit == "mm" else None
    conv_before = convention_offsets(before, truth, scale)
    conv_after = convention_offsets(after, truth, scale)
    shift = convention_offsets(after, before, scale)
    return {"unit": unit, "n_images": len(records),
            "offset_before": conv_before["magnitude"].tolist(),
            "offset_after": conv_after["magnitude"].tolist(),
            "mean_shift": shift["mean"].tolist(),
            "mean_shift_magnitude": shift["magnitude"].tolist(),
            "mre_before": float(np.nanmean(radial_errors(before, truth, scale))),
            "mre_after": float(np.nanmean(radial_errors(after, truth, scale)))}
