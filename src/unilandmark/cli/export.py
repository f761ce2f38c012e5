"""``unilandmark export``: a model (or cascade) as one ONNX graph per domain."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, err_console, friendly


def size_note(checkpoint, onnx_path: Path) -> str:
    """Why the graph is larger than the model file, measured on the written graph: the
    weights in float32 (a slim model file keeps them in float16) and the mirror pass, a
    conditional branch that carries its own copy of stage 1's weights."""
    import onnx

    from ..checkpoints.builtin import model_path

    source = model_path(checkpoint)
    graph = onnx.load(str(onnx_path)).graph
    weights = sum(t.ByteSize() for t in graph.initializer)
    branches = sum(n.ByteSize() for n in graph.node if n.op_type in ("If", "Loop"))
    total = onnx_path.stat().st_size
    mb = 1024 * 1024
    return (f"{onnx_path.name}: {total / mb:.1f} MB ({source.name}: "
            f"{source.stat().st_size / mb:.1f} MB): the weights in float32, as onnxruntime "
            f"computes ({weights / mb:.1f} MB), the mirror pass, a branch run only when an "
            f"image may be mirrored, with its own copy of stage 1's weights "
            f"({branches / mb:.1f} MB), and the rest of the graph "
            f"({max(0, total - weights - branches) / mb:.1f} MB)")


def volume_size_note(checkpoint, onnx_path: Path) -> str:
    """Why an exported volume model is larger than its model file, measured on the
    written file: the weights in float32, each network's in its own branch."""
    import onnx

    from ..checkpoints.builtin import model_path

    source = model_path(checkpoint)
    model = onnx.load(str(onnx_path))
    weights = sum(t.ByteSize() for n in model.graph.node for a in n.attribute
                  for t in _initializers(a))
    total = onnx_path.stat().st_size
    mb = 1024 * 1024
    return (f"{onnx_path.name}: {total / mb:.1f} MB ({source.name}: "
            f"{source.stat().st_size / mb:.1f} MB): the weights in float32, as onnxruntime "
            f"computes ({weights / mb:.1f} MB), and the graphs of the networks and their "
            f"decoding ({max(0, total - weights) / mb:.1f} MB)")


def _initializers(attribute):
    """The initializers of a branch attribute (an If's then/else graph), recursively."""
    if attribute.type != attribute.GRAPH:
        return []
    graph = attribute.g
    return list(graph.initializer) + [t for n in graph.node for a in n.attribute
                                      for t in _initializers(a)]


@friendly
def export_cmd(
    out: Path = typer.Option(..., "--out", help="The ONNX file to write (model.onnx)."),
    domain: str = typer.Option(None, "--domain", help="The domain (anatomy) to export; "
                                                      "needed when the model has several."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Default: the built-in model "
                                    "head; a built-in model by name (head, head-mean, "
                                    "brain) or a model file or checkpoint."),
    check: bool = typer.Option(True, "--check/--no-check",
                               help="Run the written graph once through onnxruntime and "
                                    "compare it with PyTorch."),
    check_volume: Path = typer.Option(None, "--check-volume",
                                      help="Volume models: the volume the check runs on "
                                           "(default: a head phantom of the model's field "
                                           "of view)."),
) -> None:
    """Export stage 1, the orientation decision, every patch stage and the decoding as one
    ONNX graph (see docs/deployment.md); run it with `predict --model`. A volume model
    (a volume stage or cascade, e.g. the built-in brain) becomes one file holding each
    stage's network with its decoding."""
    from ..core.preflight import check_writable_file
    from ..export.exporter import export_onnx
    from ..export.volume_exporter import VolumeExportSummary

    check_writable_file(out, "--out")
    with err_console.status("exporting: tracing every stage to ONNX"
                            + (" and checking the graph with onnxruntime" if check else "")
                            + " (about a minute for the built-in model on a 2-core CPU)"):
        done = export_onnx(checkpoint, domain, out, check=check, check_volume=check_volume)
    console.print(f"wrote {done.path}: domain {done.domain}, {done.stages} stage(s), inputs "
                  f"{', '.join(done.inputs)}", highlight=False)
    if isinstance(done, VolumeExportSummary):
        console.print(volume_size_note(checkpoint, done.path), highlight=False)
        if check:
            console.print(f"onnxruntime agrees with PyTorch to {done.max_difference_voxel:.2g} "
                          f"voxel on the {done.check_volume}", highlight=False)
        return
    console.print(size_note(checkpoint, done.path), highlight=False)
    if check:
        console.print(f"onnxruntime agrees with PyTorch to {done.max_difference_px:.2g} px on "
                      "the tracing inputs", highlight=False)
