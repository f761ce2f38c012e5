"""The ``unilandmark`` command: thin typer wrappers over the library functions."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import typer
import yaml
from rich.console import Console

from .data.faults import DatasetError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Anatomical landmark detection: datasets, training, prediction, scoring.")
datasets_app = typer.Typer(no_args_is_help=True, help="List, check, export and make datasets.")
app.add_typer(datasets_app, name="datasets")
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def _friendly(fn):
    """Turn library errors into a clear message and a non-zero exit, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DatasetError as err:
            err_console.print(f"[red]error:[/red] {err}", markup=True, highlight=False)
            raise typer.Exit(1) from None
        except (ValueError, KeyError, FileNotFoundError) as err:
            msg = err.args[0] if isinstance(err, KeyError) and err.args else err
            err_console.print(f"[red]error:[/red] {msg}", markup=True, highlight=False)
            raise typer.Exit(2) from None

    return wrapper


def parse_options(options: list[str] | None) -> dict:
    """``key=value`` pairs; values parsed as YAML scalars, ``a,b`` as a tuple."""
    out = {}
    for item in options or []:
        if "=" not in item:
            raise ValueError(f"option {item!r}: expected key=value")
        key, value = item.split("=", 1)
        if "," in value:
            out[key.strip()] = tuple(yaml.safe_load(v) for v in value.split(","))
        else:
            out[key.strip()] = yaml.safe_load(value)
    return out


def _build(name: str, root: Path, annotator: str | None, options: list[str] | None):
    from .data.catalog import build_dataset

    kwargs = parse_options(options)
    if annotator is not None:
        kwargs["annotator"] = annotator
    return build_dataset(name, root, **kwargs)


OPT_HELP = "Adapter option key=value (repeatable), e.g. wrist_pair=2,6 or domain=hand."


@datasets_app.command("list")
def datasets_list() -> None:
    """List the dataset adapters and the named evaluation protocols."""
    from .data.catalog import DATASETS
    from .protocols import PROTOCOLS

    console.print("[bold]datasets[/bold]")
    for name, builder in DATASETS.items():
        doc = (builder.__doc__ or "").strip().splitlines()[0]
        console.print(f"  {name:16s} {doc}")
    console.print("[bold]protocols[/bold]")
    for name, p in PROTOCOLS.items():
        console.print(f"  {name:22s} {p.description}")


@datasets_app.command("check")
@_friendly
def datasets_check(
    name: str = typer.Argument(..., help="Adapter name (see `datasets list`)."),
    root: Path = typer.Option(..., "--root", help="Dataset folder (or table for csv)."),
    annotator: str = typer.Option(None, help="isbi2015: senior, junior or mean."),
    opt: list[str] = typer.Option(None, "--opt", help=OPT_HELP),
    json_out: Path = typer.Option(None, "--json", help="Also write the summary as JSON."),
    header_only: bool = typer.Option(False, help="Read image headers only (faster)."),
) -> None:
    """Validate every record; print a summary and ALL faults; exit 1 when there are faults."""
    from .data.validate import check_dataset
    from .report import write_json

    try:
        spec = _build(name, root, annotator, opt)
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
    console.print("  spacing (mm/px): " + (f"x {sp['min'][0]:g}..{sp['max'][0]:g}, "
                                            f"y {sp['min'][1]:g}..{sp['max'][1]:g}" if sp else
                                            "none") + f"   without spacing: "
                                                      f"{summary['without_spacing']}")
    sz = summary["image_size"]
    if sz:
        console.print(f"  image size (W x H): {sz['min'][0]:g}x{sz['min'][1]:g} .. "
                      f"{sz['max'][0]:g}x{sz['max'][1]:g} ({summary['image_sizes_distinct']} "
                      "distinct)")
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
@_friendly
def datasets_export(
    name: str = typer.Argument(...),
    root: Path = typer.Option(..., "--root"),
    split: str = typer.Option(..., "--split"),
    annotator: str = typer.Option(None),
    opt: list[str] = typer.Option(None, "--opt", help=OPT_HELP),
    out: Path = typer.Option(..., "--out", help="Prediction-format CSV to write."),
) -> None:
    """Write a split's ground truth in the prediction CSV format."""
    from .evaluate import export_ground_truth

    spec = _build(name, root, annotator, opt)
    n = export_ground_truth(spec, split, out)
    console.print(f"wrote {n} images x {spec.num_landmarks} landmarks of {name}/{split} "
                  f"({spec.info.get('annotator') or 'ground truth'}) to {out}")


