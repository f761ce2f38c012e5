"""``unilandmark measure``: clinical measurements and classes from a prediction CSV."""

from __future__ import annotations

from pathlib import Path

import typer

from ..core.limits import checked_spacing
from ..core.preflight import check_not_an_input, check_writable_file
from .common import console, friendly


@friendly
def measure_cmd(
    predictions: Path = typer.Argument(..., help="Prediction CSV (image,landmark,x,y,...; "
                                     "a volume CSV with z / z_mm: world mm)."),
    domain: str = typer.Option(None, "--domain", help="Domain of the images (e.g. head): "
                                                      "picks the built-in spec; default: the "
                                                      "file's domain column or the landmark "
                                                      "names."),
    spec: Path = typer.Option(None, "--spec", help="Measurement spec YAML, or a built-in "
                                                   "spec or analysis by name (isbi2015, "
                                                   "steiner, downs, bjork-jarabak, mcnamara, "
                                                   "holdaway); default: the built-in spec "
                                                   "that fits."),
    truncate: bool = typer.Option(False, "--truncate/--float",
                                  help="Truncate coordinates to integers first, as the ISBI "
                                       "2015 organisers' code does (default: floats)."),
    spacing: float = typer.Option(None, help="mm per pixel for images whose rows carry no "
                                             "spacing (e.g. 0.1 for ISBI JPEGs)."),
    out: Path = typer.Option(None, "--out", help="CSV to write (default: "
                                                 "<predictions stem>_measurements.csv)."),
) -> None:
    """Measurements and classes per image (one row per image), e.g. ANB, SNB, SNA, ODI,
    APDI, FHI, FHA, MW for a cephalogram."""
    from ..measure import default_output, measure_file, resolve_spec, write_measurements
    from ..measure.report import summary_lines

    pair = checked_spacing(spacing, "--spacing")
    out = out or default_output(predictions)
    check_not_an_input(out, [predictions], "--out")
    check_writable_file(out, "--out")
    chosen = resolve_spec(spec) if spec else None
    table = measure_file(predictions, chosen, domain, pair, truncate)
    write_measurements(out, table)
    for line in summary_lines(table, out):
        console.print(line, highlight=False)
