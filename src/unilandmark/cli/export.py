"""``unilandmark export``: a model (or cascade) as one ONNX graph per domain."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, friendly


@friendly
def export_cmd(
    out: Path = typer.Option(..., "--out", help="The ONNX file to write (model.onnx)."),
    domain: str = typer.Option(None, "--domain", help="The domain (anatomy) to export; "
                                                      "needed when the model has several."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Default: the built-in model."),
    check: bool = typer.Option(True, "--check/--no-check",
                               help="Run the written graph once through onnxruntime and "
                                    "compare it with PyTorch."),
) -> None:
    """Export stage 1, the orientation decision, every patch stage and the decoding as one
    ONNX graph (see docs/deployment.md); run it with `predict --model`."""
    from ..core.preflight import check_writable_file
    from ..export.exporter import export_onnx

    check_writable_file(out, "--out")
    done = export_onnx(checkpoint, domain, out, check=check)
    console.print(f"wrote {done.path}: domain {done.domain}, {done.stages} stage(s), inputs "
                  f"{', '.join(done.inputs)}", highlight=False)
    if check:
        console.print(f"onnxruntime agrees with PyTorch to {done.max_difference_px:.2g} px on "
                      "the tracing inputs", highlight=False)
