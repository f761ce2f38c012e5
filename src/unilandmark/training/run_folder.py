"""A training run's folder: what may be written there, and when.

Rules (checked before anything is written):
- a folder that holds another run (``last.pt``, ``best.pt``, ``metrics.jsonl`` or
  ``config.yaml``) is refused unless ``resume`` (continue it) or ``overwrite`` (replace it);
- ``resume`` needs a ``last.pt``, and a config that matches the one it was trained with
  (only the keys in ``config.RESUMABLE_CHANGES`` may differ; the others are named);
- the folder must be writable.
Temporary files left by a killed atomic write are removed at the next start (``fit``
holds the folder's lock, ``core.folder_lock``, so they are never those of a process still
writing there: a second process on the folder is refused before it looks). The metrics
log is rewritten atomically from the history stored in ``last.pt``, so a kill can never
separate an epoch's checkpoint from its metrics line.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from ..checkpoints.checkpoint import load_checkpoint
from ..core.atomic import atomic_write_text
from ..core.errors import InputError
from ..core.preflight import check_writable_dir
from .config import RESUMABLE_CHANGES, ExperimentConfig, config_differences, dump_config

log = logging.getLogger(__name__)

RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl", "config.yaml")


class RunFolder:
    def __init__(self, out_dir: str | os.PathLike):
        self.path = Path(out_dir)
        self.last = self.path / "last.pt"
        self.best = self.path / "best.pt"
        self.metrics = self.path / "metrics.jsonl"

    def existing(self) -> list[str]:
        return [name for name in RUN_FILES if (self.path / name).exists()]

    def check(self, resume: bool, overwrite: bool) -> None:
        """Refuse what would lose or mix runs; check the folder can be written."""
        if resume and overwrite:
            raise InputError("--resume and --overwrite exclude each other: continue the run "
                             "or replace it")
        if resume and not self.last.is_file():
            raise InputError(f"{self.path}: --resume, but there is no last.pt to resume "
                             "from; start the run without --resume")
        existing = self.existing()
        if existing and not (resume or overwrite):
            raise InputError(f"{self.path} holds another run ({', '.join(existing)}); "
                             "pass --resume to continue it or --overwrite to replace it")
        check_writable_dir(self.path, "out_dir")

    def resume_state(self, config: ExperimentConfig) -> dict:
        """``last.pt``, after checking it was trained with the same settings."""
        state = load_checkpoint(self.last)
        differing = [key for key in config_differences(state["config"],
                                                       config.model_dump(mode="json"))
                     if not key.startswith(RESUMABLE_CHANGES)]
        if differing:
            raise InputError(f"{self.last}: cannot resume: the config differs from the one "
                             f"this run was trained with in {', '.join(differing)}; use the "
                             "same settings, or start a new run (--overwrite or another "
                             "out_dir)")
        return state

    def start(self, config: ExperimentConfig, replace: bool) -> None:
        """Clean what a killed write left, clear a replaced run, write config.yaml."""
        self.path.mkdir(parents=True, exist_ok=True)
        for orphan in self.path.glob(".*.tmp"):
            log.warning("removing %s, left by an interrupted write", orphan)
            orphan.unlink(missing_ok=True)
        if replace:
            for name in RUN_FILES:
                (self.path / name).unlink(missing_ok=True)
            shutil.rmtree(self.path / "tensorboard", ignore_errors=True)
        atomic_write_text(self.path / "config.yaml", dump_config(config))

    def write_metrics(self, history: list[dict]) -> None:
        atomic_write_text(self.metrics, "".join(json.dumps(e) + "\n" for e in history))
