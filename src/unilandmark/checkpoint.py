"""Checkpoints: weights + resolved config + dataset specs + versions, written atomically."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_path

FORMAT = "unilandmark-checkpoint/1"


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
    return data


def slim_checkpoint(src: str | Path, dst: str | Path, fp16: bool = True,
                    provenance: dict | None = None) -> int:
    """Keep what prediction needs (weights, config, domains, versions; both stages of a
    cascade), optionally in float16, plus ``provenance`` (data, protocol, figures).
    Returns the file size in bytes."""
    save_checkpoint(dst, _slim(load_checkpoint(src), fp16, provenance or {}))
    return Path(dst).stat().st_size


def _half(weights: dict, fp16: bool) -> dict:
    return {k: (v.half() if fp16 and v.is_floating_point() else v) for k, v in weights.items()}


def _slim(state: dict, fp16: bool, provenance: dict) -> dict:
    keep = {"config": state["config"], "domains": state["domains"],
            "epoch": state.get("epoch"), "best": state.get("best"), "provenance": provenance}
    if state.get("kind") == "cascade":
        return {**keep, "kind": "cascade", "stage1": _slim(state["stage1"], fp16, {}),
                "refiner": _half(state["refiner"], fp16),
                "refine_config": state["refine_config"],
                "refine_model": state.get("refine_model", "unet"),
                "refine_domains": state["refine_domains"]}
    return {**keep, "model": _half(state["model"], fp16)}
