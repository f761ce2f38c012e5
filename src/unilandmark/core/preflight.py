"""Checks made before any work starts: devices and output locations.

A command that would fail at its end (an unwritable output folder, a CUDA device on a
CPU-only build) fails at its start instead, with one sentence and nothing written.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from .errors import InputError

_DEVICE = re.compile(r"^(cpu|auto|mps|cuda)(:(\d+))?$")


class PreflightError(InputError):
    """An argument that cannot work, found before any work was done."""


def check_device(name: str, option: str = "--device") -> str:
    """The device to use for ``name``: ``cpu``, ``cuda``, ``cuda:N``, ``mps``, or ``auto``
    (resolved to ``cuda`` where a CUDA device is visible, else ``cpu``).

    An unknown name, a CUDA device on a build or machine without one, or a device index
    beyond the devices present is a PreflightError saying which devices exist.
    """
    import torch

    text = str(name).strip().lower()
    match = _DEVICE.match(text)
    if not match or (match.group(1) in ("cpu", "auto") and match.group(2)):
        raise PreflightError(f"{option} {name!r}: unknown device; use cpu, auto, cuda, "
                             "cuda:N or mps")
    kind, index = match.group(1), match.group(3)
    if kind == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if torch.version.cuda is None:
            raise PreflightError(f"{option} {name}: this PyTorch build has no CUDA support "
                                 f"(torch {torch.__version__}, CPU only); use --device cpu")
        count = torch.cuda.device_count()
        if count == 0:
            raise PreflightError(f"{option} {name}: no CUDA device is visible on this machine; "
                                 "use --device cpu")
        if index is not None and int(index) >= count:
            raise PreflightError(f"{option} {name}: there are {count} CUDA device(s), "
                                 f"cuda:0..cuda:{count - 1}")
    if kind == "mps":
        backend = getattr(torch.backends, "mps", None)
        if backend is None or not backend.is_available():
            raise PreflightError(f"{option} {name}: Apple MPS is not available here; "
                                 "use --device cpu")
    return text


def check_onnx_device(name: str, option: str = "--device") -> str:
    """The device for an exported ONNX graph (onnxruntime, no torch): ``cpu``, ``auto``
    (the CUDA provider where onnxruntime-gpu provides it, else the CPU), ``cuda`` or
    ``cuda:N`` (the CUDA provider, with a warning where it is missing). An unknown name,
    or ``mps`` (onnxruntime has no provider for it), is a PreflightError: neither may run
    silently on the CPU instead."""
    text = str(name).strip().lower()
    match = _DEVICE.match(text)
    if not match or (match.group(1) in ("cpu", "auto") and match.group(2)):
        raise PreflightError(f"{option} {name!r}: unknown device; an ONNX model runs on cpu, "
                             "auto, cuda or cuda:N")
    if match.group(1) == "mps":
        raise PreflightError(f"{option} {name}: an ONNX model runs on onnxruntime's CPU or "
                             "CUDA provider, not on Apple MPS; use --device cpu, or the "
                             "PyTorch model (--checkpoint) for MPS")
    return text


def check_writable_file(path: str | os.PathLike, option: str = "--out") -> Path:
    """``path`` can be written (atomically: a temporary file beside it, then a rename).

    Refused: a folder at ``path``; a file where a parent folder should be; a folder in
    which no file can be created (probed by creating and removing one). Nothing is left
    behind; missing parent folders are not created.
    """
    path = Path(path)
    if path.is_dir():
        raise PreflightError(f"{option} {path}: is a folder; give a file name")
    _probe_folder(path.parent, f"{option} {path}")
    return path


#: the suffixes of the files model-writing commands write (``convert``, ``calibrate``,
#: ``slim``): a safetensors model file or a torch checkpoint
MODEL_SUFFIXES = (".safetensors", ".pt", ".pth")


def check_model_suffix(path: str | os.PathLike, option: str = "--out") -> Path:
    """``path`` ends in a suffix of the format it will hold (:data:`MODEL_SUFFIXES`), so a
    file named ``.onnx`` never holds a safetensors model file."""
    path = Path(path)
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise PreflightError(f"{option} {path}: this command writes a safetensors model file or "
                             f"a torch checkpoint: name it {' or '.join(MODEL_SUFFIXES)} (an "
                             "ONNX graph comes from `unilandmark export`)")
    return path


def check_not_an_input(path: str | os.PathLike, inputs, option: str = "--out") -> Path:
    """``path`` is none of the files in ``inputs`` (an output never overwrites an input);
    refused with a sentence naming the option and the file."""
    path = Path(path)
    for given in inputs:
        if given is not None and Path(given).exists() and path.exists() and \
                os.path.samefile(path, given):
            raise PreflightError(f"{option} {path}: is the input file {given}; writing it "
                                 "would overwrite the input: give another file name")
    return path


def check_writable_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """``path`` is (or can become) a folder in which files can be created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PreflightError(f"{option} {path}: is a file, not a folder")
    _probe_folder(path, f"{option} {path}")
    return path


def _probe_folder(folder: Path, what: str) -> None:
    """The nearest existing ancestor of ``folder`` must be a folder we can create in."""
    existing = folder if str(folder) else Path(".")
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise PreflightError(f"{what}: cannot write there: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".unilandmark-probe-")
    except OSError as err:
        raise PreflightError(f"{what}: cannot create a file in the folder {existing} "
                             f"({err.strerror or err})") from None
    os.close(fd)
    os.unlink(probe)
