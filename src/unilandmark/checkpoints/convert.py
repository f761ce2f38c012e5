"""``convert``: an old checkpoint into a safe file (a model file or a plain torch file).

A file that loads safely (a model file, or a torch file of tensors and plain types) is
simply rewritten. An old checkpoint that holds pickled Python objects is refused unless
the caller names it in ``trust``: it is then unpickled in full, which runs any code the
file contains, so only a file whose origin the user trusts may pass. This module holds
the project's only full unpickling (:func:`_unpickle_trusted`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.errors import InputError
from .checkpoint import (
    FORMAT,
    UnsafeCheckpointError,
    load_checkpoint,
    prediction_state,
    save_checkpoint,
    save_model_file,
    stage_chain,
    upgrade,
)


@dataclass(frozen=True)
class Conversion:
    """What :func:`convert_checkpoint` did: the written ``kind`` (``model file`` or
    ``training checkpoint``), the stage kinds, and whether the source was unpickled in
    full because the caller trusted it."""

    kind: str
    stages: tuple[str, ...]
    trusted: bool


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike,
                       trust: str | os.PathLike | None = None) -> Conversion:
    """Rewrite checkpoint ``src`` as ``dst``: a safetensors model file when ``dst`` ends in
    ``.safetensors`` (what prediction needs), else a torch training checkpoint of tensors
    and plain types (everything kept, loadable with ``weights_only=True``).

    ``trust``: must name ``src`` itself to allow full unpickling of an old checkpoint.
    """
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise InputError(f"{dst}: the converted file must not replace its source")
    trusted = False
    try:
        state = load_checkpoint(src)
    except UnsafeCheckpointError:
        if trust is None:
            raise UnsafeCheckpointError(
                f"{src}: refused: it holds pickled Python objects, and loading it could run "
                f"code. If you trust where it comes from, pass --trust {src} (the file is "
                "then unpickled in full, which runs any code it contains)") from None
        if Path(trust).resolve() != src.resolve():
            raise InputError(f"--trust names {trust}, not the file being converted ({src}); "
                             "trust is given per file") from None
        state = _unpickle_trusted(src)
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise InputError(f"{src}: not a unilandmark checkpoint, even unpickled") from None
        state = upgrade(state)
        trusted = True
    stages = tuple(s.get("kind", "image") for s in stage_chain(state))
    if dst.suffix.lower() == ".safetensors":
        save_model_file(dst, prediction_state(state), state.get("provenance") or {})
        return Conversion("model file", stages, trusted)
    save_checkpoint(dst, {k: v for k, v in state.items() if k not in ("format", "versions")})
    return Conversion("training checkpoint", stages, trusted)


def _unpickle_trusted(path: Path):
    """DANGER: full unpickling runs whatever code the file holds. Reached only from
    :func:`convert_checkpoint` when the caller named this very file in ``trust``."""
    return torch.load(path, map_location="cpu", weights_only=False)
