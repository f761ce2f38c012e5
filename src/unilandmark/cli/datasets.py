"""``unilandmark datasets ...``: list, check, export and make datasets."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from ..core.errors import InputError
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
                                                "docs/protocols.md); for a volume dataset "
                                                "the volume prediction table (voxels and "
                                                "world LPS mm; docs/volumes.md)."),
) -> None:
    """Write a split's ground truth in the prediction CSV format (volumes: the volume
    prediction table, annotated-absent landmarks with empty coordinates)."""
    from ..core.preflight import check_writable_file
    from ..evaluation.scoring import export_ground_truth

    check_writable_file(out, "--out")
    spec = build_spec(name, root, annotator, opt)
    if spec.records and spec.records[0].points.shape[-1] == 3:  # a volume dataset
        n, absent = export_volume_truth(spec, split, out)
        console.print(f"wrote {plural(n, 'volume')} x {spec.num_landmarks} landmarks of "
                      f"{name}/{split} ({spec.info.get('rater') or 'ground truth'}"
                      + (f"; {plural(absent, 'absent landmark')}, empty coordinates"
                         if absent else "") + f") to {out}", highlight=False)
        return
    n = export_ground_truth(spec, split, out)
    console.print(f"wrote {plural(n, 'image')} x {spec.num_landmarks} landmarks of "
                  f"{name}/{split} ({spec.info.get('annotator') or 'ground truth'}) to {out}")


def export_volume_truth(spec, split: str, out: Path) -> tuple[int, int]:
    """Write ``split`` of a volume dataset as a volume prediction table: voxel indices and
    world LPS mm, confidence 1, ``present`` = the annotation's visibility (an absent
    landmark's coordinates empty). Returns (volumes, absent landmarks)."""
    import numpy as np

    from ..inference.volume_inputs import record_volume_geometry
    from ..predictions.volume_table import volume_rows, write_volume_predictions

    records = spec.split_records(split)
    rows, absent = [], 0
    for record in records:
        voxels = np.asarray(record.points, dtype=np.float64)
        world = record_volume_geometry(record).index_to_world(voxels)
        present = np.asarray(record.visible, dtype=bool)
        absent += int((~present).sum())
        rows += volume_rows(record.id, spec.landmark_names, voxels, world,
                            np.ones(len(voxels)), spec.domain, present)
    write_volume_predictions(out, rows)
    return len(records), absent


@datasets_app.command("make-synthetic")
@friendly
def datasets_make_synthetic(
    out: Path = typer.Option(..., "--out", help="Folder to write the phantom domains into "
                                                "(with --volumes: the dataset root)."),
    volumes: bool = typer.Option(False, "--volumes",
                                 help="Write 3-D head phantoms instead: NIfTI volumes + "
                                      "landmarks.csv, adapter synthetic-volumes "
                                      "(docs/volumes.md)."),
    domains: str = typer.Option(None, help="Comma-separated phantom domains (2-D; default "
                                           "head,hand,chest)."),
    train: int = typer.Option(60, min=0, help="Training images (or volumes) per domain."),
    val: int = typer.Option(15, min=0, help="Validation images (or volumes) per domain."),
    test: int = typer.Option(15, min=0, help="Test images (or volumes) per domain."),
    size: str = typer.Option(None, help="Image size WxH (default 192x192); with --volumes "
                                        "XxYxZ voxels (default 48x56x44, each side >= 24)."),
    spacing: str = typer.Option(None, help="--volumes: voxel spacing XxYxZ mm, anisotropic "
                                           "allowed, or one number (default 1.5x1.5x3)."),
    absent_fraction: float = typer.Option(None, "--absent-fraction",
                                          help="--volumes: share of (volume, landmark) pairs "
                                               "left absent, in [0, 1) (default 0)."),
    absent_mode: str = typer.Option(None, "--absent-mode",
                                    help="--volumes: removed (the structure is not drawn "
                                         "either) or unlabelled (drawn, not annotated); "
                                         "default removed."),
    seed: int = typer.Option(0, help="Seed: the same seed writes the same images."),
) -> None:
    """Write synthetic phantom domains (PNG + landmarks.csv in the csv adapter format), or
    with --volumes 3-D head phantoms (NIfTI + landmarks.csv, adapter synthetic-volumes)."""
    from ..core.preflight import check_writable_dir

    if volumes:
        if domains is not None:
            raise InputError("--domains is for the 2-D phantoms; --volumes writes one set of "
                             "3-D head phantoms (8 landmarks)")
        make_volumes(out, train, val, test, size, spacing, absent_fraction, absent_mode, seed)
        return
    given = [o for o, v in (("--spacing", spacing), ("--absent-fraction", absent_fraction),
                            ("--absent-mode", absent_mode)) if v is not None]
    if given:
        raise InputError(f"{', '.join(given)}: only with --volumes (the 3-D head phantoms)")
    from ..data.synthetic import make_synthetic

    w, h = parse_size(size or "192x192")
    check_writable_dir(out, "--out")
    written = make_synthetic(out, [d.strip() for d in (domains or "head,hand,chest").split(",")],
                             train, val, test, (w, h), seed)
    for domain, table in written.items():
        console.print(f"{domain}: {train + val + test} images, table {table}")


