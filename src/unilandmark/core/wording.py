"""Small pieces of user-facing wording shared by the commands and the library's messages."""

from __future__ import annotations

import os
from pathlib import Path


def plural(count: int, noun: str) -> str:
    """``1 image``, ``3 images``."""
    return f"{count} {noun}{'s' * (count != 1)}"


def relative_note(path: str | os.PathLike) -> str:
    """``, relative to the current folder /x`` for a relative path (a path that is not
    found may be relative to the wrong folder), ``''`` for an absolute one."""
    return "" if Path(path).is_absolute() else f", relative to the current folder {Path.cwd()}"
