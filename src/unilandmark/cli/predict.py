"""``unilandmark predict``: landmarks on new images."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, friendly


def _collect_images(inputs: list[Path]) -> list[Path]:
    from ..io import is_image_file

    paths = []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file() and is_image_file(p))
            if not found:
                raise ValueError(f"{item}: no image files in this folder")
            paths += found
        elif item.is_file():
            paths.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    return paths


@friendly
def predict_cmd(
    inputs: list[Path] = typer.Argument(..., help="Image files and/or folders."),
    domain: str = typer.Option(None, "--domain", help="Domain (anatomy) of the images."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Default: the built-in model."),
    model: Path = typer.Option(None, "--model", help="An exported ONNX graph (model.onnx, see "
                                                     "`export`), run by onnxruntime instead "
                                                     "of PyTorch."),
    out: Path = typer.Option(..., "--out", help="Prediction CSV to write."),
    overlay: Path = typer.Option(None, "--overlay", help="Draw overlays into this folder."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ..."),
    batch_size: int = typer.Option(4, min=1),
    spacing: float = typer.Option(None, help="mm per pixel for images whose file has no "
                                             "spacing (PNG, JPEG, ...), e.g. 0.1 for ISBI"),
    measurements: bool = typer.Option(False, "--measurements",
                                      help="Also write the clinical measurements and classes "
                                           "to <out stem>_measurements.csv (see `measure`)."),
) -> None:
    """Predict landmarks on new images (no ground truth needed)."""
    from ..evaluate import write_predictions
    from ..limits import checked_spacing
    from ..naming import with_unique_ids
    from ..preflight import check_device, check_writable_dir, check_writable_file
    from ..report import draw_overlay
    from ..results import result_rows

    sp = checked_spacing(spacing, "--spacing")
    if model is not None and checkpoint is not None:
        raise ValueError("give --checkpoint (PyTorch) or --model (ONNX), not both")
    if model is None:
        device = check_device(device)
    check_writable_file(out, "--out")
    if overlay:
        check_writable_dir(overlay, "--overlay")
    paths = _collect_images(inputs)
    if model is not None:
        from ..export.runner import OnnxDetector

        detector = OnnxDetector(model, device=device)
    else:
        from ..predict import Detector

        detector = Detector.from_checkpoint(checkpoint, device=device)
    results = detector.predict_many(paths, domain, spacing=sp, batch_size=batch_size)
    results = with_unique_ids(results, paths)
    write_predictions(out, result_rows(results))
    console.print(f"wrote {len(results)} images x {len(results[0].names)} landmarks to {out}")
    if measurements:
        from ..measure import default_output, measure_file, write_measurements
        from ..measure.report import summary_lines

        table = measure_file(out, domain=results[0].domain)
        write_measurements(default_output(out), table)
        for line in summary_lines(table, default_output(out)):
            console.print(line, highlight=False)
    if overlay:
        overlay.mkdir(parents=True, exist_ok=True)
        for r in results:
            draw_overlay(r.image_path, r.points, None, overlay / f"{r.id}.png",
                         title=f"{r.id} ({r.domain}): mean confidence "
                               f"{float(r.confidence.mean()):.2f}")
        console.print(f"overlays: {overlay}")


