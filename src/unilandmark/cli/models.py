"""``unilandmark models``, ``slim`` and ``demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, friendly, parse_domain_counts


@friendly
def slim_cmd(
    src: Path = typer.Argument(..., help="A training checkpoint (best.pt)."),
    dst: Path = typer.Argument(..., help="The model file to write (NAME.safetensors)."),
    fp16: bool = typer.Option(True, "--fp16/--fp32", help="Store the weights in half "
                                                          "precision (half the size)."),
    provenance: Path = typer.Option(None, help="JSON file with the data, protocol and figures "
                                               "to ship inside the model file."),
) -> None:
    """Write a model file (safetensors) with what prediction needs of every stage, for
    shipping a model (see docs/deployment.md)."""
    from ..checkpoints.checkpoint import slim_checkpoint
    from ..core.preflight import check_model_suffix, check_writable_file

    check_model_suffix(dst, "DST")
    check_writable_file(dst, "DST")
    prov = None
    if provenance:
        from ..core.errors import InputError
        from ..core.jsontext import read_json

        prov = read_json(provenance.read_bytes(), f"--provenance {provenance}")
        if not isinstance(prov, dict):
            raise InputError(f"--provenance {provenance}: must hold a JSON object (data, "
                             f"protocol, figures), got a {type(prov).__name__}")
    size = slim_checkpoint(src, dst, fp16, prov)
    console.print(f"wrote {dst} ({size / 1e6:.2f} MB)")


@friendly
def models_cmd(
    domains: str = typer.Option("head=19,hand=37,chest=6",
                                help="Domains as name=landmarks, comma-separated."),
    width: int = typer.Option(64, min=1, help="Channels of the first level (model.width)."),
    depth: int = typer.Option(4, min=1, help="Resolution levels (model.depth)."),
    global_width: int = typer.Option(128, min=1, help="Channels of GU2Net's global branch "
                                                      "(model.global_width)."),
) -> None:
    """List the models with their parameter counts for the given domains."""
    from rich.table import Table

    from ..models import MODELS, build_model, codec_for, count_parameters

    doms = parse_domain_counts(domains)
    table = Table(title=f"models for {doms} (width {width}, depth {depth})")
    for col in ["model", "family", "codec", "parameters", *[f"used by {d}" for d in doms]]:
        table.add_column(col, justify="left" if col in ("model", "family", "codec") else "right")
    for name, entry in MODELS.items():
        kwargs = {"width": width, "depth": depth}
        if entry.global_branch:
            kwargs["global_width"] = global_width
        model = build_model(name, doms, **kwargs)
        table.add_row(name, entry.family, codec_for(name).name, f"{count_parameters(model):,}",
                      *[f"{count_parameters(model, [d]):,}" for d in doms])
    console.print(table)
    console.print(trained_models_table())


def headline(prov: dict) -> str:
    """A built-in model's figures in one line: its ``headline`` (volume models), or the
    MRE under the ISBI protocols its provenance holds."""
    if prov.get("headline"):
        return str(prov["headline"])
    figures = prov.get("protocols", {})
    parts = [f"{label} {figures[p]['mre']:.3f} mm" for p, label in
             (("isbi2015-test1", "ISBI test1"), ("isbi2015-test2", "test2"),
              ("gu2net-head", "gu2net-head")) if figures.get(p, {}).get("mre") is not None]
    return ", ".join(parts) or "-"


def trained_models_table():
    """The trained models shipped with the package (``--checkpoint NAME``), what they
    learned and their measured figures (from each model's provenance file)."""
    from rich.table import Table

    from ..checkpoints.builtin import (
        BUILTIN_DESCRIPTIONS,
        BUILTIN_MODELS,
        DEFAULT_MODEL,
        provenance,
    )

    table = Table(title="trained models shipped (predict --checkpoint NAME; docs/model_card.md)")
    for col in ("name", "learned", "measured (provenance)"):
        table.add_column(col, justify="left")
    for name in BUILTIN_MODELS:
        label = f"{name} (default)" if name == DEFAULT_MODEL else name
        table.add_row(label, BUILTIN_DESCRIPTIONS.get(name, ""), headline(provenance(name)))
    return table


@friendly
def demo_cmd(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Folder for everything: "
                             "data/, run/ (checkpoints), predictions/, report/, report.md."),
    epochs: int = typer.Option(None, help="Training epochs (default: the demo config's 40)."),
    seed: int = typer.Option(0, help="Seed of the phantoms and of the training."),
    threads: int = typer.Option(None, min=1, help="Torch threads for training (default: "
                                                  "the cores other processes leave free)."),
) -> None:
    """Phantoms -> universal training on the CPU -> evaluation -> report, in minutes."""
    from ..core.preflight import check_writable_dir
    from ..workflows.demo import run_demo

    check_writable_dir(out, "--out")
    run_demo(out, epochs=epochs, seed=seed, log=console.print, threads=threads)


