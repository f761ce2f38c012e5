"""``unilandmark train`` and ``unilandmark refine``."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, friendly


@friendly
def train_cmd(
    config: Path = typer.Argument(..., help="Experiment YAML (see configs/)."),
    set_: list[str] = typer.Option(None, "--set", help="Override key=value, e.g. "
                                                       "train.epochs=5 (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from out_dir/last.pt."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Train a (universal) model; multi-GPU with `torchrun --nproc_per_node N -m
    unilandmark train ...`."""
    from ..config import load_config
    from ..preflight import check_device, check_writable_dir
    from ..train import fit

    cfg = load_config(config, set_)
    check_device(cfg.train.device, "train.device")
    check_writable_dir(cfg.out_dir, "out_dir")
    result = fit(cfg, resume=resume, progress=progress, log=console.print)
    console.print(f"best checkpoint: {result.best_path}\nlast checkpoint: {result.last_path}"
                  f"\nmetrics: {result.out_dir / 'metrics.jsonl'}")


@friendly
def refine_cmd(
    config: Path = typer.Argument(..., help="Refinement YAML (stage1 checkpoint, patch, ...)."),
    set_: list[str] = typer.Option(None, "--set", help="Override key=value (repeatable)."),
) -> None:
    """Train a coarse-to-fine stage 2 on top of a trained stage-1 checkpoint."""
    import yaml as _yaml

    from ..config import read_yaml, set_dotted, validate_model
    from ..preflight import check_writable_dir
    from ..refine import RefineConfig, fit_refiner

    data = read_yaml(config)
    for item in set_ or []:
        key, _, value = item.partition("=")
        set_dotted(data, key.strip(), _yaml.safe_load(value))
    rc = validate_model(RefineConfig, data, str(config))
    check_writable_dir(rc.out_dir, "out_dir")
    best = fit_refiner(rc, log=console.print)
    console.print(f"cascade checkpoint (stage 1 + stage 2): {best}")


