"""Checks of what a model file declares about a domain, before anything is built from it.

One rule for the two places a model's domain metadata is read: a safetensors model file or
a training checkpoint (``checkpoints``), and the metadata of an exported ONNX graph
(``export``, which must not import torch). Each check returns why the value is refused, as
the end of a sentence that the reader prefixes with the file, or None. The numbers are in
:mod:`.limits` (docs/refusals.md, "Model files").
"""

from __future__ import annotations

import math
from typing import Any

from .geometry import RESIZE_MODES
from .limits import (
    MAX_DOMAINS,
    MAX_LANDMARKS,
    count_fault,
    input_size_fault,
    name_fault,
    spacing_fault,
)


def domains_fault(domains: Any) -> str | None:
    """Why a stage's ``domains`` mapping is refused (its shape, not each domain), or
    None."""
    if not isinstance(domains, dict) or not domains:
        return "'domains' is not a mapping of domain names (not a unilandmark model file?)"
    if len(domains) > MAX_DOMAINS:
        return f"{len(domains)} domains, more than the limit of {MAX_DOMAINS}"
    for name in domains:
        fault = name_fault(name, "domain name")
        if fault:
            return fault
    return None


def domain_fault(meta: Any, needs_input: bool = False) -> str | None:
    """Why one domain's metadata is refused, or None: ``num_landmarks`` within
    :data:`~.limits.MAX_LANDMARKS`, as many clean ``landmark_names``, an ``input_size``
    within the limits (required with ``needs_input``: the whole-image stage, as is a
    volume domain's ``target_spacing``), and, where present, ``resize``, a positive
    ``sigma``, ``apply``, ``flip_pairs``, ``shape``, ``spacing``, ``target_spacing`` and
    ``presence_threshold`` that fit the landmark count, and a sound ``calibration``."""
    if not isinstance(meta, dict):
        return "its metadata is not a mapping"
    k = meta.get("num_landmarks")
    fault = count_fault(k, "num_landmarks", MAX_LANDMARKS)
    if fault:
        return fault
    names = meta.get("landmark_names")
    if not isinstance(names, list) or len(names) != k:
        shown = f"{len(names)} names" if isinstance(names, list) else f"{names!r:.80}"
        return f"landmark_names must list {k} names (num_landmarks), got {shown}"
    for name in names:
        fault = name_fault(name)
        if fault:
            return fault
    volume = meta.get("dims") == 3
    if "input_size" in meta or needs_input:
        fault = input_size_fault(meta.get("input_size"), (3,) if volume else (2,))
        if fault:
            return fault
    if meta.get("resize", "stretch") not in RESIZE_MODES:
        return f"resize {meta['resize']!r:.80} is not one of {', '.join(RESIZE_MODES)}"
    if volume and needs_input and "target_spacing" not in meta:
        return "a volume domain without target_spacing"
    sigma = meta.get("sigma", 1.0)
    if not _numbers([sigma]) or sigma <= 0:
        return f"sigma must be a positive number, got {sigma!r:.80}"
    return (apply_fault(meta.get("apply"), k) or _pairs_fault(meta.get("flip_pairs"), names)
            or shape_fault(meta.get("shape"), k) or _spacing_fault(meta, volume)
            or thresholds_fault(meta.get("presence_threshold"), k)
            or calibration_fault(meta.get("calibration"), k))


#: the evidence names a quality calibration may use (``quality.evidence.FEATURES`` is this
#: tuple: the one list of them)
CALIBRATION_FEATURES = ("stage1", "final", "shape", "shift", "spread", "mirror", "landmark")


#: the intensity rules of a volume domain (``inference.volume_inputs.normalise_volume``)
VOLUME_MODALITIES = ("mr", "ct")


def volume_intensity_fault(meta: dict) -> str | None:
    """Why a volume domain's intensity rule is refused, or None: ``modality`` one of
    :data:`VOLUME_MODALITIES` (default ``mr``) and ``ct_window``, where given, two finite
    numbers in HU with ``high > low``."""
    modality = meta.get("modality", "mr")
    if modality not in VOLUME_MODALITIES:
        return f"modality {modality!r:.80} is not one of {', '.join(VOLUME_MODALITIES)}"
    window = meta.get("ct_window")
    if window is None:
        return None
    if not isinstance(window, list) or len(window) != 2 or not _numbers(window) or \
            window[1] <= window[0]:
        return f"ct_window must be two finite numbers (low, high) in HU, got {window!r:.80}"
    return None


