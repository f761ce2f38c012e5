"""``unilandmark conventions``: a site's per-landmark offsets from a model (docs/adapt.md)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from .common import OPT_HELP, build_spec, console, friendly


@friendly
def conventions_cmd(
    data: Path = typer.Option(..., "--data", help="The site's labelled images: a dataset "
                                                  "root, or a table for --dataset csv."),
    dataset: str = typer.Option("csv", "--dataset", help="Dataset adapter of --data."),
    opt: list[str] = typer.Option(None, "--opt", help=OPT_HELP),
    annotator: str = typer.Option(None, "--annotator", help="Adapter option annotator "
                                                            "(isbi2015: senior, junior)."),
    split: str = typer.Option("all", "--split", help="Which images of the dataset."),
    checkpoint: str = typer.Option("builtin", "--checkpoint", help="Model: a file, or a "
                                   "built-in name (head-mean, head)."),
    domain: str = typer.Option("head", "--domain", help="The model's domain to compare."),
    json_out: Path = typer.Option(None, "--json", help="Write the report as JSON."),
    md_out: Path = typer.Option(None, "--md", help="Write the report as Markdown."),
    device: str = typer.Option("cpu", "--device", help="cpu, auto, cuda, ..."),
) -> None:
    """Per landmark, how far the model's points lie from the site's, on average (the
    site's convention), with its spread: where a clinic's habits differ before it adapts
    the model, and after. See docs/adapt.md."""
    from ..core.atomic import atomic_write_text
    from ..core.jsontext import json_text
    from ..core.preflight import check_device, check_writable_file
    from ..inference.detector import Detector
    from ..workflows.conventions import convention_report, headline, report_markdown

    for path, option in ((json_out, "--json"), (md_out, "--md")):
        if path is not None:
            check_writable_file(path, option)
    spec = build_spec(dataset, data, annotator, opt)
    if split not in spec.splits:
        from ..core.errors import InputError

        raise InputError(f"--split {split}: not a split of {spec.name}; known: "
                         f"{', '.join(sorted(spec.splits))}")
    detector = Detector.from_checkpoint(checkpoint, check_device(device))
    report = convention_report(detector, domain, spec, split)
    u = report["unit"]
    table = Table(title=f"{spec.name} {split} against {domain} ({u}, model minus site)")
    for column in ("landmark", "dx", "dy", "offset", "spread", "n", "convention"):
        table.add_column(column, justify="left" if column == "landmark" else "right")
    for r in report["landmarks"]:
        table.add_row(r["landmark"], f"{r['dx']:+.2f}", f"{r['dy']:+.2f}",
                      f"{r['offset']:.2f}", f"{r['spread']:.2f}", str(r["n"]),
                      "yes" if r["significant"] else "no")
    console.print(table)
    console.print(headline(report), highlight=False)
    if json_out is not None:
        atomic_write_text(json_out, json_text(report))
        console.print(f"wrote {json_out}")
    if md_out is not None:
        atomic_write_text(md_out, report_markdown(report))
        console.print(f"wrote {md_out}")
