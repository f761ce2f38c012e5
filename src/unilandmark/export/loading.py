"""Open an exported ONNX file as the detector its metadata says it is: an image model
(:class:`.runner.OnnxDetector`) or a volume model (:class:`.volume_runner.
OnnxVolumeDetector`). The file is read once (one onnxruntime session). No torch."""

from __future__ import annotations

import os

from .contract import VOLUME_FORMAT
from .runner import OnnxDetector
from .session import open_session
from .volume_runner import OnnxVolumeDetector

__all__ = ["open_onnx_model"]


def open_onnx_model(path: str | os.PathLike, device: str = "cpu", threads: int | None = None
                    ) -> OnnxDetector | OnnxVolumeDetector:
    """The detector for the exported file ``path``, chosen by its metadata ``format``
    (a file of neither format is refused by :class:`.runner.OnnxDetector`, naming it)."""
    opened = open_session(path, device, threads)
    fmt = opened[0].get_modelmeta().custom_metadata_map.get("format")
    kind = OnnxVolumeDetector if fmt == VOLUME_FORMAT else OnnxDetector
    return kind(path, device, threads, opened=opened)
