"""Opening an exported ONNX file with onnxruntime, for both runners (images and volumes).

numpy and onnxruntime only (no torch): the providers for a device, the thread settings,
the file's ``metadata_props``, and the checks on what the graph declares that hold for
every exported file (its outputs' sizes). Each refusal is one sentence naming the file.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

from ..core.errors import InputError
from ..core.limits import MAX_OUTPUT_ELEMENTS
from ..core.preflight import check_onnx_device

log = logging.getLogger(__name__)

__all__ = ["MissingExtraError", "onnxruntime", "open_session", "output_fault", "providers"]


class MissingExtraError(ImportError, InputError):
    """An optional dependency is not installed (an input problem, not a bug: the command
    line prints it as one line)."""


def onnxruntime():
    """The onnxruntime module, or a clear message naming the extra to install."""
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise MissingExtraError("running an ONNX model needs onnxruntime: pip install "
                                "'unilandmark[export]'") from err
    return ort


def open_session(path: str | os.PathLike, device: str = "cpu", threads: int | None = None):
    """``(session, device used: "cpu" or "cuda")`` for the ONNX file ``path``.

    ``threads``: onnxruntime's intra-op threads; None: ``OMP_NUM_THREADS`` when set, else
    onnxruntime's own choice. Refused: an unknown device, a missing file, a file
    onnxruntime cannot read."""
    device = check_onnx_device(device, "device")
    ort = onnxruntime()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ONNX model")
    options = ort.SessionOptions()
    threads = threads if threads is not None else int(os.environ.get("OMP_NUM_THREADS",
                                                                     "0") or 0)
    options.intra_op_num_threads = max(0, threads)
    options.inter_op_num_threads = 1 if threads else 0
    try:
        session = ort.InferenceSession(str(path), options,
                                       providers=providers(ort, device))
    except Exception as err:  # onnxruntime raises its own types for a damaged file
        raise InputError(f"{path}: not a readable ONNX model ({err})") from err
    used = "cuda" if "CUDAExecutionProvider" in session.get_providers() else "cpu"
    return session, used


def output_fault(session) -> str | None:
    """Why the graph's declared outputs are refused, or None: an output whose fixed
    dimensions multiply beyond :data:`~unilandmark.core.limits.MAX_OUTPUT_ELEMENTS` (a
    crafted graph declaring terabytes)."""
    for output in session.get_outputs():
        fixed = [d for d in output.shape if isinstance(d, int)]
        if any(d < 0 for d in fixed) or math.prod(fixed) > MAX_OUTPUT_ELEMENTS:
            return (f"the graph declares its output {output.name!r} as {list(output.shape)}, "
                    f"{math.prod(fixed):,} elements, above the limit of "
                    f"{MAX_OUTPUT_ELEMENTS:,}; refused (a damaged or crafted file)")
    return None


def providers(ort, device: str) -> list:
    """onnxruntime's providers for ``device``: ``auto`` takes the CUDA provider where
    onnxruntime-gpu has one (silently the CPU otherwise), ``cuda`` asks for it (a warning
    when it is missing)."""
    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "auto":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda \
            else ["CPUExecutionProvider"]
    if not device.startswith("cuda"):
        return ["CPUExecutionProvider"]
    if not cuda:
        log.warning("--device %s: this onnxruntime has no CUDA provider (onnxruntime-gpu); "
                    "running on the CPU", device)
        return ["CPUExecutionProvider"]
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
