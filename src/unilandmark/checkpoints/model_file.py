"""Model files: every stage's weights in safetensors, everything else as JSON in its header.

Loading a model file never runs code from it: safetensors holds raw tensors and a JSON
header, nothing is unpickled. Layout (``FORMAT``):

- tensors ``stage{i}.{name}``: the state_dict of stage ``i`` of the stage chain (0: the
  whole-image stage, 1...: the patch stages refining it, in order);
- metadata (strings): ``format``; ``stages``: a JSON list, one object per stage with its
  ``kind``, ``config`` (the resolved experiment config), ``domains`` (what prediction
  needs per domain), ``epoch``, ``best``; ``provenance`` (JSON: data, protocol, figures);
  ``versions`` (JSON: the versions that wrote the file).

:func:`read_model_file` returns the same nested checkpoint dict as a training
checkpoint (``previous`` chains), so everything downstream sees one layout.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import InputError
from ..core.jsontext import read_json
from ..core.limits import MAX_STAGES

FORMAT = "unilandmark-model/1"
#: stage keys kept in the header (the weights go to tensors, ``previous`` is the order)
STAGE_KEYS = ("kind", "config", "domains", "epoch", "best")
#: a safetensors header larger than this is refused before it is parsed
MAX_HEADER_BYTES = 100 * 2**20


def looks_like_safetensors(path: str | os.PathLike) -> bool:
    """True when the file starts as safetensors does: an 8-byte little-endian header
    length, then a JSON object of that length inside the file."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
            size = os.fstat(fh.fileno()).st_size
    except OSError:
        return False
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length <= min(MAX_HEADER_BYTES, size - 8) and head[8:9] == b"{"


def plain(value: Any, where: str = "checkpoint") -> Any:
    """``value`` with numpy scalars/arrays and paths turned into plain Python types.

    Tensors, dicts (str or int keys), lists, tuples, str, int, float, bool and None pass
    through; anything else is refused with the key path where it was found, so a file
    that must load with ``weights_only=True`` (or be written as JSON) never holds it.
    """
    import torch

    if value is None or isinstance(value, torch.Tensor):
        return value
    for kind in (bool, int, float, str):  # subclasses (torch's TorchVersion) become the base
        if isinstance(value, kind):
            return value if type(value) is kind else kind(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return str(value)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} of type {type(k).__name__} is not a "
                                "string or an integer")
            out[k] = plain(v, f"{where}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        items = [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    raise TypeError(f"{where}: a {type(value).__module__}.{type(value).__name__} is not a "
                    "tensor or a plain type and cannot be stored safely")


def write_model_file(path: str | os.PathLike, chain: list[dict], provenance: dict | None,
                     versions: dict) -> None:
    """Write the stage ``chain`` (first to last stage dicts, each with ``model``)."""
    from safetensors.torch import save_file

    from ..core.atomic import atomic_path

    tensors = {}
    for i, stage in enumerate(chain):
        for name, tensor in stage["model"].items():
            tensors[f"stage{i}.{name}"] = tensor.detach().cpu().contiguous()
    stages = [plain({k: stage.get(k) for k in STAGE_KEYS}, f"stage{i}")
              for i, stage in enumerate(chain)]
    metadata = {"format": FORMAT, "stages": _json(stages),
                "provenance": _json(plain(provenance or {}, "provenance")),
                "versions": _json(versions)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def read_model_file(path: str | os.PathLike) -> dict:
    """The nested checkpoint dict of a model file (torch tensors); clear errors for a
    file that is not one. The JSON metadata is read with a nesting limit and must have
    the layout of ``FORMAT``; what the stages declare is checked by ``load_checkpoint``
    (``contract.check_chain``)."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            metadata = fh.metadata() or {}
            names = list(fh.keys())
            if metadata.get("format") != FORMAT:
                raise InputError(f"{path}: a safetensors file but not a unilandmark model "
                                 f"file (format {metadata.get('format')!r}, expected "
                                 f"{FORMAT!r})")
            stages = _stages(path, metadata)
            weights: list[dict] = [{} for _ in stages]
            for name in names:
                prefix, _, key = name.partition(".")
                index = int(prefix[5:]) if prefix.startswith("stage") and \
                    prefix[5:].isdigit() else -1
                if not 0 <= index < len(stages) or not key:
                    raise InputError(f"{path}: tensor {name!r} belongs to no stage (the file "
                                     f"has {len(stages)}); a damaged or edited file")
                weights[index][key] = fh.get_tensor(name)
    except InputError:
        raise
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise InputError(f"{path}: not a readable model file ({err})") from err
    provenance = _object(path, metadata, "provenance")
    versions = _object(path, metadata, "versions")
    state = None
    for stage, model in zip(stages, weights, strict=True):
        stage = {**stage, "model": model, "format": "unilandmark-checkpoint/1",
                 "versions": versions}
        if state is not None:
            stage["previous"] = state
        state = stage
    state["provenance"] = provenance
    return state


def _stages(path: Path, metadata: dict) -> list[dict]:
    """The ``stages`` metadata: a JSON list of 1 to ``MAX_STAGES`` objects."""
    if "stages" not in metadata:
        raise InputError(f"{path}: the model file has no 'stages' metadata (a damaged file, "
                         "or one not written by unilandmark)")
    stages = read_json(metadata["stages"], f"{path}: metadata 'stages'")
    if not isinstance(stages, list):
        raise InputError(f"{path}: metadata 'stages' must be a JSON list of stages, got "
                         f"{_kind(stages)}")
    if not stages:
        raise InputError(f"{path}: a model file without stages")
    if len(stages) > MAX_STAGES:
        raise InputError(f"{path}: metadata 'stages' lists {len(stages)} stages, more than "
                         f"the limit of {MAX_STAGES}")
    for i, stage in enumerate(stages):
        if not isinstance(stage, dict):
            raise InputError(f"{path}: metadata 'stages': stage{i} must be a JSON object, "
                             f"got {_kind(stage)}")
    return stages


def _object(path: Path, metadata: dict, key: str) -> dict:
    """Metadata ``key``: a JSON object ({} when absent)."""
    value = read_json(metadata.get(key) or "{}", f"{path}: metadata {key!r}")
    if not isinstance(value, dict):
        raise InputError(f"{path}: metadata {key!r} must be a JSON object, got "
                         f"{_kind(value)}")
    return value


def _kind(value) -> str:
    """A JSON value's kind, in words."""
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "true/false",
             type(None): "null"}
    return kinds.get(type(value), "a number")


def _json(value) -> str:
    return json.dumps(value, allow_nan=True)