@datasets_app.command("make-synthetic")
@_friendly
def datasets_make_synthetic(
    out: Path = typer.Option(..., "--out", help="Folder to write the phantom domains into."),
    domains: str = typer.Option("head,hand,chest", help="Comma-separated phantom domains."),
    train: int = typer.Option(60), val: int = typer.Option(15), test: int = typer.Option(15),
    size: str = typer.Option("192x192", help="Image size WxH."),
    seed: int = typer.Option(0),
) -> None:
    """Write synthetic phantom domains (PNG + landmarks.csv in the csv adapter format)."""
    from .data.synthetic import make_synthetic

    w, h = (int(v) for v in size.lower().split("x"))
    written = make_synthetic(out, [d.strip() for d in domains.split(",")], train, val, test,
                             (w, h), seed)
    for domain, table in written.items():
        console.print(f"{domain}: {train + val + test} images, table {table}")


@app.command("evaluate")
@_friendly
def evaluate_cmd(
    name: str = typer.Argument(..., help="Dataset adapter name."),
    root: Path = typer.Option(..., "--root"),
    predictions: Path = typer.Option(..., "--predictions", help="Prediction CSV."),
    split: str = typer.Option(None, "--split", help="Split (default: the protocol's)."),
    annotator: str = typer.Option(None, help="Ground truth annotator (default: protocol's)."),
    protocol: str = typer.Option(None, help="Named protocol (default: native spacing)."),
    opt: list[str] = typer.Option(None, "--opt", help=OPT_HELP),
    json_out: Path = typer.Option(None, "--json", help="Write the JSON report here."),
    figures: Path = typer.Option(None, "--figures", help="Draw figures into this folder."),
) -> None:
    """Score a prediction CSV: table, JSON report and figures."""
    from .evaluate import evaluate, read_predictions
    from .protocols import PROTOCOLS, get_protocol
    from .report import draw_figures, print_report, write_json

    chosen = PROTOCOLS.get(protocol) if protocol else None
    if protocol and chosen is None:
        raise KeyError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    if chosen and chosen.annotator and annotator and annotator != chosen.annotator:
        raise ValueError(f"protocol {protocol} uses annotator {chosen.annotator!r}, "
                         f"not {annotator!r}")
    if chosen and chosen.split and split and split != chosen.split:
        raise ValueError(f"protocol {protocol} scores split {chosen.split!r}, not {split!r}")
    annotator = annotator or (chosen.annotator if chosen else None)
    split = split or (chosen.split if chosen else None)
    if not split:
        raise ValueError("give --split (the protocol does not fix one)")
    spec = _build(name, root, annotator, opt)
    table = read_predictions(predictions)
    report, errors, records, pred = evaluate(table, spec, split, get_protocol(protocol, spec))
    print_report(report, console)
    if json_out:
        write_json(json_out, report)
        console.print(f"report: {json_out}")
    if figures:
        paths = draw_figures(report, errors, records, pred, figures)
        console.print(f"figures: {', '.join(str(p) for p in paths)}")