def parse_triple(text: str, option: str, kind=float) -> tuple:
    """``XxYxZ`` (or ``X,Y,Z``, or one number for all three) -> three positive numbers."""
    parts = [p for p in re.split(r"[x,\s]+", text.strip().lower()) if p]
    what = "whole numbers" if kind is int else "numbers"
    try:
        values = tuple(kind(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) == 1:
        values = values * 3
    if len(values) != 3 or not all(v > 0 and v != float("inf") for v in values):
        raise InputError(f"{option} {text!r}: expected three positive {what} XxYxZ, "
                         f"e.g. {'48x56x44' if kind is int else '1.5x1.5x3'}")
    return values


def make_volumes(out: Path, train: int, val: int, test: int, size: str | None,
                 spacing: str | None, absent_fraction: float | None, absent_mode: str | None,
                 seed: int) -> None:
    """The ``--volumes`` branch of ``make-synthetic``."""
    from ..core.preflight import check_writable_dir
    from ..data import synthetic3d as phantoms

    xyz = parse_triple(size, "--size", int) if size is not None else phantoms.DEFAULT_SIZE
    sp = parse_triple(spacing, "--spacing") if spacing is not None else phantoms.DEFAULT_SPACING
    if min(xyz) < phantoms.MIN_VOLUME_SIDE:
        raise InputError(f"--size {size!r}: each side needs at least "
                         f"{phantoms.MIN_VOLUME_SIDE} voxels to hold the phantom's structures")
    if max(sp) > 20:
        raise InputError(f"--spacing {spacing!r}: expected at most 20 mm per voxel side")
    fraction = 0.0 if absent_fraction is None else float(absent_fraction)
    if not 0.0 <= fraction < 1.0:
        raise InputError(f"--absent-fraction {absent_fraction!r}: expected a share in [0, 1)")
    mode = absent_mode or "removed"
    if mode not in phantoms.ABSENT_MODES:
        raise InputError(f"--absent-mode {absent_mode!r}: expected one of "
                         f"{', '.join(phantoms.ABSENT_MODES)}")
    check_writable_dir(out, "--out")
    table = phantoms.make_synthetic_volumes(out, train, val, test, seed=seed, size=xyz,
                                            spacing=sp, absent_fraction=fraction,
                                            absent_mode=mode)
    total = train + val + test
    absent = len(phantoms.absent_pairs(total, fraction, seed))
    splits = ", ".join(f"{s} {c}" for s, c in (("train", train), ("val", val), ("test", test)))
    console.print(f"synthetic-volumes: {plural(total, 'volume')} ({splits}), "
                  f"{'x'.join(str(v) for v in xyz)} voxels of "
                  f"{'x'.join(f'{v:g}' for v in sp)} mm, {len(phantoms.LANDMARKS)} landmarks, "
                  f"{absent} absent ({mode})", highlight=False)
    console.print(f"  volumes {Path(out) / 'images'}, table {table}", highlight=False)
    console.print(f"check: unilandmark datasets check synthetic-volumes --root {out}",
                  highlight=False)
