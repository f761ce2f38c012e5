"""Clinical measurements from landmarks: angles, distances, ratios and their classes.

A :class:`MeasurementSpec` (plain data, YAML) names the measurements over landmark names;
the built-in ``isbi2015`` spec is the ISBI 2015 cephalometric set (ANB, SNB, SNA, ODI,
APDI, FHI, FHA, MW) exactly as the challenge organisers compute it; ``afids`` measures
the 32 AFIDs of a brain MRI in 3-D (world mm: AC-PC distance, midline planes, lateral
ventricles). Named cephalometric analyses with norms (``steiner``, ``downs``,
``bjork-jarabak``, ``mcnamara``, ``holdaway``) are built-in specs too, read against their
norms by :func:`readings`. See docs/measurements.md.

    from unilandmark.measure import builtin_specs, measure, classify
    spec = builtin_specs()["isbi2015"]
    values = measure(spec, points, names, spacing=(0.1, 0.1))   # points (K, 2) pixels
    classes = classify(spec, values)
"""

from .builtin import (
    automatic_specs,
    builtin_specs,
    covers,
    resolve_spec,
    spec_for,
    specs_for_domain,
)
from .classes import class_labels, classify, classify_batch
from .compute import (
    angle,
    line_distance,
    line_plane_angle,
    measure,
    measure_batch,
    plane_angle,
    plane_distance,
    projected_length,
    projection,
    signed_angle,
)
from .files import (
    ImageLandmarks,
    MeasurementTable,
    default_output,
    measure_file,
    measure_images,
    read_landmark_images,
    write_measurements,
)
from .norms import Reading, deviation_sd, norm_status, norm_text, readings
from .scoring import class_agreement, evaluate_measurements, evaluate_records, score_values
from .spec import (
    ClassRule,
    Interpretation,
    Measurement,
    MeasurementSpec,
    Norm,
    SpecError,
    Term,
    load_spec,
    parse_spec,
)

__all__ = [
    "ClassRule", "ImageLandmarks", "Interpretation", "Measurement", "MeasurementSpec",
    "MeasurementTable", "Norm", "Reading", "SpecError", "Term", "angle", "automatic_specs",
    "builtin_specs", "class_agreement", "class_labels", "classify", "classify_batch",
    "covers", "default_output", "deviation_sd", "evaluate_measurements", "evaluate_records",
    "line_distance", "line_plane_angle", "load_spec", "measure", "measure_batch", "measure_file",
    "measure_images", "norm_status", "norm_text", "parse_spec", "plane_angle",
    "plane_distance", "projected_length", "projection", "read_landmark_images",
    "readings", "resolve_spec", "score_values", "signed_angle", "spec_for",
    "specs_for_domain", "write_measurements",
]
