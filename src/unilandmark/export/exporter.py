"""``export_onnx``: a checkpoint (or the built-in model) -> one ONNX graph per domain.

The graph (:mod:`.graph`) holds every stage, the decoding and the mapping back to
original pixels; the file's ``metadata_props`` hold what a runner needs around it
(landmark names, input size, resize mode, spacing rule, training spacing, shape model,
flip pairs, stage configs, versions). After writing, the graph is run once through
onnxruntime on the tracing inputs and compared with PyTorch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.atomic import atomic_path
from ..core.errors import InputError
from ..core.version import __version__
from ..inference.detector import Detector
from .contract import FORMAT, INPUTS, OPSET, OUTPUTS, SPACING_RULE, stage_input_names
from .graph import PredictionGraph
from .tracing import ExportCheckError, provenance_of, quiet_export, require_onnx

__all__ = ["CHECK_TOLERANCE_PX", "ExportCheckError", "ExportSummary", "export_onnx",
           "input_names", "metadata", "quiet_export", "require_onnx"]

#: the exported graph must reproduce PyTorch on the tracing inputs to this many pixels
CHECK_TOLERANCE_PX = 0.05


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    domain: str
    stages: int
    inputs: tuple[str, ...]
    max_difference_px: float


def export_onnx(checkpoint: str | os.PathLike | None, domain: str | None,
                out: str | os.PathLike, check: bool = True,
                check_volume: str | os.PathLike | None = None):
    """Export ``Detector(relocate=False)`` of ``domain`` (the checkpoint's only domain when
    None) to ``out``, written atomically. A volume model is exported by
    :func:`.volume_exporter.export_volume_onnx` (a ``VolumeExportSummary``; ``check_volume``:
    the volume its check runs on, default a phantom)."""
    require_onnx()
    import onnx

    from ..checkpoints.builtin import model_path
    from ..checkpoints.checkpoint import load_checkpoint
    from ..inference.volume_detector import is_volume_model

    path = model_path(checkpoint)
    state = load_checkpoint(path)
    if is_volume_model(state):
        from .volume_exporter import export_volume_onnx

        return export_volume_onnx(state, path, domain, out, check, check_volume)
    if check_volume is not None:
        raise InputError("--check-volume is for volume models; this is a 2-D model (its "
                         "check runs on its tracing inputs)")
    detector = Detector.from_checkpoint_state(state, relocate=False, source=str(path))
    domain = detector._domain(domain)
    # the built-in model's figures live beside it
    provenance = provenance_of(state, path, checkpoint is None)
    graph = PredictionGraph(detector, domain).eval()
    names = input_names(graph)
    example = _example_inputs(graph, detector, domain)
    with torch.no_grad(), quiet_export():
        program = torch.onnx.export(graph, example, dynamo=True, opset_version=OPSET,
                                    input_names=names, output_names=list(OUTPUTS),
                                    dynamic_shapes=_dynamic_shapes(graph), verbose=False)
    proto = program.model_proto
    for key, value in metadata(detector, domain, graph, names, provenance).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = (f"unilandmark {__version__}: landmarks of domain {domain!r} "
                        "(stage 1, orientation, patch stages, decoding, original pixels)")
    out = Path(out)
    with atomic_path(out) as tmp:  # checked before it takes the final name
        onnx.save(proto, str(tmp))
        difference = _check(tmp, graph, example, names, out) if check else float("nan")
    return ExportSummary(out, domain, 1 + len(graph.stages), tuple(names), difference)


def input_names(graph: PredictionGraph) -> list[str]:
    """The graph's input names in the forward's order (:mod:`.contract`)."""
    names = list(INPUTS)
    for n, needed in enumerate(graph.stage_inputs, start=1):
        if needed is not None:
            names += stage_input_names(n)
    return names


def metadata(detector: Detector, domain: str, graph: PredictionGraph, names,
             provenance: dict) -> dict:
    """The ``metadata_props`` of the exported file (strings; JSON where structured)."""
    from ..checkpoints.checkpoint import versions

    meta = detector.domains[domain]
    stages = [{"index": 0, "kind": "image", "model": detector.model_name,
               "input": "image", "input_size": list(meta["input_size"]),
               "resize": meta.get("resize", "stretch")}]
    refiners = [r for r in detector.refiners if domain in r.domains]
    for n, (refiner, needed) in enumerate(zip(refiners, graph.stage_inputs, strict=True), 1):
        sc = refiner.config
        image, size = stage_input_names(n)
        apply = refiner.domains[domain].get("apply") or [True] * graph.k
        stages.append({"index": n, "kind": "patch", "patch_size": sc.patch_size,
                       "scale": sc.scale, "scale_mm": sc.scale_mm, "sigma": sc.sigma,
                       "test_offsets": sc.test_offsets, "apply": [bool(a) for a in apply],
                       "input": image if needed else None,
                       "size_input": size if needed else None})
    domain_meta = {k: v for k, v in meta.items() if k != "shape"}
    values = {
        "format": FORMAT, "unilandmark_version": __version__, "domain": domain,
        "landmark_names": list(meta["landmark_names"]),
        "input_size": list(meta["input_size"]), "resize": meta.get("resize", "stretch"),
        "spacing_rule": SPACING_RULE, "training_spacing": meta.get("spacing"),
        "shape": meta.get("shape"), "flip_pairs": meta.get("flip_pairs") or [],
        "stages": stages, "domain_meta": domain_meta,
        "provenance": provenance,
        # the quality calibration (unilandmark calibrate), so the runner's risk and flags
        # are the calibrated ones (null: uncalibrated model)
        "calibration": detector.calibrations.get(domain),
        "inputs": list(names), "outputs": list(OUTPUTS), "relocate": False,
        "versions": json.dumps(versions()),
    }
    return {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in values.items()}


def _example_inputs(graph: PredictionGraph, detector: Detector, domain: str):
    """Tracing inputs: two images of different sizes, one forced mirrored. The images are
    smooth noise (:func:`_smooth_noise`) so that the heatmaps the check compares have
    peaks: on white noise they are flat and the two runtimes' rounding picks between
    near-ties (0.48 px apart on the ``head-mean`` model, against 0.04 px on smooth noise)."""
    from ..core.geometry import patch_scale

    w1, h1 = graph.input_size
    generator = torch.Generator().manual_seed(0)
    sizes = [(3 * w1 + 5, 3 * h1 + 1), (2 * w1 + 3, 2 * h1 + 7)]
    image = _smooth_noise((2, 1, h1, w1), generator)
    original = torch.tensor(sizes, dtype=torch.float32)
    content = torch.tensor([[w1, h1]] * 2, dtype=torch.float32)
    orientation = torch.tensor([0, 2], dtype=torch.long)
    inputs = [image, original, content, orientation]
    spacing = detector.domains[domain].get("spacing") or (0.1, 0.1)
    refiners = [r for r in detector.refiners if domain in r.domains]
    for refiner, needed in zip(refiners, graph.stage_inputs, strict=True):
        if needed is None:
            continue
        s = patch_scale(tuple(spacing), refiner.config.scale, refiner.config.scale_mm)
        scaled = [(max(8, round(w / s)), max(8, round(h / s))) for w, h in sizes]
        wp, hp = max(w for w, _ in scaled), max(h for _, h in scaled)
        stage = torch.zeros((2, 1, hp, wp))
        for j, (w, h) in enumerate(scaled):
            stage[j, :, :h, :w] = _smooth_noise((1, 1, h, w), generator)[0]
        inputs += [stage, torch.tensor(scaled, dtype=torch.float32)]
    return tuple(inputs)


def _smooth_noise(shape: tuple[int, int, int, int], generator: torch.Generator,
                  cell: int = 16) -> torch.Tensor:
    """(B, C, H, W) noise in [0, 1] that varies over ``cell`` pixels: uniform noise on a
    grid ``cell`` times coarser, bilinearly upsampled."""
    b, c, h, w = shape
    coarse = torch.rand((b, c, max(2, h // cell), max(2, w // cell)), generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear",
                                           align_corners=False)


def _dynamic_shapes(graph: PredictionGraph):
    """Dynamic axes: the batch everywhere, and each stage image's height and width. The
    patch-stage inputs are the forward's ``*stage_inputs``: one nested tuple."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    stages = []
    for n, needed in enumerate(graph.stage_inputs, start=1):
        if needed is not None:
            stages += [{0: batch, 2: torch.export.Dim(f"stage{n}_height", min=8),
                        3: torch.export.Dim(f"stage{n}_width", min=8)}, {0: batch}]
    first = ({0: batch}, {0: batch}, {0: batch}, {0: batch})
    # a cascade whose gates turned every landmark off has no stage inputs at all
    return (*first, tuple(stages)) if stages else first


def _check(path: Path, graph: PredictionGraph, example, names, out: Path) -> float:
    """Largest landmark difference (px) between onnxruntime and PyTorch on ``example``
    (``path``: the graph just written; ``out``: its final name, for the message)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {n: t.numpy() for n, t in zip(names, example, strict=True)}
    got = session.run(["landmarks"], feeds)[0]
    with torch.no_grad():
        expected = graph(*example)[0].numpy()
    gaps = np.abs(got - expected).max(axis=-1)  # (B, K)
    difference = float(gaps.max())
    # the tracing inputs are noise: flat heatmaps where two neighbouring pixels can tie, and
    # float rounding in either runtime may pick the other one; a broken graph is off by
    # far more than a pixel, or on many points
    if not (difference < 1.0 and (gaps > CHECK_TOLERANCE_PX).mean() <= 0.05):
        raise ExportCheckError(
            f"{out}: not written: the exported graph disagrees with PyTorch by up to "
            f"{difference:.3f} px ({(gaps > CHECK_TOLERANCE_PX).sum()} of {gaps.size} points "
            f"beyond {CHECK_TOLERANCE_PX} px) on the tracing inputs; please report this "
            "model (the export of its architecture is faulty)")
    return difference
