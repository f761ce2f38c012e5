"""What every ONNX export needs around ``torch.onnx.export``: the optional extra, a quiet
exporter, the provenance of the model, and the refusal of a graph that fails its check."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

from ..core.errors import InputError

__all__ = ["ExportCheckError", "provenance_of", "quiet_export", "require_onnx"]


class ExportCheckError(InputError):
    """The written graph does not reproduce PyTorch's landmarks: nothing is kept."""


def require_onnx() -> None:
    """A clear message when the optional ``export`` extra is missing."""
    missing = []
    for name in ("onnx", "onnxruntime", "onnxscript"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        from .session import MissingExtraError

        raise MissingExtraError(f"ONNX export needs {', '.join(missing)}: pip install "
                                "'unilandmark[export]'")


@contextlib.contextmanager
def quiet_export():
    """The exporter's own notes (skipped torchvision ops, deprecations) are not the user's
    business."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def provenance_of(state: dict, path: Path, builtin: bool) -> dict:
    """The model's provenance for the file's metadata: the checkpoint's own and, for a
    built-in model, the figures of the JSON beside its file."""
    provenance = dict(state.get("provenance") or {})
    sidecar = path.with_suffix(".json")
    if builtin and sidecar.is_file():
        provenance = {**provenance, **json.loads(sidecar.read_text())}
    return provenance
