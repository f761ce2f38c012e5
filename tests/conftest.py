"""Shared fixtures: the real data in ../shared/data (skipped with a reason when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .learning import phantom_config, train_universal, write_phantoms

__all__ = ["phantom_config"]  # tests import it from here

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
    return write_phantoms(tmp_path_factory.mktemp("phantoms"))


@pytest.fixture(scope="session")
def trained_run(phantoms, tmp_path_factory):
    """GU2Net trained once on the three phantom domains (40 epochs; the default run's
    learning test)."""
    return train_universal(phantoms, tmp_path_factory.mktemp("trained"))


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium (1400 x 900) for the review pages' browser tests; skips, with
    the reason, where no Chromium/chromedriver or selenium is installed (``.ci/run``
    installs Debian's chromium and chromium-driver)."""
    from benchmarks._browser import BrowserUnavailable, find_browser, headless_chromium

    try:
        find_browser()
        with headless_chromium(1400, 900) as driver:
            yield driver
    except BrowserUnavailable as err:
        pytest.skip(f"no headless browser: {err}")