@app.command("train")
@_friendly
def train_cmd(
    config: Path = typer.Argument(..., help="Experiment YAML (see configs/)."),
    set_: list[str] = typer.Option(None, "--set", help="Override key=value, e.g. "
                                                       "train.epochs=5 (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from out_dir/last.pt."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Train a (universal) model; multi-GPU with `torchrun --nproc_per_node N -m
    unilandmark train ...`."""
    from .config import load_config
    from .train import fit

    cfg = load_config(config, set_)
    result = fit(cfg, resume=resume, progress=progress, log=console.print)
    console.print(f"best checkpoint: {result.best_path}\nlast checkpoint: {result.last_path}"
                  f"\nmetrics: {result.out_dir / 'metrics.jsonl'}")


@app.command("refine")
@_friendly
def refine_cmd(
    config: Path = typer.Argument(..., help="Refinement YAML (stage1 checkpoint, patch, ...)."),
    set_: list[str] = typer.Option(None, "--set", help="Override key=value (repeatable)."),
) -> None:
    """Train a coarse-to-fine stage 2 on top of a trained stage-1 checkpoint."""
    import yaml as _yaml

    from .config import set_dotted
    from .refine import RefineConfig, fit_refiner

    if not config.is_file():
        raise FileNotFoundError(f"{config}: no such config file")
    data = _yaml.safe_load(config.read_text()) or {}
    for item in set_ or []:
        key, _, value = item.partition("=")
        set_dotted(data, key.strip(), _yaml.safe_load(value))
    best = fit_refiner(RefineConfig.model_validate(data), log=console.print)
    console.print(f"cascade checkpoint (stage 1 + stage 2): {best}")


def _collect_images(inputs: list[Path]) -> list[Path]:
    from .io import is_image_file

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


@app.command("predict")
@_friendly
def predict_cmd(
    inputs: list[Path] = typer.Argument(..., help="Image files and/or folders."),
    domain: str = typer.Option(None, "--domain", help="Domain (anatomy) of the images."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Default: the built-in model."),
    out: Path = typer.Option(..., "--out", help="Prediction CSV to write."),
    overlay: Path = typer.Option(None, "--overlay", help="Draw overlays into this folder."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ..."),
    batch_size: int = typer.Option(4),
    spacing: float = typer.Option(None, help="mm per pixel for images whose file has no "
                                             "spacing (PNG, JPEG, ...), e.g. 0.1 for ISBI"),
) -> None:
    """Predict landmarks on new images (no ground truth needed)."""
    from .evaluate import write_predictions
    from .predict import Detector, result_rows
    from .report import draw_overlay

    paths = _collect_images(inputs)
    detector = Detector.from_checkpoint(checkpoint, device=device)
    if spacing is not None and spacing <= 0:
        raise ValueError(f"--spacing must be positive, got {spacing}")
    sp = (spacing, spacing) if spacing else None
    results = detector.predict_many(paths, domain, spacing=sp, batch_size=batch_size)
    write_predictions(out, result_rows(results))
    console.print(f"wrote {len(results)} images x {len(results[0].names)} landmarks to {out}")
    if overlay:
        overlay.mkdir(parents=True, exist_ok=True)
        for r in results:
            draw_overlay(r.image_path, r.points, None, overlay / f"{r.id}.png",
                         title=f"{r.id} ({r.domain}): mean confidence "
                               f"{float(r.confidence.mean()):.2f}")
        console.print(f"overlays: {overlay}")


@app.command("slim")
@_friendly
def slim_cmd(
    src: Path = typer.Argument(..., help="A training checkpoint (best.pt)."),
    dst: Path = typer.Argument(..., help="Where to write the slim checkpoint."),
    fp16: bool = typer.Option(True, "--fp16/--fp32"),
    provenance: Path = typer.Option(None, help="JSON file with data/protocol/figures."),
) -> None:
    """Strip a checkpoint to what prediction needs (for shipping a model)."""
    from .checkpoint import slim_checkpoint

    prov = json.loads(provenance.read_text()) if provenance else None
    size = slim_checkpoint(src, dst, fp16, prov)
    console.print(f"wrote {dst} ({size / 1e6:.2f} MB)")


@app.command("models")
def models_cmd(
    domains: str = typer.Option("head=19,hand=37,chest=6",
                                help="Domains as name=landmarks, comma-separated."),
    width: int = typer.Option(64), depth: int = typer.Option(4),
    global_width: int = typer.Option(128),
) -> None:
    """List the models with their parameter counts for the given domains."""
    from rich.table import Table

    from .models import FAMILY, MODELS, build_model, codec_for, count_parameters

    doms = {}
    for item in domains.split(","):
        name, k = item.split("=")
        doms[name.strip()] = int(k)
    table = Table(title=f"models for {doms} (width {width}, depth {depth})")
    for col in ["model", "family", "codec", "parameters", *[f"used by {d}" for d in doms]]:
        table.add_column(col, justify="left" if col in ("model", "family", "codec") else "right")
    for name in MODELS:
        kwargs = {"width": width, "depth": depth}
        if name.startswith("gu2net"):
            kwargs["global_width"] = global_width
        model = build_model(name, doms, **kwargs)
        table.add_row(name, FAMILY[name], codec_for(name).name, f"{count_parameters(model):,}",
                      *[f"{count_parameters(model, [d]):,}" for d in doms])
    console.print(table)


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Folder for everything."),
    epochs: int = typer.Option(None, help="Override the demo's epochs."),
    seed: int = typer.Option(0),
) -> None:
    """Phantoms -> universal training on the CPU -> evaluation -> report, in minutes."""
    from .demo import run_demo

    run_demo(out, epochs=epochs, seed=seed, log=console.print)


def main() -> None:  # pragma: no cover - console entry for `python -m unilandmark.cli`
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

