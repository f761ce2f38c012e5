"""An exported volume model's contract: its inputs, outputs and metadata (no torch, no onnx).

One ONNX file holds every network of a volume model (the coarse ``volume`` stage and each
``volume-patch`` stage that refines a landmark), each with its heatmap decoding, as the
branches of one ``If`` chosen by the ``stage`` input; only the chosen branch runs. What
lies between the networks (reading, turning to LPS, intensity, resampling, cutting cubes,
the way back to the stored volume's voxels and world millimetres) is numpy, in the driver
(:mod:`.volume_runner`, the same functions ``VolumeDetector`` uses).

Inputs (float32 unless said; points ``(x, y, z)``, the centre of the first voxel at 0):

- ``stage`` () int64: the network to run: 0 the coarse one on ``volume``, ``n`` patch
  stage ``n`` on ``stage{n}_patches``;
- ``volume`` (1, 1, Z, Y, X): the volume turned to LPS (``volume_inputs.canonical``),
  normalised by the domain's modality (``normalise_volume``) and resampled into the
  network grid (``resample_into`` of ``volume_geometry(turned, target_spacing,
  input_size)``; ``input_size`` = (X, Y, Z));
- ``stage{n}_patches`` (N, 1, P, P, P) for each patch stage ``n`` that refines at least
  one landmark (metadata ``stages[n].input``): cubes of ``patch_size`` P voxels cut
  around the current estimates (``volume_patches.cut_patches``).

Every input must be given: the inputs of the branches not chosen are not read (zeros of
the declared shape, one cube for the patches, do).

Outputs (N = 1 for the coarse stage, the number of cubes for a patch stage; K landmarks):

- ``points`` (N, K, 3): every landmark's channel decoded (argmax + log-parabola) in
  voxels of the stage's input grid (the network grid, or the cube);
- ``confidence`` (N, K): the peak probability of each channel.

For a patch stage the driver keeps channel k of the cube cut around landmark k.
"""

from __future__ import annotations

from ..core.errors import InputError
from ..core.jsontext import read_json
from ..core.limits import (
    MAX_STAGES,
    PATCH_SCALE_MM_RANGE,
    VOLUME_PATCH_SIDE_RANGE,
    input_size_fault,
    name_fault,
    range_fault,
)
from ..core.modelmeta import (
    apply_fault,
    domain_fault,
    landmark_names_fault,
    thresholds_fault,
    volume_intensity_fault,
)
from .contract import OPSET, VOLUME_FORMAT

__all__ = ["INPUTS", "OPSET", "OUTPUTS", "STAGE_INPUT", "VOLUME_FORMAT", "VOLUME_INPUT",
           "check_volume_metadata", "parse_volume_metadata", "patches_input"]

STAGE_INPUT = "stage"
VOLUME_INPUT = "volume"
#: the inputs every exported volume model has (then one per refining patch stage)
INPUTS = (STAGE_INPUT, VOLUME_INPUT)
OUTPUTS = ("points", "confidence")
#: metadata keys whose values are JSON (the others are plain strings)
JSON_KEYS = ("landmark_names", "input_size", "stages", "domain_meta", "provenance",
             "inputs", "outputs")
#: metadata keys the driver cannot do without
REQUIRED_KEYS = ("domain", "landmark_names", "input_size", "stages", "domain_meta")


def patches_input(n: int) -> str:
    """The input of patch stage ``n`` (1 = the first patch stage)."""
    return f"stage{n}_patches"


def parse_volume_metadata(props: dict[str, str]) -> dict:
    """ONNX ``metadata_props`` -> a dict with the JSON values decoded; a clear error for a
    file not written by ``unilandmark export`` from a volume model, for JSON nested beyond
    the limit, and for values that break the limits of ``core.limits``
    (:func:`check_volume_metadata`)."""
    if props.get("format") != VOLUME_FORMAT:
        raise InputError(f"not an exported unilandmark volume model (metadata format "
                         f"{props.get('format')!r}, expected {VOLUME_FORMAT!r}); export one "
                         "with `unilandmark export --checkpoint VOLUME_MODEL`")
    meta = {k: (read_json(v, f"metadata {k!r}") if k in JSON_KEYS else v)
            for k, v in props.items()}
    check_volume_metadata(meta)
    return meta


