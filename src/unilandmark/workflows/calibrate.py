"""``calibrate``: fit a model file's quality calibration on a validation split and write it
into the file (docs/quality.md).

The model (a checkpoint or cascade) predicts the domain's validation images as
``unilandmark predict`` would; each point's evidence and its error against the ground
truth fit the risk model and the flag threshold (:mod:`..quality.calibration`); the numbers go into
the last stage's domain metadata (``domains[<domain>]["calibration"]``), which prediction
reads. Everything else in the file is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..checkpoints.builtin import model_path
from ..checkpoints.checkpoint import (
    file_kind,
    load_checkpoint,
    save_checkpoint,
    save_model_file,
    stage_chain,
)
from ..core.errors import InputError
from ..core.folder_lock import folder_lock
from ..core.metrics import radial_errors
from ..core.types import truth_points
from ..core.wording import relative_note
from ..data.adapters.catalog import build_dataset
from ..inference.detector import Detector
from ..quality.calibration import MAX_FLAGGED, MIN_IMAGES, TARGET_RECALL, fit_calibration
from ..quality.evidence import evidence


@dataclass(frozen=True)
class ValidationSource:
    """Where a domain's validation points come from."""

    dataset: str
    root: str
    split: str
    options: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return {"dataset": self.dataset, "split": self.split, **self.options}


def validation_sources(state: dict, domain: str | None = None, dataset: str | None = None,
                       root: str | None = None, split: str | None = None,
                       options: dict | None = None) -> dict[str, ValidationSource]:
    """The validation data of each domain to calibrate: the checkpoint's training config
    (dataset, root, options, ``val_split``), with the given parts replaced.

    ``domain`` picks one domain; replacing a part needs it when the model has several.
    """
    last = stage_chain(state)[-1]
    known = list(last["domains"])
    configured = {d["name"]: d for d in (last.get("config") or {}).get("domains", [])}
    if domain is not None and domain not in known:
        raise InputError(f"unknown domain {domain!r}; this model knows {known}")
    overriding = any(v is not None for v in (dataset, root, split)) or bool(options)
    if overriding and domain is None and len(known) > 1:
        raise InputError(f"this model has several domains {known}: give --domain with "
                         "--dataset, --root, --split or options")
    sources = {}
    for name in [domain] if domain else known:
        cfg = configured.get(name, {})
        opts = {**cfg.get("options", {}), **(options or {})}
        src = {"dataset": dataset or cfg.get("dataset"), "root": root or cfg.get("root"),
               "split": split or cfg.get("val_split")}
        missing = [k for k, v in src.items() if not v]
        if missing:
            if domain is None:
                continue  # a domain trained without validation: nothing to calibrate on
            raise InputError(f"domain {name}: the checkpoint's config gives no "
                             f"{', '.join(missing)}; pass --{' --'.join(missing)}")
        if root is None and not Path(src["root"]).exists():
            raise FileNotFoundError(f"domain {name}: the validation data of the model's "
                                    f"training config ({src['dataset']} at {src['root']}"
                                    f"{relative_note(src['root'])}) is not found; pass "
                                    "--root (and --domain where the model has several)")
        sources[name] = ValidationSource(src["dataset"], str(src["root"]), src["split"], opts)
    if not sources:
        raise InputError("no domain of this model has a validation split in its config; "
                         "give --domain, --dataset, --root and --split")
    return sources


def validation_points(detector: Detector, domain: str, source: ValidationSource,
                      batch_size: int = 4, limit: int | None = None,
                      ) -> tuple[dict, np.ndarray, np.ndarray, float, str]:
    """Predict ``source``'s images (the first ``limit``); returns (evidence name ->
    (N*K,), errors (N*K,), image ids (N*K,), radius, unit). The radius is the dataset's
    largest SDR threshold."""
    spec = build_dataset(source.dataset, source.root, **source.options)
    records = spec.split_records(source.split)[:limit]
    if not records:
        raise InputError(f"{spec.name}: split {source.split!r} has no records with images")
    if len(records) < MIN_IMAGES:
        raise InputError(f"{spec.name}: split {source.split!r} has {len(records)} image(s); "
                         f"calibration needs at least {MIN_IMAGES} (the flag threshold is "
                         "chosen out of fold, by image): give a larger validation split "
                         "(--split)")
    k = detector.domains[domain]["num_landmarks"]
    if spec.num_landmarks != k:
        raise InputError(f"{spec.name} has {spec.num_landmarks} landmarks, domain {domain} "
                         f"of this model {k}")
    if spec.unit == "mm":
        missing = [r.id for r in records if r.spacing is None]
        if missing:
            raise InputError(f"{spec.name}: its thresholds are in mm, but images "
                             f"{missing[:5]} have no spacing")
        scale = np.array([r.spacing for r in records], dtype=np.float64)[:, None, :]
    else:
        scale = None
    results = detector.predict_many([r.image_path for r in records], domain,
                                    batch_size=batch_size)
    truth = truth_points(records)
    errors = radial_errors(np.stack([r.points for r in results]), truth, scale)
    meta = detector.domains[domain]
    feats = [evidence(r, meta) for r in results]
    features = {n: np.concatenate([f[n] for f in feats]) for n in feats[0]}
    groups = np.repeat([r.id for r in records], k)
    return features, errors.reshape(-1), groups, float(max(spec.thresholds)), spec.unit


