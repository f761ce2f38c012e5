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

import json

from ..core.errors import InputError

FORMAT = "unilandmark-onnx/1"
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


def parse_metadata(props: dict[str, str]) -> dict:
    """ONNX ``metadata_props`` -> a dict with the JSON values decoded; a clear error for
    a graph not written by ``unilandmark export``."""
    if props.get("format") != FORMAT:
        raise InputError(f"not a unilandmark ONNX model (metadata format "
                         f"{props.get('format')!r}, expected {FORMAT!r}); export one with "
                         "`unilandmark export`")
    return {k: (json.loads(v) if k in JSON_KEYS else v) for k, v in props.items()}
