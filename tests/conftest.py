"""Shared fixtures: the real data in ../shared/data (skipped with a reason when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _require(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.exists():
        pytest.skip(f"real data not found at {path} (the repository never copies it; "
                    "place ../shared/data beside the project to run this test)")
    return path


@pytest.fixture(scope="session")
def isbi_root() -> Path:
    return _require("isbi2015")


@pytest.fixture(scope="session")
def hand_root() -> Path:
    return _require("hand_xray")


@pytest.fixture(scope="session")
def chest_root() -> Path:
    return _require("chest_shenzhen")


@pytest.fixture(scope="session")
def isbi_spec(isbi_root):
    from unilandmark import isbi2015

    return isbi2015(isbi_root)


@pytest.fixture(scope="session")
def phantoms(tmp_path_factory) -> Path:
    """Small synthetic domains written once per session (64x64, 24/8/8 images)."""
    from unilandmark import make_synthetic

    root = tmp_path_factory.mktemp("phantoms")
    make_synthetic(root, train=24, val=8, test=8, size=(64, 64), seed=3)
    return root


def phantom_config(root, out_dir, domains=("head", "hand", "chest"), epochs=40, size=64,
                   **train):
    """A small GU2Net config over the phantom domains (CPU-sized)."""
    from unilandmark.config import load_config

    doms = [{"name": d, "dataset": "synthetic", "root": str(root), "options": {"domain": d},
             "input_size": [size, size], "sigma": 2.0} for d in domains]
    return load_config(data={
        "out_dir": str(out_dir), "domains": doms,
        "model": {"name": "gu2net", "width": 16, "depth": 3, "global_width": 32},
        "optim": {"cycle_epochs": 3},
        "train": {"epochs": epochs, "batch_size": 6, "cache_dir": None, **train}})


@pytest.fixture(scope="session")
def trained_run(phantoms, tmp_path_factory):
    """GU2Net trained once on the three phantom domains (about 25 s on 2 cores)."""
    from unilandmark.train import fit

    out = tmp_path_factory.mktemp("trained")
    result = fit(phantom_config(phantoms, out), progress=False, log=lambda *_: None)
    return result