def calibrate_state(state: dict, sources: dict[str, ValidationSource],
                    target_recall: float = TARGET_RECALL,
                    max_flagged: float | None = MAX_FLAGGED, device: str = "cpu",
                    batch_size: int = 4, log=print, warn=None) -> dict[str, dict]:
    """Fit each domain's calibration and store it in ``state`` (its last stage's domain
    metadata, in place). Returns {domain: calibration}. ``warn`` (default: ``log`` with
    ``warning:``) receives each reason the validation data makes a calibration weak
    (:func:`..quality.calibration.calibration_warnings`)."""
    warn = warn or (lambda text: log(f"warning: {text}"))
    if not 0 < target_recall <= 1:
        raise InputError(f"target recall must be in (0, 1], got {target_recall}")
    if max_flagged is not None and not 0 < max_flagged <= 1:
        raise InputError(f"max flagged fraction must be in (0, 1], got {max_flagged}")
    detector = Detector.from_checkpoint_state(state, device)
    last = stage_chain(state)[-1]
    out = {}
    for domain, source in sources.items():
        log(f"{domain}: predicting {source.dataset} {source.split} ...")
        features, errors, groups, radius, unit = validation_points(detector, domain, source,
                                                                   batch_size)
        cal = fit_calibration(features, errors, groups, radius, unit, target_recall,
                              max_flagged, source=source.describe())
        last["domains"][domain]["calibration"] = cal
        out[domain] = cal
        log(summary_line(domain, cal))
        for text in cal["validation"].get("warnings", []):
            warn(f"{domain}: {text}")
    return out


def summary_line(domain: str, cal: dict) -> str:
    v = cal["validation"]
    return (f"{domain}: risk of an error above {cal['radius']:g} {cal['unit']} from "
            f"{', '.join(cal['features']) or 'no evidence'}; flag at risk >= "
            f"{cal['threshold']:.3f}; on {v['n_images']} validation images (out of fold): "
            f"{v['n_wrong']} of {v['n_points']} points wrong, flags catch "
            f"{_pct(v['recall'])} of them, precision {_pct(v['precision'])}, "
            f"{_pct(v['flagged_fraction'])} of points flagged")


def _pct(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.1f} %"


def calibrate_checkpoint(src: str | Path, dst: str | Path, domain: str | None = None,
                         dataset: str | None = None, root: str | None = None,
                         split: str | None = None, options: dict | None = None,
                         target_recall: float = TARGET_RECALL,
                         max_flagged: float | None = MAX_FLAGGED, device: str = "cpu",
                         batch_size: int = 4, log=print, warn=None) -> dict[str, dict]:
    """Calibrate the model file ``src`` and write it, calibration included, to ``dst``
    (atomically; ``dst`` may be ``src``): a safetensors model file (provenance kept) when
    ``src`` is one or ``dst`` ends in ``.safetensors``, else a training checkpoint."""
    src = model_path(src)  # a built-in model by name (head, head-mean) too
    as_model_file = file_kind(src) == "safetensors" or str(dst).endswith(".safetensors")
    # the folder written to is held (core.folder_lock): never beside a training run or
    # another calibration writing there
    with folder_lock(Path(dst).absolute().parent, "--out"):
        state = load_checkpoint(src)
        sources = validation_sources(state, domain, dataset, root, split, options)
        cals = calibrate_state(state, sources, target_recall, max_flagged, device,
                               batch_size, log, warn)
        kept = {k: v for k, v in state.items() if k not in ("format", "versions")}
        if as_model_file:
            save_model_file(dst, {k: v for k, v in kept.items() if k != "provenance"},
                            state.get("provenance") or {})
        else:
            save_checkpoint(dst, kept)
    return cals
