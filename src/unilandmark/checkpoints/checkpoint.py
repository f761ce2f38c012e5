"""Checkpoints: weights + resolved config + domain metadata + versions, written atomically.

A checkpoint is one stage: ``kind`` (``image`` or ``patch``), ``config`` (the resolved
experiment config), ``domains`` (what prediction needs per domain), ``model`` (weights);
a refinement stage also holds ``previous``, the state of the stage (or cascade) it
refines, so one file is a whole cascade. Training checkpoints add ``epoch``, ``best``,
``history`` and, in ``last.pt``, the optimiser and scheduler.

Two file formats, both loaded without running code from the file:

- **model files** (what ``slim`` writes and the built-in model): safetensors, every stage's
  weights plus JSON metadata (:mod:`.model_file`);
- **training checkpoints** (``best.pt``, ``last.pt``): torch files holding only tensors
  and plain types, loaded with ``torch.load(weights_only=True)``.

The format is recognised by content, never by extension. Anything else (an old
checkpoint holding pickled Python objects, a foreign file) is refused with a message;
``unilandmark convert OLD NEW --trust OLD`` converts an old file its owner trusts.
"""

from __future__ import annotations

import pickle
import platform
from pathlib import Path
from typing import Any

import torch

from ..core.atomic import atomic_path
from ..core.errors import InputError
from ..core.limits import MAX_STAGES
from .contract import check_chain
from .model_file import looks_like_safetensors, plain, read_model_file, write_model_file

FORMAT = "unilandmark-checkpoint/1"
#: what prediction needs of a stage; everything else (optimiser, history) is training's
PREDICTION_KEYS = ("format", "versions", "kind", "config", "domains", "model", "previous",
                   "epoch", "best", "provenance", "adaptation")


def versions() -> dict[str, str]:
    from ..core.version import __version__

    return {"unilandmark": __version__, "torch": str(torch.__version__),
            "python": platform.python_version()}


class UnsafeCheckpointError(InputError):
    """A torch file that holds more than tensors and plain types: refused unread."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus format and versions) to ``path`` atomically, as a torch file
    of tensors and plain types only (numpy values become plain Python values; anything
    else is refused), so it loads with ``weights_only=True``."""
    payload = plain({"format": FORMAT, "versions": versions(), **state}, str(path))
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def file_kind(path: str | Path) -> str | None:
    """``safetensors``, ``torch`` (a zip or legacy torch file) or None, by content."""
    if looks_like_safetensors(path):
        return "safetensors"
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head == b"PK\x03\x04" or head[:1] == b"\x80":  # torch zip, or a bare pickle
        return "torch"
    return None


def load_checkpoint(path: str | Path, map_location="cpu") -> dict[str, Any]:
    """Read a model file or a training checkpoint; never runs code from the file.

    Refuses, with a message saying why and what to do, a file of another kind and a torch
    file that holds Python objects beyond tensors and plain types.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    kind = file_kind(path)
    if kind == "safetensors":
        data = read_model_file(path)
    elif kind == "torch":
        data = _load_torch(path, map_location)
    else:
        raise InputError(f"{path}: neither a unilandmark model file (safetensors) nor a torch "
                         "checkpoint; refused")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{path}: not a unilandmark checkpoint (format "
                         f"{data.get('format') if isinstance(data, dict) else type(data)})")
    try:
        data = upgrade(data)
    except KeyError as err:  # an old cascade layout without one of its keys
        raise InputError(f"{path}: a checkpoint of the old cascade layout without "
                         f"{err.args[0]!r}; a damaged file, refused") from None
    except (TypeError, AttributeError) as err:
        raise InputError(f"{path}: a checkpoint of the old cascade layout with a malformed "
                         f"entry ({err}); a damaged file, refused") from None
    check_chain(_bounded_chain(data), str(path))
    return data


def _bounded_chain(state: dict) -> list:
    """:func:`stage_chain` of a file's state, walking at most one stage past the limit
    (``check_chain`` refuses a longer chain)."""
    chain: list = []
    while isinstance(state, dict) and len(chain) <= MAX_STAGES:
        chain.insert(0, state)
        state = state.get("previous")
    if state is not None and len(chain) <= MAX_STAGES:
        chain.insert(0, state)  # not a mapping: check_chain names it
    return chain


def _load_torch(path: Path, map_location) -> Any:
    try:
        with open(path, "rb") as fh:  # a file object: torch must not pick a loader by name
            return torch.load(fh, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" not in str(err).lower():
            raise InputError(f"{path}: not a readable checkpoint ({err})") from err
        raise UnsafeCheckpointError(
            f"{path}: refused: this checkpoint holds Python objects beyond tensors and plain "
            "types (an old or foreign file), and unpickling them could run code. If you "
            "trust where it comes from, convert it once: unilandmark convert "
            f"{path} NEW.safetensors --trust {path}") from None
    except Exception as err:  # torch raises many types for a damaged file
        raise InputError(f"{path}: not a readable checkpoint ({err})") from err


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
    """Write a model file (safetensors, :mod:`.model_file`) with what prediction needs
    (every stage of a cascade), optionally in float16, plus ``provenance`` (data,
    protocol, figures). Returns the file size in bytes."""
    state = prediction_state(load_checkpoint(src), fp16)
    save_model_file(dst, state, provenance or {})
    return Path(dst).stat().st_size


def save_model_file(path: str | Path, state: dict, provenance: dict | None = None) -> None:
    """Write a (prediction) state and its previous stages as a safetensors model file."""
    write_model_file(path, stage_chain(state), provenance, versions())


def _half(weights: dict, fp16: bool) -> dict:
    return {k: (v.half() if fp16 and v.is_floating_point() else v) for k, v in weights.items()}
