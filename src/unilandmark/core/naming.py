"""Image ids for prediction output: unique even when file names collide.

An id is the file's stem where that is unique among the inputs (a folder given as one
input, a DICOM series, is named by its whole name). Files whose stems
collide get their path relative to the folder the colliding files share, without the
extension (``site1/001``, ``site2/001``), or with it where only the extension differs
(``001.png``, ``001.jpg``). The same file given twice gets ``-2``, ``-3``, ... on its later
copies. The overlay of an image is named by its id, so overlays never overwrite each other.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path


def file_stem(path: str | os.PathLike) -> str:
    """The id of an image file: its name without the extension (``.nii.gz`` whole)."""
    name = Path(path).name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else Path(name).stem


def input_id(path: str | os.PathLike) -> str:
    """The id of an input: a file's stem (:func:`file_stem`), a folder's name whole (a
    DICOM series folder: ``patient.7/`` is ``patient.7``, as the review app and the
    ``volume-csv`` adapter name it)."""
    return Path(path).name if os.path.isdir(path) else file_stem(path)


def unique_image_ids(paths: list[str | os.PathLike]) -> list[str]:
    """One id per entry of ``paths`` (same order), all different (module docstring)."""
    resolved = [Path(os.path.abspath(p)) for p in paths]
    ids = [input_id(p) for p in resolved]
    groups: dict[str, list[int]] = defaultdict(list)
    for i, rid in enumerate(ids):
        groups[rid].append(i)
    for members in groups.values():
        distinct = {resolved[i] for i in members}
        if len(distinct) < 2:
            continue
        base = Path(os.path.commonpath([str(resolved[i].parent) for i in members]))
        relative = {i: resolved[i].relative_to(base).as_posix() for i in members}
        without_suffix = {i: r[: len(r) - len(resolved[i].name)] + input_id(resolved[i])
                          for i, r in relative.items()}
        unique = len({without_suffix[i] for i in members}) == len(distinct)
        for i in members:
            ids[i] = without_suffix[i] if unique else relative[i]
    out: list[str | None] = [None] * len(ids)
    taken: set[str] = set()
    for i, rid in enumerate(ids):  # first copies keep their id; later copies get -2, -3
        if rid not in taken:
            out[i] = rid
            taken.add(rid)
    for i, rid in enumerate(ids):
        if out[i] is None:
            n = 2
            while f"{rid}-{n}" in taken:
                n += 1
            out[i] = f"{rid}-{n}"
            taken.add(out[i])
    return out


def with_unique_ids(results: list, paths: list[str | os.PathLike]) -> list:
    """``results`` (objects with ``id`` and ``image_path``, e.g. LandmarkResult) with the
    ids of :func:`unique_image_ids` over the input ``paths``; results are matched to
    inputs by path, in order, so a result missing for a failed file does not shift the
    others. Results of other sources (arrays) keep their ids."""
    from dataclasses import replace

    pending: dict[str, list[str]] = defaultdict(list)
    for path, rid in zip(paths, unique_image_ids(paths), strict=True):
        pending[os.path.abspath(path)].append(rid)
    out = []
    for r in results:
        queue = pending.get(os.path.abspath(r.image_path)) if r.image_path else None
        out.append(replace(r, id=queue.pop(0)) if queue else r)
    return out
