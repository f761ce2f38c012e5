"""benchmarks/serve_latency.py runs on a tiny folder (its figures are the lead's to measure
on a quiet machine; docs/results.md holds them with the command)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the review app needs the 'serve' extra")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "serve_latency.py"


def _benchmark():
    spec = importlib.util.spec_from_file_location("serve_latency", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_folder(phantoms, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        shutil.copy(phantoms / "head" / "images" / f"head_000{i}.png", folder)
    return folder


@pytest.mark.parametrize("mode", ["api", "browser"])
def test_serve_latency_runs_and_writes_json(tiny_folder, tmp_path, mode):
    if mode == "browser":
        from benchmarks._browser import BrowserUnavailable, find_browser

        try:
            find_browser()
        except BrowserUnavailable as err:
            pytest.skip(f"no headless browser: {err}")
    out = tmp_path / "serve.json"
    _benchmark().main(["--folder", str(tiny_folder), "--images", "3", "--mode", mode,
                       "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["mode"] == mode and result["images"] == 3
    assert result["first_s"] > 0 and len(result["per_image_s"]) == 2
    assert all(t > 0 for t in result["per_image_s"])
    if mode == "browser":
        marks = result["page_marks_ms"]
        assert [m["name"] for m in marks] == ["head_0000.png", "head_0001.png", "head_0002.png"]
        assert all(m["landmarks"] is not None and m["image"] is not None for m in marks)
