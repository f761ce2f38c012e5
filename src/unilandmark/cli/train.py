"""``unilandmark train`` and ``unilandmark refine``."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, friendly


@friendly
def train_cmd(
    config: Path = typer.Argument(..., help="Experiment YAML (see configs/)."),
    set_: list[str] = typer.Option(None, "--set", metavar="KEY=VALUE",
                                   help="Override a config value, e.g. train.epochs=5 "
                                        "(repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from out_dir/last.pt to the "
                                                        "same weights as an uninterrupted run."),
    progress: bool = typer.Option(True, "--progress/--no-progress",
                                  help="Show a progress bar per epoch."),
) -> None:
    """Train a (universal) model; multi-GPU with `torchrun --nproc_per_node N -m
    unilandmark train ...`."""
    from ..config import load_config
    from ..train import fit

    cfg = load_config(config, set_)
    result = fit(cfg, resume=resume, progress=progress, log=console.print)
    console.print(f"best checkpoint: {result.best_path}\nlast checkpoint: {result.last_path}"
                  f"\nmetrics: {result.out_dir / 'metrics.jsonl'}")


@friendly
def refine_cmd(
    config: Path = typer.Argument(..., help="Refinement YAML (stage1 checkpoint, patch, ...)."),
    set_: list[str] = typer.Option(None, "--set", metavar="KEY=VALUE",
                                   help="Override a config value, e.g. epochs=5 (repeatable)."),
) -> None:
    """Train a coarse-to-fine stage 2 on top of a trained stage-1 checkpoint."""
    import yaml as _yaml

    from ..config import set_dotted
    from ..refine import RefineConfig, fit_refiner

    if not config.is_file():
        raise FileNotFoundError(f"{config}: no such config file")
    data = _yaml.safe_load(config.read_text()) or {}
    for item in set_ or []:
        key, _, value = item.partition("=")
        set_dotted(data, key.strip(), _yaml.safe_load(value))
    best = fit_refiner(RefineConfig.model_validate(data), log=console.print)
    console.print(f"cascade checkpoint (stage 1 + stage 2): {best}")


