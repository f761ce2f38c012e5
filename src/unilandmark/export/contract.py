"""The exported graph's contract: input and output names, shapes, metadata keys.

Imports neither torch nor onnx: the runner reads the metadata through onnxruntime.

Inputs (B images; float32 unless said; all points ``(x, y)``, centre of the top-left
pixel (0, 0)):

- ``image`` (B, 1, H, W): each image normalised to [0, 1] (``io.normalise_intensity``)
  and resized into the domain's input size (W, H) with the domain's resize mode
  (``stretch``, or ``letterbox``: the picture at the top left, zeros right and below),
  anti-aliased bilinear, in the image's original orientation;
- ``original_size`` (B, 2): each image's (width, height) in original pixels;
- ``content_size`` (B, 2): the (width, height) the picture occupies inside ``image``
  ((W, H) for ``stretch``);
- ``orientation`` (B,) int64: 0 decide per image (``auto``), 1 as is (``original``),
  2 mirrored (``mirrored``);
- per patch stage ``n`` that refines at least one landmark (see the ``stages`` metadata):
  ``stage{n}_image`` (B, 1, Hn, Wn): the same normalised image resized by ``1 / s``
  (``s`` original pixels per patch pixel: the stage's ``scale``, or its ``scale_mm``
  divided by the image's mean spacing) to ``(max(8, round(w / s)), max(8, round(h / s)))``,
  in the original orientation, zero padded right and below to the batch's largest;
  ``stage{n}_size`` (B, 2): each image's resized (width, height) before padding.

Outputs:

- ``landmarks`` (B, K, 2): points in original pixels of the original image;
- ``confidence`` (B, K): the peak probability that placed each landmark (the last stage
  that refined it);
- ``mirrored`` (B,) bool: the image was read as a mirror of the training orientation;
- ``stage_landmarks`` (B, S, K, 2), ``stage_confidence`` (B, S, K): each stage's points
  and confidence (NaN where a stage did not refine a landmark);
- ``stage_spread`` (B, S, K): per patch stage, the RMS distance (original pixels) of the
  test-offset crops' points from their mean (NaN for stage 1, one-crop stages and
  landmarks a stage does not refine).
"""

from __future__ import annotations

from ..core.errors import InputError
from ..core.jsontext import read_json
from ..core.limits import (
    MAX_STAGES,
    PATCH_SCALE_MM_RANGE,
    PATCH_SCALE_RANGE,
    input_size_fault,
    name_fault,
    range_fault,
    spacing_fault,
)
from ..core.modelmeta import domain_fault, landmark_names_fault

FORMAT = "unilandmark-onnx/1"
#: the format of an exported volume model (:mod:`.volume_contract`)
VOLUME_FORMAT = "unilandmark-onnx-volume/1"
OPSET = 18
INPUTS = ("image", "original_size", "content_size", "orientation")
OUTPUTS = ("landmarks", "confidence", "mirrored", "stage_landmarks", "stage_confidence",
           "stage_spread")
ORIENTATION_CODES = {"auto": 0, "original": 1, "mirrored": 2}
#: how millimetres are found, in the order tried (the same rule as ``Detector``)
SPACING_RULE = ("the image file's own spacing (DICOM, MetaImage, NIfTI, ...); else the "
                "spacing given by the caller (--spacing); else, only when the caller accepts "
                "it explicitly, the model's training spacing (training_spacing); else no "
                "millimetres. points_mm = points * spacing, per axis. A patch stage with "
                "scale_mm needs a spacing.")
#: metadata keys whose values are JSON (the others are plain strings)
JSON_KEYS = ("landmark_names", "input_size", "training_spacing", "shape", "flip_pairs",
             "stages", "domain_meta", "provenance", "inputs", "outputs", "relocate",
             "calibration")


def stage_input_names(n: int) -> tuple[str, str]:
    """The two inputs of patch stage ``n`` (1 = the first patch stage)."""
    return f"stage{n}_image", f"stage{n}_size"


#: metadata keys the runner cannot do without
REQUIRED_KEYS = ("domain", "landmark_names", "input_size", "stages", "domain_meta")


