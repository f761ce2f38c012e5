"""``unilandmark adapt``: a trained model plus a new anatomy, or adapted to a new site,
from a handful of images.

Two modes, decided by the data: a **new anatomy** (other landmarks) becomes a new domain
(``FEW_SHOT_RECIPE``); a **site** (the landmarks of the source domain, in order) is
trained with ``SITE_RECIPE`` and either replaces the domain it adapts (``--domain`` names
a domain of the checkpoint: trained under a temporary name, then renamed over it) or is
added beside it under its own name; :mod:`.site` keeps what the site's images cannot
re-estimate and reports the per-landmark change.

:func:`plan_adaptation` turns a request (the new domain's data, the checkpoint, the
settings) into one training config per stage, each with an ``init:`` block:

1. the whole-image stage: the checkpoint's stage 1 with the new domain added;
2. with ``refine`` (the default when the checkpoint is a cascade), one patch stage per
   patch stage of the checkpoint, each refining the stage before it and starting from the
   checkpoint's stage of the same rank (same patch settings and model).

:func:`run_adaptation` trains them with ``training.fit`` (the same resume, progress and
atomic checkpoints as ``unilandmark train``), writes ``OUT/model.pt`` (one checkpoint for
the old and the new domains; without ``refine`` the checkpoint's patch stages are kept
for its old domains, on top of the adapted stage 1) and reports forgetting:
``OUT/adaptation.json`` and ``OUT/adaptation.md`` hold the old domains' validation
errors of the original checkpoint and of the adapted model (the whole cascade, as
``Detector`` predicts), and the new domain's where it has a validation split.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..checkpoints.checkpoint import (
    load_checkpoint,
    prediction_state,
    save_checkpoint,
    stage_chain,
)
from ..core.atomic import atomic_write_text
from ..core.errors import InputError
from ..core.jsontext import json_text
from ..core.wording import relative_note
from ..data.sizes import size_advice, suggest_input_size
from ..training.config import DomainConfig, ExperimentConfig, load_config
from ..training.dataset import record_size
from .site import carry_source_facts, rename_domain, site_changes, training_name

#: the optimiser for a handful of images (docs/adapt.md)
ADAPT_OPTIM = {"lr": 1e-4, "max_lr": 1e-2, "schedule": "cyclic", "cycle_epochs": 2.0}
#: augmentation for a handful of images: wider geometric and intensity ranges
FEW_SHOT_AUGMENT = {"rotate_deg": 15.0, "scale": 0.15, "translate": 0.08,
                    "gamma": [0.6, 1.6], "contrast": 0.3, "brightness": 0.08,
                    "noise": 0.03, "blur": 1.0}
#: optimisation steps of the whole-image stage when no epoch count is given
IMAGE_STEPS = 300
#: optimisation steps of each patch stage when no epoch count is given
PATCH_STEPS = 300
#: a new anatomy from a handful of images: wide augmentation, a high cyclic learning rate
FEW_SHOT_RECIPE = {"optim": ADAPT_OPTIM, "augment": FEW_SHOT_AUGMENT,
                   "image_steps": IMAGE_STEPS, "patch_steps": PATCH_STEPS}
#: a known anatomy at a new site (same landmarks): the source stages' own augmentation
#: (``None``) and a gentler, shorter schedule; measured in benchmarks/site_adaptation.py
#: (docs/adapt.md, "How many images")
SITE_RECIPE = {"optim": {"lr": 1e-4, "max_lr": 1e-3, "schedule": "cyclic",
                         "cycle_epochs": 2.0},
               "augment": None, "image_steps": 150, "patch_steps": 150}
#: fewer training images than this adapt with a warning (docs/adapt.md): the figures of
#: so few are not to be trusted, and prediction's configuration check needs this many
TRUSTED_IMAGES = 3


def few_images_warning(domain: str, n: int) -> str:
    return (f"{domain} has only {n} training image(s): the adaptation runs, but its figures "
            f"(the validation errors, forgetting) from fewer than {TRUSTED_IMAGES} images are "
            "not trustworthy, and prediction's configuration check of the shape needs "
            f"{TRUSTED_IMAGES}; label more images where you can")


@dataclass
class AdaptRequest:
    """What to adapt, to what, and how (the ``unilandmark adapt`` options).

    ``data``/``dataset``/``options``: the new domain's dataset (any adapter);
    ``domain``: its name in the model; ``checkpoint``: a file or ``builtin``;
    ``from_domain``: the old domain its parts start from, or ``mean`` (default: the
    checkpoint's only domain, else ``mean``); ``old_data``: {old domain: dataset root}
    where the checkpoint's own roots do not hold the data; ``check_old``: validate the
    old domains (when their data is found) before and after; ``replay``: keep training
    them. ``input_size`` None: the images' median aspect at the source domain's pixel
    count. ``epochs`` None: about ``IMAGE_STEPS`` steps (patch stages: ``PATCH_STEPS``).
    """

    data: str
    domain: str
    out: str
    dataset: str = "csv"
    options: dict = field(default_factory=dict)
    checkpoint: str = "builtin"
    from_domain: str | None = None
    shared: str = "finetune"
    shared_lr_scale: float = 0.1
    replay: bool = False
    old_data: dict[str, str] = field(default_factory=dict)
    check_old: bool = True
    train_split: str | None = None
    val_split: str | None = None
    input_size: tuple[int, int] | None = None
    resize: str = "stretch"
    sigma: float | None = None
    epochs: int | None = None
    patch_epochs: int | None = None
    batch_size: int = 4
    refine: bool | None = None
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    cache_dir: str | None = "cache"
    overrides: list[str] = field(default_factory=list)


@dataclass
class AdaptPlan:
    """The configs to train (stage 1 first), the checkpoint's chain, what was decided."""

    configs: list[ExperimentConfig]
    chain: list[dict]
    checkpoint: Path
    old_checks: list[DomainConfig]
    notes: list[str] = field(default_factory=list)
    #: site mode: the new data has the source domain's landmarks (workflows.site)
    site: bool = False
    #: the domain the site replaces (``--domain`` of the checkpoint), or None
    replace: str | None = None
    #: the domain's name while it trains (the site's name unless it replaces one)
    train_name: str = ""
    source: str = "mean"
    train_records: list = field(default_factory=list)
    unit: str = "px"


@dataclass
class AdaptResult:
    model_path: Path
    summary_json: Path
    summary_md: Path
    summary: dict


def plan_adaptation(req: AdaptRequest, log=print, warn=None) -> AdaptPlan:
    """One config per stage to train, with every default resolved (see the module
    docstring). Errors name the option at fault; ``warn`` (default: ``log`` with
    ``warning:`` in front) is told what runs but should not be trusted (fewer than
    ``TRUSTED_IMAGES`` training images)."""
    warn = warn or (lambda text: log(f"warning: {text}"))
    from ..data.adapters.catalog import build_dataset
    from ..training.stages.adapted import resolve_checkpoint

    path = resolve_checkpoint(req.checkpoint)
    chain = stage_chain(load_checkpoint(path))
    first = chain[0]
    old_meta = first["domains"]
    replace = req.domain in old_meta
    if replace and req.from_domain not in (None, req.domain):
        raise InputError(f"--domain {req.domain} is a domain of {path}: adapting it to a site "
                         f"starts from it; leave --from-domain out, or name the site "
                         f"differently to add it beside {req.domain}")
    source = req.domain if replace else (
        req.from_domain or (next(iter(old_meta)) if len(old_meta) == 1 else "mean"))
    if source != "mean" and source not in old_meta:
        raise InputError(f"--from-domain {source}: not a domain of {path}; it knows "
                         f"{sorted(old_meta)} (or use mean)")
    spec = build_dataset(req.dataset, req.data, **req.options)
    site = source != "mean" and list(spec.landmark_names) == \
        list(old_meta[source]["landmark_names"])
    if replace and not site:
        raise InputError(
            f"--domain {req.domain}: {path} already has a domain {req.domain!r} with "
            f"landmarks {_names(old_meta[req.domain]['landmark_names'])}; {spec.name} has "
            f"{_names(spec.landmark_names)}. Adapting a domain to a site needs the same "
            "landmarks in the same order; name a new anatomy differently (it knows "
            f"{sorted(old_meta)})")
    train_name = training_name(req.domain, old_meta) if replace else req.domain
    if site:
        notes = [f"site adaptation: {req.domain} " + (
            f"adapted in place (trained as {train_name}, then replacing {req.domain})"
            if replace else f"added beside {source}, starting from it (same landmarks)")]
    else:
        notes = [f"the new domain {req.domain} starts from "
                 f"{'the mean of ' + ', '.join(old_meta) if source == 'mean' else source}"]
    train_split = req.train_split or ("train" if spec.splits.get("train") else "all")
    val_split = req.val_split
    for option, split in (("--train-split", train_split), ("--val-split", val_split)):
        if split is not None and split not in spec.splits:
            raise InputError(f"{option} {split}: not a split of {spec.name}; known: "
                             f"{', '.join(sorted(spec.splits))}")
    train_records = spec.split_records(train_split)
    if not train_records:
        raise InputError(f"{spec.name}: split {train_split!r} has no records with an image")
    if len(train_records) < TRUSTED_IMAGES:
        few = few_images_warning(req.domain, len(train_records))
        warn(few)
        notes.append(f"warning: {few}")
    sizes = [record_size(r) for r in train_records]
    ref = old_meta[source] if source != "mean" else next(iter(old_meta.values()))
    ref_size = tuple(int(v) for v in ref["input_size"])
    if req.input_size:
        input_size = tuple(req.input_size)
    elif site:
        input_size = ref_size
        notes.append(f"input size {input_size[0]}x{input_size[1]}: {source}'s")
    else:
        input_size = suggest_input_size(sizes, ref_size[0] * ref_size[1])
    if not req.input_size and not site:
        notes.append(f"input size {input_size[0]}x{input_size[1]}: the training images' "
                     f"median aspect at the {ref_size[0]}x{ref_size[1]} input's pixel count")
    # logged by the stage when it trains (stages.adapted); kept for the summary here
    advice = size_advice(sizes, input_size, req.resize, f"the {len(sizes)} training images")
    notes += [f"warning: {t}" for t in advice.warnings]
    new = DomainConfig(name=train_name, dataset=req.dataset, root=str(req.data),
                       options=dict(req.options), train_split=train_split,
                       val_split=val_split, input_size=input_size,
                       resize=ref.get("resize", req.resize) if site and not req.input_size
                       else req.resize, sigma=req.sigma or float(ref.get("sigma", 2.0)),
                       flip_pairs=[tuple(p) for p in ref.get("flip_pairs") or []]
                       if site else [])
    old_checks, old_train = _old_domains(req, first, log, notes,
                                         skip=req.domain if replace else None)
    out = Path(req.out)
    n = len(train_records)
    recipe = SITE_RECIPE if site else FEW_SHOT_RECIPE
    epochs = req.epochs or _epochs(recipe["image_steps"], n, req.batch_size)
    if not req.epochs:
        notes.append(f"{epochs} epochs of the whole-image stage (about "
                     f"{recipe['image_steps']} steps on {n} image(s))")
    init = {"checkpoint": req.checkpoint, "domains": {train_name: source},
            "shared": req.shared, "shared_lr_scale": req.shared_lr_scale,
            "replay": req.replay}
    stage1 = {
        "name": f"adapt-{req.domain}", "out_dir": str(out / "stage1"),
        "domains": [new.model_dump(mode="json")] + [d.model_dump(mode="json")
                                                    for d in old_train],
        "optim": dict(recipe["optim"]), "init": {**init, "stage": 0},
        "train": {"epochs": epochs, "batch_size": req.batch_size, "seed": req.seed,
                  "device": req.device, "threads": req.threads, "cache_dir": req.cache_dir,
                  "augment": _augment(recipe, chain[0])}}
    configs = [load_config(data=stage1, overrides=req.overrides)]
    patch_stages = [i for i, s in enumerate(chain) if s["kind"] == "patch"]
    refine = req.refine if req.refine is not None else bool(patch_stages)
    if refine and not patch_stages:
        raise InputError(f"--refine: {path} has no patch stage to start a refinement from")
    if not refine and patch_stages:
        notes.append(f"no refinement for {req.domain}: the checkpoint's {len(patch_stages)} "
                     "patch stage(s) keep refining its old domains only")
    previous = out / "stage1" / "best.pt"
    for rank, index in enumerate(patch_stages if refine else [], start=2):
        old = ExperimentConfig.model_validate(chain[index]["config"])
        stage = old.stage.model_dump(mode="json")
        stage["previous"] = str(previous)
        patch_batch = max(req.batch_size, old.train.batch_size)
        pairs = n * spec.num_landmarks
        p_epochs = req.patch_epochs or _epochs(recipe["patch_steps"], pairs, patch_batch)
        data = {"name": f"adapt-{req.domain}-stage{rank}", "out_dir": str(out / f"stage{rank}"),
                "stage": stage,
                "domains": [new.model_dump(mode="json")] +
                           [d.model_dump(mode="json") for d in old_train
                            if d.name in chain[index]["domains"]],
                "optim": dict(recipe["optim"]), "init": {**init, "stage": index},
                "train": {**stage1["train"], "epochs": p_epochs, "batch_size": patch_batch,
                          "augment": _augment(recipe, chain[index])}}
        configs.append(load_config(data=data))
        previous = out / f"stage{rank}" / "best.pt"
    return AdaptPlan(configs, chain, path, old_checks, notes, site=site,
                     replace=req.domain if replace else None, train_name=train_name,
                     source=source, train_records=list(train_records), unit=spec.unit)


def _names(names) -> str:
    names = list(names)
    return f"[{', '.join(names[:4])}{', ...' if len(names) > 4 else ''}] ({len(names)})"


def _augment(recipe: dict, source_stage: dict) -> dict:
    """The recipe's augmentation, or (``None``) the source stage's own training one."""
    if recipe["augment"] is not None:
        return dict(recipe["augment"])
    return ExperimentConfig.model_validate(source_stage["config"]).train.augment.model_dump(
        mode="json")


def _epochs(steps: int, samples: int, batch_size: int) -> int:
    return max(1, math.ceil(steps / max(1, math.ceil(max(2, samples) / batch_size))))


def _old_domains(req: AdaptRequest, first: dict, log, notes: list[str],
                 skip: str | None = None):
    """(old domains to validate before/after, old domains to list in stage configs).

    An old domain whose data is not found is left out with a warning (an error when it
    should be replayed). A domain that is validated only lists its validation split as
    its training split too: it is never drawn (``stages.adapted``), and its training set
    is not decoded for nothing.
    """
    unknown = sorted(set(req.old_data) - set(first["domains"]))
    if unknown:
        raise InputError(f"--old-data: {unknown} are not domains of the checkpoint; it knows "
                         f"{sorted(first['domains'])}")
    if not (req.check_old or req.replay):
        notes.append("the old domains are not validated (--no-check-old): forgetting is "
                     "not measured")
        return [], []
    configs = [DomainConfig.model_validate(d) for d in first["config"].get("domains", [])]
    checks, listed = [], []
    for dc in configs:
        if dc.name not in first["domains"] or dc.name == skip:
            continue
        root = req.old_data.get(dc.name, dc.root)
        dc = dc.model_copy(update={"root": root})
        if not Path(root).exists():
            message = (f"old domain {dc.name}: its data ({dc.dataset} at {root}"
                       f"{relative_note(root)}) is not found; give --old-data {dc.name}=ROOT")
            if req.replay:
                raise FileNotFoundError(message + " to replay it")
            log(f"warning: {message} to measure forgetting")
            notes.append(f"warning: {message}: forgetting of {dc.name} is not measured")
            continue
        if dc.val_split is None:
            notes.append(f"old domain {dc.name} has no validation split: forgetting of it "
                         "is not measured")
        else:
            checks.append(dc)
        if req.replay:
            listed.append(dc)
        elif dc.val_split is not None and req.shared == "finetune":
            listed.append(dc.model_copy(update={"train_split": dc.val_split}))
    return checks, listed


def run_adaptation(req: AdaptRequest, resume: bool = False, overwrite: bool = False,
                   progress: bool = True, log=print, warn=None) -> AdaptResult:
    """Plan, measure the old domains, train every stage, write the model and the
    summary. ``resume`` continues interrupted stages (finished ones are kept); it needs
    an adaptation begun in ``req.out`` (a stage's ``last.pt``), as ``train --resume``
    does. The whole run holds ``req.out``'s lock (``core.folder_lock``): a second
    process on the same folder is refused. ``warn``: see :func:`plan_adaptation`."""
    from ..core.folder_lock import folder_lock
    from ..core.preflight import check_writable_dir

    plan = plan_adaptation(req, log, warn)
    out = Path(req.out)
    check_writable_dir(out, "--out")
    with folder_lock(out, "--out"):
        if resume and not any((Path(c.out_dir) / "last.pt").is_file() for c in plan.configs):
            first = Path(plan.configs[0].out_dir) / "last.pt"
            raise InputError(f"{out}: --resume, but there is no adaptation to resume here "
                             f"(no {first}); start it without --resume")
        return _adapt(req, plan, out, resume, overwrite, progress, log)


def _adapt(req: AdaptRequest, plan: AdaptPlan, out: Path, resume: bool, overwrite: bool,
           progress: bool, log) -> AdaptResult:
    from ..training.fit import fit

    started = time.time()
    for note in plan.notes:
        if not note.startswith("warning:"):
            log(note)
    before = _score_domains(prediction_state(load_checkpoint(plan.checkpoint)),
                            plan.old_checks, req.device, log, "before")
    results = []
    for config in plan.configs:
        stage_resume = resume and (Path(config.out_dir) / "last.pt").is_file()
        log(f"-- {config.name}: {config.stage.kind} stage, {config.train.epochs} epochs "
            f"-> {config.out_dir}")
        results.append(fit(config, resume=stage_resume, overwrite=overwrite and not
                           stage_resume, progress=progress, log=log))
    final = compose_model(results[-1].best_path, plan, bool(len(plan.configs) > 1))
    site = _finish_site(req, plan, final, log) if plan.site else None
    model_path = out / "model.pt"
    save_checkpoint(model_path, final)
    after = _score_domains(final, plan.old_checks, req.device, log, "after")
    new = plan.configs[0].domains[0].model_copy(update={"name": req.domain})
    new_scores = _score_domains(final, [new] if new.val_split else [], req.device, log,
                                "adapted")
    summary = _summary(req, plan, before, after, new_scores, results, model_path)
    if site is not None:
        summary["site"] = site
    summary["seconds"] = round(time.time() - started, 1)  # the whole adaptation, wall time
    json_path, md_path = out / "adaptation.json", out / "adaptation.md"
    atomic_write_text(json_path, json_text(summary))
    atomic_write_text(md_path, summary_markdown(summary))
    for line in forgetting_lines(summary):
        log(line)
    return AdaptResult(model_path, json_path, md_path, summary)


def _finish_site(req: AdaptRequest, plan: AdaptPlan, final: dict, log) -> dict:
    """Site mode, in place on ``final``: the site replaces its domain (``plan.replace``),
    keeps what its images cannot re-estimate, is recalibrated on its validation split or
    marked uncalibrated; returns the ``site`` part of the summary (the per-landmark
    offsets before and after and the mean shift, on the site's training images)."""
    from ..core.preflight import check_device
    from ..inference.detector import Detector
    from ..quality.calibration import MIN_IMAGES
    from .calibrate import ValidationSource, calibrate_state

    if plan.replace:
        renamed = rename_domain(final, plan.train_name, plan.replace)
        final.clear()  # in place: the cascade may have lost a stage
        final.update(renamed)
    records = plan.train_records
    notes = carry_source_facts(final, plan.chain, req.domain, plan.source, len(records))
    device = check_device(req.device, "--device")
    new = plan.configs[0].domains[0]
    calibration = "uncalibrated"
    if new.val_split:
        source = ValidationSource(req.dataset, str(req.data), new.val_split, dict(req.options))
        try:
            calibrate_state(final, {req.domain: source}, device=device, log=log)
            calibration = f"recalibrated on {new.val_split}"
        except InputError as err:
            notes.append(f"warning: not recalibrated ({err}); the domain is uncalibrated")
    else:
        notes.append(f"{req.domain} is uncalibrated (its quality flags use the uncalibrated "
                     f"rules): give --val-split with {MIN_IMAGES} or more images to "
                     "recalibrate it on the site's own images")
    paths = [r.image_path for r in records]
    before = Detector.from_checkpoint_state(
        prediction_state(load_checkpoint(plan.checkpoint)), device).predict_many(
        paths, plan.source, orientation="original")
    after = Detector.from_checkpoint_state(final, device).predict_many(
        paths, req.domain, orientation="original")
    changes = site_changes(np.stack([r.points for r in before]),
                           np.stack([r.points for r in after]), records, plan.unit)
    names = list(stage_chain(final)[0]["domains"][req.domain]["landmark_names"])
    for note in notes:
        log(note)
    plan.notes.extend(notes)
    moved = sorted(zip(changes["mean_shift_magnitude"], names, strict=True), reverse=True)[:3]
    log(f"{req.domain}: on its {len(records)} training images the mean offset from the "
        f"site's points fell from {np.mean(changes['offset_before']):.2f} to "
        f"{np.mean(changes['offset_after']):.2f} {plan.unit}; largest mean shifts: " +
        ", ".join(f"{n} {v:.2f} {plan.unit}" for v, n in moved))
    return {"replaced": plan.replace, "source": plan.source, "calibration": calibration,
            "landmark_names": names, **changes}


def compose_model(best_path: Path, plan: AdaptPlan, refined: bool) -> dict:
    """The prediction state of the adapted model: the last trained stage (a whole
    cascade when refined); otherwise the adapted stage 1 with the checkpoint's patch
    stages on top, which keep refining the old domains only."""
    state = prediction_state(load_checkpoint(best_path))
    if refined:
        return state
    for old in plan.chain[1:]:
        state = {**prediction_state(old), "previous": state}
    return state


def _score_domains(state: dict, domains: list[DomainConfig], device: str, log,
                   when: str) -> dict[str, dict]:
    """Validation errors of ``state`` (a whole cascade, as Detector predicts) on each
    domain's validation split: {domain: {mre, median, unit, sdr, n_images}}."""
    from ..core.preflight import check_device
    from ..inference.detector import Detector
    from ..training.stages.base import load_domain, score_domain

    if not domains:
        return {}
    detector = Detector.from_checkpoint_state(state, check_device(device, "--device"))
    out = {}
    for dc in domains:
        if dc.name not in detector.domains:
            continue
        records = load_domain(dc).val
        results = detector.predict_many([r.image_path for r in records], dc.name,
                                        orientation="original")
        pred = np.stack([r.points for r in results])
        score = score_domain(pred, records, detector.domains[dc.name].get("thresholds")
                             or (2.0, 2.5, 3.0, 4.0))
        out[dc.name] = {"mre": score["mre"], "median": score["median"],
                        "unit": score["unit"], "sdr": score["sdr"],
                        "n_images": len(records)}
        log(f"{dc.name} ({when}): {score['mre']:.3f} {score['unit']} validation MRE on "
            f"{len(records)} images")
    return out


def _summary(req, plan, before, after, new_scores, results, model_path) -> dict:
    old = {}
    for name in plan.chain[0]["domains"]:
        if name == plan.replace:
            continue  # adapted in place: its old convention is not kept to compare with
        b, a = before.get(name), after.get(name)
        entry = {"before": b, "after": a}
        if b and a:
            entry["change_percent"] = 100.0 * (a["mre"] / b["mre"] - 1) if b["mre"] else 0.0
        old[name] = entry
    return {
        "model": str(model_path), "checkpoint": str(plan.checkpoint),
        "new_domain": {"name": req.domain, "dataset": req.dataset, "root": str(req.data),
                       "train_split": plan.configs[0].domains[0].train_split,
                       "input_size": list(plan.configs[0].domains[0].input_size),
                       "validation": new_scores.get(req.domain)},
        "settings": {"from_domain": plan.source, "site": plan.site,
                     "shared": req.shared, "shared_lr_scale": req.shared_lr_scale,
                     "replay": req.replay,
                     "stages": [{"kind": c.stage.kind, "epochs": c.train.epochs,
                                 "out_dir": c.out_dir, "best": str(r.best_path)}
                                for c, r in zip(plan.configs, results, strict=True)]},
        "old_domains": old, "notes": plan.notes}


def forgetting_lines(summary: dict) -> list[str]:
    """One line per old domain: before, after and the change (or why not measured)."""
    lines = []
    for name, e in summary["old_domains"].items():
        b, a = e["before"], e["after"]
        if b and a:
            lines.append(f"forgetting: {name} {b['mre']:.3f} -> {a['mre']:.3f} {a['unit']} "
                         f"validation MRE ({e['change_percent']:+.1f} %)")
        else:
            lines.append(f"forgetting: {name} not measured (its validation data was not "
                         f"found; give --old-data {name}=ROOT)")
    v = summary["new_domain"]["validation"]
    if v:
        lines.append(f"{summary['new_domain']['name']}: {v['mre']:.3f} {v['unit']} "
                     f"validation MRE on {v['n_images']} images")
    return lines


def summary_markdown(summary: dict) -> str:
    """``adaptation.md``: the settings, the old domains before and after, the notes."""
    s, nd = summary["settings"], summary["new_domain"]
    rows = ["| domain | before | after | change |", "|---|---|---|---|"]
    for name, e in summary["old_domains"].items():
        b, a = e["before"], e["after"]
        if b and a:
            rows.append(f"| {name} | {b['mre']:.3f} {b['unit']} | {a['mre']:.3f} {a['unit']} "
                        f"| {e['change_percent']:+.1f} % |")
        else:
            rows.append(f"| {name} | not measured | not measured | |")
    v = nd["validation"]
    new_line = (f"{v['mre']:.3f} {v['unit']} validation MRE on {v['n_images']} images"
                if v else "no validation split (the model is the last epoch)")
    stages = "\n".join(f"- {st['kind']} stage: {st['epochs']} epochs, {st['best']}"
                       for st in s["stages"])
    notes = "\n".join(f"- {n}" for n in summary["notes"]) or "- none"
    rate = (f" at {s['shared_lr_scale']} x the learning rate" if s["shared"] == "finetune"
            else "")
    return (f"# Adaptation: {nd['name']}\n\n"
            f"Model: `{summary['model']}` (from `{summary['checkpoint']}`)\n\n"
            f"New domain **{nd['name']}** ({nd['dataset']} at {nd['root']}, split "
            f"{nd['train_split']}, input {nd['input_size'][0]}x{nd['input_size'][1]}): "
            f"{new_line}.\n\n"
            f"Settings: parts from {s['from_domain']}, shared parts {s['shared']}{rate}"
            f", replay {'on' if s['replay'] else 'off'}.\n\n{stages}\n\n"
            f"## Old domains (validation MRE, the whole model)\n\n" + "\n".join(rows) +
            f"\n\n## Notes\n\n{notes}\n")
