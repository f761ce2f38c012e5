"""Checkpoints: weights + resolved config + domain metadata + versions, written atomically.

A checkpoint is one stage: ``kind`` (``image`` or ``patch``), ``config`` (the resolved
experiment config), ``domains`` (what prediction needs per domain), ``model`` (weights);
a refinement stage also holds ``previous``, the state of the stage (or cascade) it
refines, so one file is a whole cascade. Training checkpoints add ``epoch``, ``best``,
``history`` and, in ``last.pt``, the optimiser and scheduler.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_path

FORMAT = "unilandmark-checkpoint/1"
#: what prediction needs of a stage; everything else (optimiser, history) is training's
PREDICTION_KEYS = ("format", "versions", "kind", "config", "domains", "model", "previous",
                   "epoch", "best", "provenance", "adaptation")


def versions() -> dict[str, str]:
    from . import __version__

    return {"unilandmark": __version__, "torch": torch.__version__,
            "python": platform.python_version()}


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus format and versions) to ``path`` atomically."""
    payload = {"format": FORMAT, "versions": versions(), **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; clear errors otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        data = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises many types for a damaged file
        raise ValueError(f"{path}: not a readable checkpoint ({err})") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a unilandmark checkpoint (format "
                         f"{data.get('format') if isinstance(data, dict) else type(data)})")
    return upgrade(data)


def upgrade(state: dict) -> dict:
    """Bring a checkpoint of an older layout to the current one (stage chains)."""
    if state.get("kind") == "cascade":  # 0.1: {stage1, refiner, refine_config, ...}
        rc = state["refine_config"]
        stage1 = upgrade(state["stage1"])
        config = dict(stage1["config"])
        config["stage"] = {"kind": "patch", "previous": "(embedded)",
                           "patch_size": rc["patch_size"], "scale": rc["scale"],
                           "sigma": rc["sigma"], "test_offsets": 0.0, "gate": False}
        config["model"] = {"name": state.get("refine_model", "heatmap"),
                           "width": rc["width"], "depth": rc["depth"]}
        domains = {n: {**stage1["domains"][n], "apply": [True] * k}
                   for n, k in state["refine_domains"].items()}
        return {"format": state["format"], "versions": state.get("versions"),
                "kind": "patch", "config": config, "domains": domains,
                "model": state["refiner"], "previous": stage1,
                "epoch": state.get("epoch"), "best": state.get("best"),
                "provenance": state.get("provenance")}
    if "kind" not in state:
        state = {**state, "kind": "image"}
    return state


def stage_chain(state: dict) -> list[dict]:
    """The stages of a checkpoint, first (whole image) to last."""
    chain = []
    while state is not None:
        chain.insert(0, state)
        state = state.get("previous")
    return chain


def prediction_state(state: dict, fp16: bool = False) -> dict:
    """A stage (and its previous stages) stripped to what prediction needs."""
    out = {k: v for k, v in state.items() if k in PREDICTION_KEYS and v is not None}
    out["model"] = _half(state["model"], fp16)
    if state.get("previous") is not None:
        out["previous"] = prediction_state(state["previous"], fp16)
    return out


def slim_checkpoint(src: str | Path, dst: str | Path, fp16: bool = True,
                    provenance: dict | None = None) -> int:
    """Keep what prediction needs (every stage of a cascade), optionally in float16, plus
    ``provenance`` (data, protocol, figures). Returns the file size in bytes."""
    state = prediction_state(load_checkpoint(src), fp16)
    state["provenance"] = provenance or {}
    save_checkpoint(dst, state)
    return Path(dst).stat().st_size


def _half(weights: dict, fp16: bool) -> dict:
    return {k: (v.half() if fp16 and v.is_floating_point() else v) for k, v in weights.items()}