def check_volume_metadata(meta: dict) -> None:
    """Refuse (:class:`InputError`, one sentence naming the key) metadata the driver could
    not use or that would make it allocate without bound: a missing key, names with
    control characters or beyond the landmark limit, an ``input_size`` that is not 3
    sides within the limits, a ``domain_meta`` that breaks the model-file rules
    (``core.modelmeta.domain_fault``: counts, names, target spacing, presence thresholds)
    or the intensity rule, or that disagrees with ``input_size`` or ``landmark_names``,
    and ``stages`` that are not a volume stage then patch stages with sound cubes."""
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise InputError(f"the metadata has no {', '.join(map(repr, missing))} (edited, or "
                         "not written by `unilandmark export`); export the model again")
    fault = (name_fault(meta["domain"], "domain name")
             or landmark_names_fault(meta["landmark_names"])
             or input_size_fault(meta["input_size"], (3,)))
    if fault:
        raise InputError(f"metadata: {fault}")
    domain_meta = meta["domain_meta"]
    if not isinstance(domain_meta, dict):
        fault = "is not a JSON object"
    elif domain_meta.get("dims") != 3:
        fault = f"dims is {domain_meta.get('dims')!r:.40}, not 3 (not a volume domain)"
    else:
        fault = domain_fault(domain_meta, needs_input=True) or \
            volume_intensity_fault(domain_meta)
    if fault:
        raise InputError(f"metadata 'domain_meta': {fault}")
    for key in ("input_size", "landmark_names"):
        if list(domain_meta[key]) != list(meta[key]):
            raise InputError(f"metadata 'domain_meta' has another {key} than {key!r}: the "
                             "file is inconsistent (edited metadata?); export the model "
                             "again")
    _check_stages(meta["stages"], domain_meta["num_landmarks"])


def _check_stages(stages, k: int) -> None:
    """``stages``: 1 to ``MAX_STAGES`` objects, the first the coarse stage reading
    ``volume``, each further one a patch stage with its cube side and spacing in range,
    its input named as :func:`patches_input` (or null) and a gate and presence thresholds
    of ``k`` values."""
    if not isinstance(stages, list) or not stages or len(stages) > MAX_STAGES or \
            not all(isinstance(st, dict) for st in stages):
        raise InputError(f"metadata 'stages' must be a list of 1 to {MAX_STAGES} stage "
                         f"objects, got {str(stages)[:80]}")
    if stages[0].get("kind") != "volume" or stages[0].get("input") != VOLUME_INPUT:
        raise InputError(f"metadata 'stages': stage 0 must be the volume stage reading "
                         f"{VOLUME_INPUT!r}, got {str(stages[0])[:80]}")
    for n, stage in enumerate(stages[1:], start=1):
        fault = None
        if stage.get("kind") != "volume-patch":
            fault = f"kind {stage.get('kind')!r:.40} is not 'volume-patch'"
        fault = fault or _side_fault(stage.get("patch_size"))
        if not fault and stage.get("spacing") is not None:
            fault = range_fault(stage["spacing"], "spacing", PATCH_SCALE_MM_RANGE)
        if not fault and stage.get("input") not in (None, patches_input(n)):
            fault = f"input {stage.get('input')!r:.60} is not {patches_input(n)!r}"
        if not fault and stage.get("input") is not None and stage.get("apply") is None:
            fault = "a stage with an input has no 'apply' gate"
        fault = fault or apply_fault(stage.get("apply"), k) or \
            thresholds_fault(stage.get("presence_threshold"), k)
        if fault:
            raise InputError(f"metadata 'stages': stage {n}: {fault}")


def _side_fault(size) -> str | None:
    """Why a cube side is refused, or None: a whole number within
    :data:`~unilandmark.core.limits.VOLUME_PATCH_SIDE_RANGE` (a model file's bounds)."""
    lo, hi = VOLUME_PATCH_SIDE_RANGE
    if not isinstance(size, int) or isinstance(size, bool):
        return f"patch_size must be a whole number of voxels, got {size!r:.80}"
    if not lo <= size <= hi:
        return f"patch_size {size} is outside {lo}..{hi}"
    return None
