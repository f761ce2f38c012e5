"""Image files by record id: the one lookup that adapters share."""

from __future__ import annotations

from pathlib import Path

from ..core.naming import file_stem
from ..imageio.read import is_image_file


def images_by_stem(folder: Path) -> dict[str, Path]:
    """{file stem: path} of the image files in ``folder`` (any supported extension)."""
    if not folder.is_dir():
        return {}
    out = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and is_image_file(p):
            out.setdefault(file_stem(p), p)
    return out