def parse_metadata(props: dict[str, str]) -> dict:
    """ONNX ``metadata_props`` -> a dict with the JSON values decoded; a clear error for
    a graph not written by ``unilandmark export``, for JSON nested beyond the limit, and
    for values that break the limits of ``core.limits`` (:func:`check_metadata`)."""
    if props.get("format") == VOLUME_FORMAT:
        raise InputError("a volume model (exported from a volume stage): it predicts "
                         "volumes, through `unilandmark predict VOLUME --model` or "
                         "unilandmark.export.volume_runner.OnnxVolumeDetector")
    if props.get("format") != FORMAT:
        raise InputError(f"not a unilandmark ONNX model (metadata format "
                         f"{props.get('format')!r}, expected {FORMAT!r}); export one with "
                         "`unilandmark export`")
    meta = {k: (read_json(v, f"metadata {k!r}") if k in JSON_KEYS else v)
            for k, v in props.items()}
    check_metadata(meta)
    return meta


def check_metadata(meta: dict) -> None:
    """Refuse (:class:`InputError`, one sentence naming the key) metadata the runner could
    not use or that would make it allocate without bound: a missing key, landmark names
    with control characters or beyond the landmark limit, an input size outside the
    limits (``[0, 0]``, ``[100000, 100000]``), a ``stages`` value that is not a list of
    stages, a patch stage whose ``scale`` or ``scale_mm`` is outside its range (a scale of
    1e-6 would enlarge every image a million times), a domain metadata that disagrees
    on the input size (the runner compares the landmark names with the graph, then with
    ``domain_meta``)."""
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise InputError(f"the metadata has no {', '.join(map(repr, missing))} (edited, or "
                         "not written by `unilandmark export`); export the model again")
    fault = (name_fault(meta["domain"], "domain name")
             or landmark_names_fault(meta["landmark_names"])
             or input_size_fault(meta["input_size"], (2,)))
    if not fault and meta.get("training_spacing") is not None:
        fault = spacing_fault(meta["training_spacing"])
        fault = fault and f"training_spacing: {fault}"
    if fault:
        raise InputError(f"metadata: {fault}")
    domain_meta = meta["domain_meta"]
    fault = domain_fault({**domain_meta, "shape": meta.get("shape"),
                          "flip_pairs": meta.get("flip_pairs")}, needs_input=True) \
        if isinstance(domain_meta, dict) else "is not a JSON object"
    if fault:
        raise InputError(f"metadata 'domain_meta': {fault}")
    if list(domain_meta["input_size"]) != list(meta["input_size"]):
        raise InputError(f"metadata 'domain_meta' has input_size {domain_meta['input_size']}"
                         f" but 'input_size' is {meta['input_size']}: the file is "
                         "inconsistent (edited metadata?); export the model again")
    _check_stages(meta["stages"], domain_meta["num_landmarks"])


def _check_stages(stages, k: int) -> None:
    """The ``stages`` metadata: a list of 1 to ``MAX_STAGES`` objects, each patch stage
    with its scale in range, its inputs named and a gate of ``k`` values."""
    if not isinstance(stages, list) or not stages or len(stages) > MAX_STAGES or \
            not all(isinstance(st, dict) for st in stages):
        raise InputError(f"metadata 'stages' must be a list of 1 to {MAX_STAGES} stage "
                         f"objects, got {str(stages)[:80]}")
    for n, stage in enumerate(stages[1:], start=1):
        scale_mm = stage.get("scale_mm")
        fault = (range_fault(stage.get("scale"), "scale", PATCH_SCALE_RANGE)
                 if scale_mm is None else
                 range_fault(scale_mm, "scale_mm", PATCH_SCALE_MM_RANGE))
        if not fault and any(stage.get(key) not in (None, expected)
                             for key, expected in zip(("input", "size_input"),
                                                      stage_input_names(n), strict=True)):
            fault = f"inputs {stage.get('input')!r}, {stage.get('size_input')!r} are not " \
                    f"{stage_input_names(n)}"
        apply = stage.get("apply")
        if not fault and apply is not None and (not isinstance(apply, list) or
                                                len(apply) != k):
            fault = f"apply must be {k} true/false values, got {str(apply)[:80]}"
        if fault:
            raise InputError(f"metadata 'stages': stage {n}: {fault}")
