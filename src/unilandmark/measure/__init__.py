"""Clinical measurements from landmarks: angles, distances, ratios and their classes.

A :class:`MeasurementSpec` (plain data, YAML) names the measurements over landmark names;
the built-in ``isbi2015`` spec is the ISBI 2015 cephalometric set (ANB, SNB, SNA, ODI,
APDI, FHI, FHA, MW) exactly as the challenge organisers compute it; ``afids`` measures
the 32 AFIDs of a brain MRI in 3-D (world mm: AC-PC distance, midline planes, lateral
ventricles). See docs/measurements.md.

    from unilandmark.measure import builtin_specs, measure, classify
    spec = builtin_specs()["isbi2015"]
    values = measure(spec, points, names, spacing=(0.1, 0.1))   # points (K, 2) pixels
    classes = classify(spec, values)
"""

from .builtin import builtin_specs, covers, spec_for, specs_for_domain
from .classes import class_labels, classify, classify_batch
from .compute import (
    angle,
    line_plane_angle,
    measure,
    measure_batch,
    plane_angle,
    plane_distance,
    projected_length,
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
from .scoring import class_agreement, evaluate_measurements, evaluate_records, score_values
from .spec import ClassRule, Measurement, MeasurementSpec, SpecError, Term, load_spec, parse_spec

__all__ = [
    "ClassRule", "ImageLandmarks", "Measurement", "MeasurementSpec", "MeasurementTable",
    "SpecError", "Term", "angle", "builtin_specs", "class_agreement", "class_labels",
    "classify", "classify_batch", "covers", "default_output", "evaluate_measurements",
    "evaluate_records", "line_plane_angle", "load_spec", "measure", "measure_batch",
    "measure_file", "measure_images", "parse_spec", "plane_angle", "plane_distance",
    "projected_length", "read_landmark_images", "score_values", "signed_angle",
    "spec_for", "specs_for_domain", "write_measurements",
]