def calibration_fault(cal: Any, k: int) -> str | None:
    """Why a stored quality calibration (``unilandmark calibrate``, docs/quality.md) is
    refused, or None (also for none): known ``features`` with as many finite ``mean``,
    positive ``scale`` and ``weights``, a finite ``bias``, a ``threshold`` and
    ``fail_fraction`` in 0..1, and a ``landmark_prior`` of ``k`` numbers where the
    ``landmark`` evidence is used."""
    if cal is None:
        return None
    prefix = "calibration: "
    if not isinstance(cal, dict):
        return prefix + f"not a mapping, got {type(cal).__name__}"
    features = cal.get("features")
    if not isinstance(features, list) or len(features) > len(CALIBRATION_FEATURES) or \
            not all(f in CALIBRATION_FEATURES for f in features):
        return prefix + (f"features must be a list of {', '.join(CALIBRATION_FEATURES)}, "
                         f"got {features!r:.80}")
    for key in ("mean", "scale", "weights"):
        values = cal.get(key)
        if not isinstance(values, list) or len(values) != len(features) or \
                not _numbers(values):
            return prefix + (f"{key} must be {len(features)} finite numbers (one per "
                             f"feature), got {values!r:.80}")
    if any(v <= 0 for v in cal["scale"]):
        return prefix + f"scale must be positive, got {cal['scale']!r:.80}"
    if not _numbers([cal.get("bias")]):
        return prefix + f"bias must be a finite number, got {cal.get('bias')!r:.80}"
    for key, default in (("threshold", None), ("fail_fraction", 0.5)):
        value = cal.get(key, default)
        if not _numbers([value]) or not 0 <= value <= 1:
            return prefix + f"{key} must be a number in 0..1, got {value!r:.80}"
    if "landmark" in features:
        prior = cal.get("landmark_prior")
        if not isinstance(prior, list) or len(prior) != k or not _numbers(prior):
            return prefix + (f"landmark_prior must be {k} finite numbers (one per "
                             f"landmark), got {prior!r:.80}")
    return None


def landmark_names_fault(names: Any) -> str | None:
    """Why a list of landmark names (ONNX metadata) is refused, or None."""
    if not isinstance(names, list):
        return f"landmark_names is not a list, got {type(names).__name__}"
    fault = count_fault(len(names), "the number of landmark_names", MAX_LANDMARKS)
    if fault:
        return fault
    return next((f for f in map(name_fault, names) if f), None)


def shape_fault(shape: Any, k: int) -> str | None:
    """Why a stored shape model (``mean`` (K, 2), ``modes`` (M, 2K), ``sd`` (M,),
    ``spread`` (K,)) does not fit ``k`` landmarks, or None (also for no shape model)."""
    if shape is None:
        return None
    try:
        mean, modes, sd, spread = (shape[key] for key in ("mean", "modes", "sd", "spread"))
        ok = (len(mean) == k and all(len(p) == 2 and _numbers(p, False) for p in mean)
              and all(len(m) == 2 * k and _numbers(m, False) for m in modes)
              and len(sd) == len(modes) and _numbers(sd, False)
              and len(spread) == k and _numbers(spread, False))
    except (KeyError, TypeError):
        ok = False
    return None if ok else (f"its shape model does not fit its {k} landmarks (expected "
                            "mean (K, 2), modes (M, 2K), sd (M,), spread (K,))")


def _numbers(values, finite: bool = True) -> bool:
    """Every value a number (finite, with ``finite``; a shape model may hold NaN)."""
    return all(isinstance(v, (int, float)) and not isinstance(v, bool)
               and (not finite or math.isfinite(v)) for v in values)


def apply_fault(apply: Any, k: int) -> str | None:
    """Why a stage's ``apply`` gate is refused, or None (also for no gate): ``k``
    true/false values."""
    if apply is None:
        return None
    if not isinstance(apply, list) or len(apply) != k or \
            not all(isinstance(a, (bool, int)) for a in apply):
        return f"apply must be {k} true/false values (one per landmark), got {apply!r:.80}"
    return None


def _pairs_fault(pairs: Any, names: list[str]) -> str | None:
    if pairs is None:
        return None
    if not isinstance(pairs, list) or not all(
            isinstance(p, (list, tuple)) and len(p) == 2 and all(n in names for n in p)
            for p in pairs):
        return f"flip_pairs must be pairs of its landmark names, got {pairs!r:.80}"
    return None


def _spacing_fault(meta: dict, volume: bool) -> str | None:
    """The training spacing of an image domain must be plausible (it may stand in for an
    image's own); a volume domain's resampling spacing must be 3 positive numbers."""
    key = "target_spacing" if volume else "spacing"
    value = meta.get(key)
    if value is None:
        return None
    if volume:
        ok = isinstance(value, list) and len(value) == 3 and _numbers(value) and \
            all(v > 0 for v in value)
        return None if ok else f"target_spacing must be 3 positive numbers, got {value!r:.80}"
    fault = spacing_fault(value, 2)
    return f"spacing: {fault}" if fault else None


def thresholds_fault(value: Any, k: int) -> str | None:
    """Why stored presence thresholds are refused, or None (also for none): one number or
    ``k`` of them."""
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    if len(values) not in (1, k) or not _numbers(values, False):
        return f"presence_threshold must be one number or {k}, got {value!r:.80}"
    return None
