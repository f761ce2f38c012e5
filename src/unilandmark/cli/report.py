"""``unilandmark report``: one HTML page and one PDF per image (landmarks traced on the
image, every analysis against its norms, QC verdict, model, spacing), and one CSV of all
measurements. A bad image is listed at the end with its reason and gives exit code 2;
the others are reported (docs/report.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..core.errors import InputError
from ..core.wording import plural
from .common import EXIT_INPUT, console, err_console, friendly


@friendly
def report_cmd(
    inputs: list[Path] = typer.Argument(None, help="Image files and/or folders (every image "
                                                   "file in a folder, not recursive)."),
    out: Path = typer.Option(..., "--out", help="Folder to write <image>.html, <image>.pdf "
                                                "and measurements.csv into."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Model file, or a built-in "
                                    "model by name: head (the default) or head-mean."),
    analysis: list[str] = typer.Option(None, "--analysis", help="An analysis to show: a "
                                       "built-in name (steiner, downs, bjork-jarabak, "
                                       "mcnamara, holdaway, isbi2015) or a spec YAML file "
                                       "with your own norms; repeatable. Default: every "
                                       "built-in analysis the model's landmarks allow."),
    spacing: float = typer.Option(None, help="mm per pixel for images whose file has no "
                                             "spacing (PNG, JPEG, ...), e.g. 0.1 for ISBI "
                                             "2015; the file's own spacing wins."),
    spacing_file: Path = typer.Option(None, "--spacing-file",
                                      help="A CSV giving each image its own spacing: "
                                           "image,spacing or image,spacing_x,spacing_y (as "
                                           "for predict); it wins over the header and "
                                           "--spacing."),
    domain: str = typer.Option(None, "--domain", help="Domain (anatomy) of the images; "
                                                      "optional for one-domain models."),
    device: str = typer.Option("auto", help="auto (a GPU where there is one), cpu, cuda, "
                                            "..."),
    date: str = typer.Option(None, "--date", help="The date printed on the reports "
                                                  "(default: now)."),
) -> None:
    """A report per image (HTML and PDF): the landmarks traced on the image, each analysis
    (Steiner, Downs, Björk-Jarabak, McNamara, Holdaway, ISBI 2015) as value, norm,
    deviation in SD and meaning, the QC verdict, the model and the spacing; plus one CSV
    of all measurements, one row per image."""
    from ..core.limits import checked_spacing
    from ..core.preflight import check_device, check_writable_dir
    from ..reporting import report_images

    sp = checked_spacing(spacing, "--spacing")
    device = check_device(device)
    check_writable_dir(out, "--out")
    if not inputs:
        raise InputError("give image files or folders")

    def said(rid, html, pdf, report):
        console.print(f"{rid}: {html.name}, {pdf.name} (QC {report.qc_words})",
                      highlight=False, markup=False)

    outcome = report_images(inputs, out, checkpoint, analysis, sp, domain, device, date,
                            on_report=said, spacing_file=spacing_file)
    if outcome.skipped:
        console.print(f"skipped {outcome.skipped} file(s) in the folders that are not images",
                      highlight=False)
    if outcome.table is not None:
        console.print(f"wrote {plural(len(outcome.written), 'report')} to {out}; "
                      f"measurements: {outcome.table}", highlight=False)
    if outcome.failures:
        total = len(outcome.written) + len(outcome.failures)
        err_console.print(f"[red]{len(outcome.failures)} of {total} input(s) could not be "
                          "reported[/red]", highlight=False)
        for item, reason in outcome.failures:
            err_console.print(f"  {item}: {reason}", highlight=False, markup=False)
        raise typer.Exit(EXIT_INPUT)
