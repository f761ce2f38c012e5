"""``unilandmark datasets ...``: list, check, export and make datasets."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from ..core.wording import plural
from ..data.faults import DatasetError
from .common import OPT_HELP, build_spec, console, err_console, friendly, parse_size

datasets_app = typer.Typer(no_args_is_help=True, help="List, check, export and make datasets.")


@datasets_app.command("list")
def datasets_list() -> None:
    """List the dataset adapters and the named evaluation protocols."""
    from ..data.adapters.catalog import DATASETS
    from ..evaluation.protocols import PROTOCOLS

    console.print("[bold]datasets[/bold] (roots, options and splits: docs/datasets.md)")
    for name, builder in DATASETS.items():
        console.print(f"  {name:16s} {adapter_summary(builder)}", highlight=False)
    console.print("[bold]protocols[/bold] (metrics and rules: docs/protocols.md)")
    for name, p in PROTOCOLS.items():
        console.print(f"  {name:22s} {p.description}", highlight=False)


def adapter_summary(builder) -> str:
    """The first line of an adapter's docstring, pointing to the user docs rather than to
    the source (``see the module docstring`` -> ``see docs/datasets.md``)."""
    doc = (builder.__doc__ or "").strip().splitlines()
    line = doc[0] if doc else ""
    return re.sub(r"see the (module )?docstring", "see docs/datasets.md", line)


@datasets_app.command("check")
@friendly
def datasets_check(
    name: str = typer.Argument(..., help="Adapter name (see `datasets list`)."),
    root: Path = typer.Option(..., "--root", help="Dataset folder (or table for csv)."),
    annotator: str = typer.Option(None, help="isbi2015: senior, junior or mean."),
    opt: list[str] = typer.Option(None, "--opt", metavar="KEY=VALUE", help=OPT_HELP),
    json_out: Path = typer.Option(None, "--json", help="Also write the summary as JSON."),
    header_only: bool = typer.Option(False, help="Read image headers only (faster)."),
) -> None:
    """Validate every record; print a summary and ALL faults; exit 1 when there are faults."""
    from ..core.preflight import check_writable_file
    from ..data.validate import check_dataset
    from ..evaluation.report import write_json

    if json_out:
        check_writable_file(json_out, "--json")
    try:
        spec = build_spec(name, root, annotator, opt)
    except DatasetError as err:
        err_console.print(f"[red]{len(err.faults)} fault(s) in {name} at {root}:[/red]")
        for f in err.faults:
            err_console.print(f"  - {f}", highlight=False, markup=False)
        raise typer.Exit(1) from None
    summary, faults = check_dataset(spec, read_pixels=not header_only)
    console.print(f"[bold]{spec.name}[/bold] ({spec.domain}) at {root}")
    console.print(f"  records: {summary['records']}   landmarks: {summary['landmarks']}   "
                  f"visible points: {summary['visible_points']}   unit: {summary['unit']}")
    console.print("  splits: " + ", ".join(f"{k} {v}" for k, v in summary["splits"].items()))
    sp = summary["spacing_mm"]
    volumes = bool(sp and len(sp["min"]) == 3)
    axes = "xyz" if volumes else "xy"
    console.print(f"  spacing (mm/{'voxel' if volumes else 'px'}): " + (", ".join(
        f"{a} {lo:g}..{hi:g}" for a, lo, hi in zip(axes, sp["min"], sp["max"], strict=False))
        if sp else "none") + f"   without spacing: {summary['without_spacing']}")
    sz = summary["image_size"]
    if sz:
        def joined(values):
            return "x".join(f"{v:g}" for v in values)

        label = "volume size (X x Y x Z)" if len(sz["min"]) == 3 else "image size (W x H)"
        console.print(f"  {label}: {joined(sz['min'])} .. {joined(sz['max'])} "
                      f"({summary['image_sizes_distinct']} distinct)")
    for key, value in summary["info"].items():
        console.print(f"  {key.replace('_', ' ')}: {value}")
    if json_out:
        write_json(json_out, {**summary, "faults": [str(f) for f in faults]})
    if faults:
        err_console.print(f"[red]{len(faults)} fault(s):[/red]")
        for f in faults:
            err_console.print(f"  - {f}", highlight=False, markup=False)
        raise typer.Exit(1)
    console.print("[green]no faults[/green]")


@datasets_app.command("export")
@friendly
def datasets_export(
    name: str = typer.Argument(..., help="Adapter name (see `datasets list`)."),
    root: Path = typer.Option(..., "--root", help="Dataset folder (or table for csv)."),
    split: str = typer.Option(..., "--split", help="Split to export, e.g. test1 or all."),
    annotator: str = typer.Option(None, help="isbi2015: senior, junior or mean."),
    opt: list[str] = typer.Option(None, "--opt", metavar="KEY=VALUE", help=OPT_HELP),
    out: Path = typer.Option(..., "--out", help="CSV to write, in the prediction format "
                                                "(image,landmark,x,y,name,x_mm,y_mm; "
                                                "docs/protocols.md)."),
) -> None:
    """Write a split's ground truth in the prediction CSV format."""
    from ..core.preflight import check_writable_file
    from ..evaluation.scoring import export_ground_truth

    check_writable_file(out, "--out")
    spec = build_spec(name, root, annotator, opt)
    n = export_ground_truth(spec, split, out)
    console.print(f"wrote {plural(n, 'image')} x {spec.num_landmarks} landmarks of "
                  f"{name}/{split} ({spec.info.get('annotator') or 'ground truth'}) to {out}")


@datasets_app.command("make-synthetic")
@friendly
def datasets_make_synthetic(
    out: Path = typer.Option(..., "--out", help="Folder to write the phantom domains into."),
    domains: str = typer.Option("head,hand,chest", help="Comma-separated phantom domains."),
    train: int = typer.Option(60, min=0, help="Training images per domain."),
    val: int = typer.Option(15, min=0, help="Validation images per domain."),
    test: int = typer.Option(15, min=0, help="Test images per domain."),
    size: str = typer.Option("192x192", help="Image size WxH."),
    seed: int = typer.Option(0, help="Seed: the same seed writes the same images."),
) -> None:
    """Write synthetic phantom domains (PNG + landmarks.csv in the csv adapter format)."""
    from ..core.preflight import check_writable_dir
    from ..data.synthetic import make_synthetic

    w, h = parse_size(size)
    check_writable_dir(out, "--out")
    written = make_synthetic(out, [d.strip() for d in domains.split(",")], train, val, test,
                             (w, h), seed)
    for domain, table in written.items():
        console.print(f"{domain}: {train + val + test} images, table {table}")


