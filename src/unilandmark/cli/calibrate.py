"""``unilandmark calibrate``: fit a model file's quality flags on a validation split."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from .common import OPT_HELP, console, err_console, friendly, parse_options


@friendly
def calibrate_cmd(
    checkpoint: Path = typer.Argument(..., help="Model file to calibrate (best.pt, a cascade "
                                                "or a slim model file)."),
    out: Path = typer.Option(..., "--out", help="Where to write the calibrated model file "
                                                "(may be the same file)."),
    domain: str = typer.Option(None, "--domain", help="Calibrate this domain only (default: "
                                                      "every domain with a validation split)."),
    dataset: str = typer.Option(None, "--dataset", help="Dataset adapter of the validation "
                                                        "data (default: the training config's)."),
    root: Path = typer.Option(None, "--root", help="Dataset root (default: the training "
                                                   "config's)."),
    split: str = typer.Option(None, "--split", help="Validation split (default: the training "
                                                    "config's val_split)."),
    annotator: str = typer.Option(None, "--annotator", help="Ground truth annotator (adapter "
                                                            "option; default: the config's)."),
    opt: list[str] = typer.Option(None, "--opt", help=OPT_HELP),
    target_recall: float = typer.Option(0.8, "--target-recall",
                                        help="Fraction of the validation points with an error "
                                             "above the radius the flags should catch."),
    max_flagged: float = typer.Option(0.10, "--max-flagged",
                                      help="At most this fraction of validation points "
                                           "flagged (raises the threshold when needed)."),
    device: str = typer.Option("cpu", help="Torch device: cpu, auto, cuda, cuda:1, ..."),
    batch_size: int = typer.Option(4, min=1, help="Images per forward pass."),
) -> None:
    """Fit the quality flags (risk per landmark, flag threshold, QC) on validation images
    and store them in the model file; see docs/quality.md."""
    from ..core.preflight import check_device, check_model_suffix, check_writable_file
    from ..workflows.calibrate import calibrate_checkpoint

    check_model_suffix(out, "--out")
    check_writable_file(out, "--out")
    device = check_device(device)
    options = parse_options(opt)
    if annotator is not None:
        options["annotator"] = annotator
    calibrate_checkpoint(checkpoint, out, domain, dataset, str(root) if root else None, split,
                         options, target_recall, max_flagged, device, batch_size,
                         log=lambda line: console.print(line, highlight=False),
                         warn=lambda text: err_console.print(
                             f"[yellow]warning:[/yellow] {escape(text)}", highlight=False))
    console.print(f"wrote {out}")
