"""Image files by record id: the one lookup that adapters share; DICOM series folders
by their name, for the volume adapters."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..core.naming import file_stem
from ..imageio.read import is_image_file
from ..imageio.volume import holds_dicom_series


def images_by_stem(folder: Path) -> dict[str, Path]:
    """{file stem: path} of the image files in ``folder`` (any supported extension)."""
    if not folder.is_dir():
        return {}
    out = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and is_image_file(p):
            out.setdefault(file_stem(p), p)
    return out


def subfolders(folder: Path) -> dict[str, Path]:
    """{name: path} of the folders directly inside ``folder``, hidden names (``.name``)
    skipped; a link to a folder counts. Empty when ``folder`` is not a folder."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return {}
    out = {}
    for entry in sorted(entries, key=lambda e: e.name):
        try:
            if not entry.name.startswith(".") and entry.is_dir():
                out[entry.name] = Path(entry.path)
        except OSError:
            continue
    return out


def series_folders(folder: Path, names: Iterable[str] | None = None) -> dict[str, Path]:
    """{record id: path} of the DICOM series folders directly inside ``folder``: not
    hidden, holding a DICOM file (:func:`~..imageio.volume.holds_dicom_series`, the review
    app's test). The record id is the subfolder's name, whole (``patient.1/`` is
    ``patient.1``). ``names``: look only at subfolders of these names (the record ids a
    table asks for), so that other subfolders are not opened."""
    found = subfolders(folder)
    if names is not None:
        wanted = set(names)
        found = {n: p for n, p in found.items() if n in wanted}
    return {n: p for n, p in found.items() if holds_dicom_series(p)}
