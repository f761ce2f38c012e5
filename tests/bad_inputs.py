"""Helpers of the bad-input tests: run the CLI, and prove nothing on disk changed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from unilandmark.cli import app
from unilandmark.imageio.read import write_image


def snapshot(folder: Path) -> dict[str, str]:
    """{relative path: sha1} of every file under ``folder`` (hidden ones included)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def cli(*args, env: dict | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def assert_refused(result, code: int, *needles: str) -> str:
    """Exit ``code``, every needle in the output, and no traceback (a sentence, not a
    crash). Returns the output."""
    out = result.output
    assert result.exit_code == code, f"exit {result.exit_code}, expected {code}:\n{out}"
    assert isinstance(result.exception, SystemExit), f"crashed: {result.exception!r}\n{out}"
    assert "Traceback" not in out, out
    for needle in needles:
        assert needle in out, f"{needle!r} not in:\n{out}"
    return out


def assert_unchanged(folder: Path, before: dict[str, str]) -> None:
    """Nothing under ``folder`` was written, changed or left half-written."""
    after = snapshot(folder)
    assert after == before, (f"changed: {sorted(set(after.items()) ^ set(before.items()))}")


def phantom_images(folder: Path, names, size=(48, 40)) -> list[Path]:
    """Small noisy greyscale PNGs (W, H) = ``size`` with a bright disc."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    paths = []
    for i, name in enumerate(names):
        image = rng.integers(0, 60, (h, w)).astype(np.uint8)
        image[(xx - w / 2 - i) ** 2 + (yy - h / 2) ** 2 < (min(w, h) / 4) ** 2] = 220
        write_image(folder / name, image)
        paths.append(folder / name)
    return paths
