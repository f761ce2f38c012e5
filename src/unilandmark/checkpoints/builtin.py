"""The built-in models: model files shipped in ``pretrained/`` beside this module, chosen
by name (``--checkpoint head``), with their provenance (data, training commands, figures)
in a JSON file beside each."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..core.errors import InputError

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
PRETRAINED_NAME = "gu2net_isbi2015_head.safetensors"
#: the built-in models by name (``--checkpoint NAME``): ``head-mean`` learned the mean of
#: the two ISBI 2015 annotators (the default: it serves an unseen clinic best, docs/results.md
#: "Which head model"), ``head`` the senior annotator alone (the challenge's ground truth,
#: for its protocol), ``brain`` (a volume model) the 32 AFIDs fiducials in T1 MRI volumes
BUILTIN_MODELS = {"head": PRETRAINED_NAME, "head-mean": "gu2net_isbi2015_head_mean.safetensors",
                  "brain": "unet3d_afids_brain.safetensors"}
#: the built-in model used where none is named (``builtin``, no ``--checkpoint``)
DEFAULT_MODEL = "head-mean"


def model_path(name: str | os.PathLike | None) -> Path:
    """The file of a model given by path or by name: None or ``builtin`` is always the
    default built-in model; a name of :data:`BUILTIN_MODELS` (``head``, ``head-mean``) is
    that built-in model unless a file of that name is in the current folder; anything
    else is a path, returned as it is."""
    if name is None or str(name) == "builtin":
        name = DEFAULT_MODEL
    elif str(name) not in BUILTIN_MODELS or Path(name).is_file():
        return Path(name)
    path = PRETRAINED_DIR / BUILTIN_MODELS[str(name)]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the built-in model {str(name)!r} is not installed "
                                "in this build; give a model file instead")
    return path


#: what each built-in model learned, in words (for ``unilandmark models`` and ``predict``)
BUILTIN_DESCRIPTIONS = {
    "head": "ISBI 2015 cephalograms, senior annotator (the challenge's ground truth; for "
            "its protocol)",
    "head-mean": "ISBI 2015 cephalograms, mean of the senior and junior annotators (the "
                 "default: a new clinic's best start)",
    "brain": "AFIDs: 32 brain fiducials in T1 MRI volumes (4 templates, pose augmentation)",
}


def builtin_name(path: str | os.PathLike | None) -> str | None:
    """The built-in name of a model file (``head``, ``head-mean``), or None."""
    if path is None:
        return DEFAULT_MODEL
    resolved = Path(path).resolve()
    for name, file in BUILTIN_MODELS.items():
        if resolved == (PRETRAINED_DIR / file).resolve():
            return name
    return None


def provenance(name: str) -> dict:
    """The provenance JSON of built-in model ``name`` ({} when absent)."""
    if name not in BUILTIN_MODELS:
        raise InputError(f"no built-in model {name!r}; built-in: {', '.join(BUILTIN_MODELS)}")
    path = (PRETRAINED_DIR / BUILTIN_MODELS[name]).with_suffix(".json")
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
