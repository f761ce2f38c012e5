"""``unilandmark train``: every training stage (whole image or patch refinement)."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, friendly


@friendly
def train_cmd(
    config: Path = typer.Argument(..., help="Experiment YAML (see configs/ and "
                                            "docs/training.md). `stage: {kind: patch, "
                                            "previous: CKPT}` trains a refinement stage."),
    set_: list[str] = typer.Option(None, "--set", metavar="KEY=VALUE",
                                   help="Override a config value, e.g. train.epochs=5 "
                                        "(repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in out_dir from "
                                                        "its last.pt to the same weights as "
                                                        "an uninterrupted run."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a run already in "
                                                              "out_dir."),
    progress: bool = typer.Option(True, "--progress/--no-progress",
                                  help="Show a progress bar."),
) -> None:
    """Train a (universal) model or a refinement stage; multi-GPU with `torchrun
    --nproc_per_node N -m unilandmark train ...`."""
    from ..training.config import load_config
    from ..training.fit import fit

    cfg = load_config(config, set_)
    result = fit(cfg, resume=resume, overwrite=overwrite, progress=progress,
                 log=console.print)
    what = "cascade" if cfg.stage.kind in ("patch", "volume-patch") else "model"
    console.print(f"best {what}: {result.best_path}\nlast checkpoint: {result.last_path}"
                  f"\nmetrics: {result.out_dir / 'metrics.jsonl'}")
