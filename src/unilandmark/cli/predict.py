"""``unilandmark predict``: landmarks on new images."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from .common import console, err_console, friendly

CSV_HELP = ("Prediction CSV to write: image,landmark,x,y,name, x_mm,y_mm (only where a "
            "spacing is known), confidence, domain, spacing_x,spacing_y,spacing_source "
            "(file, option, model or empty); see docs/protocols.md.")


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


def fallback_spacing(detector, domain: str | None, spacing: float | None,
                     assume_training_spacing: bool) -> tuple[tuple[float, float] | None, str]:
    """The spacing (mm/px, (x, y)) for images whose file carries none, and its source:
    ``--spacing`` (``option``), the model's training spacing when the user accepted it
    (``model``), or none."""
    if spacing is not None and assume_training_spacing:
        raise ValueError("give --spacing or --assume-training-spacing, not both")
    if spacing is not None:
        if not (math.isfinite(spacing) and spacing > 0):
            raise ValueError(f"--spacing must be positive and finite (mm per pixel), "
                             f"got {spacing}")
        return (spacing, spacing), "option"
    if assume_training_spacing:
        from ..predict import training_spacing

        trained = training_spacing(detector, domain)
        if trained is None:
            raise ValueError("--assume-training-spacing: this model does not record the "
                             "spacing of its training images for this domain; give --spacing")
        if not all(math.isfinite(v) and v > 0 for v in trained):
            raise ValueError(f"--assume-training-spacing: the model's training spacing "
                             f"{trained} is not positive and finite; give --spacing")
        return trained, "model"
    return None, ""


@friendly
def predict_cmd(
    inputs: list[Path] = typer.Argument(..., help="Image files and/or folders (every image "
                                                  "file in a folder, not recursive)."),
    domain: str = typer.Option(None, "--domain", help="Domain (anatomy) of the images, e.g. "
                                                      "head; optional for one-domain models."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Trained checkpoint (best.pt "
                                    "or a slim/cascade file). Default: the built-in ISBI "
                                    "head model."),
    out: Path = typer.Option(..., "--out", help=CSV_HELP),
    overlay: Path = typer.Option(None, "--overlay", help="Also draw each image with its "
                                                         "named landmarks into this folder."),
    device: str = typer.Option("cpu", help="Torch device: cpu, cuda, cuda:1, ..."),
    batch_size: int = typer.Option(4, help="Images per forward pass."),
    spacing: float = typer.Option(None, help="mm per pixel for images whose file has no "
                                             "spacing (PNG, JPEG, ...), e.g. 0.1 for ISBI "
                                             "2015; the file's own spacing wins."),
    assume_training_spacing: bool = typer.Option(
        False, "--assume-training-spacing",
        help="For images without a spacing, use the median spacing of the model's training "
             "images (only when you know your images share it)."),
) -> None:
    """Predict landmarks on new images (no ground truth needed).

    Millimetres are written only where a spacing is known: from the image file (DICOM,
    MetaImage, NIfTI, NRRD), from --spacing, or from the model's
    training spacing with --assume-training-spacing. The CSV records the spacing used per
    image and its source.
    """
    from ..evaluate import write_predictions
    from ..predict import Detector, result_rows
    from ..report import draw_overlay
    from .progress import image_progress

    paths = _collect_images(inputs)
    detector = Detector.from_checkpoint(checkpoint, device=device)
    sp, source = fallback_spacing(detector, domain, spacing, assume_training_spacing)
    with image_progress(len(paths), err_console) as advance:
        results = detector.predict_many(paths, domain, spacing=sp, batch_size=batch_size,
                                        spacing_source=source or "option",
                                        on_result=lambda _: advance())
    write_predictions(out, result_rows(results))
    without = sum(r.spacing is None for r in results)
    console.print(f"wrote {len(results)} images x {len(results[0].names)} landmarks to {out}"
                  + (f" ({without} image(s) without a spacing: pixels only; see --spacing)"
                     if without else ""))
    if overlay:
        overlay.mkdir(parents=True, exist_ok=True)
        for r in results:
            draw_overlay(r.image_path, r.points, None, overlay / f"{r.id}.png",
                         title=f"{r.id} ({r.domain})", names=r.names,
                         confidence=r.confidence)
        console.print(f"overlays: {overlay}")
