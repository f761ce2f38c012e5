"""The benchmark scripts run and write their JSON (tiny budgets: figures are not checked
here; they live in docs/results.md with their commands)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.benchmark  # the slow step: python -m pytest -m "slow or benchmark"

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_families_lists_all_seven_families(tmp_path):
    out = tmp_path / "families.json"
    _load("compare_families").main(["--quick", "--epochs", "1", "--width", "8",
                                    "--out", str(tmp_path / "work"), "--json", str(out)])
    rows = json.loads(out.read_text())["families"]
    survey = " ".join(r["survey_family"] for r in rows)
    for family in ("pixel classification", "patch classification", "coordinate regression",
                   "heatmap regression", "displacement-map regression",
                   "spatial configuration net", "coarse-to-fine"):
        assert family in survey, family
    for r in rows:
        assert {"name", "mre_px", "mre_mm", "sdr", "params", "train_s", "ms_per_image"} <= set(r)
        assert r["params"] > 0 and r["ms_per_image"] > 0 and np.isfinite(r["mre_px"])


def test_speed_benchmarks_write_rows(tmp_path):
    out = tmp_path / "t.json"
    _load("train_throughput").main(["--quick", "--models", "gu2net", "--device", "cpu",
                                    "--width", "8", "--repeats", "1", "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert {r["domain"] for r in rows} == {"head", "hand", "chest"}
    assert all(r["images_per_s"] > 0 for r in rows)
    out = tmp_path / "i.json"
    _load("inference_latency").main(["--quick", "--models", "unet", "--device", "cpu",
                                     "--width", "8", "--batches", "1,2", "--repeats", "1",
                                     "--backends", "torch", "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 6 and all(r["ms_per_image"] > 0 for r in rows)


@pytest.mark.slow
def test_inference_latency_beside_onnxruntime_and_over_a_folder(tmp_path, trained_run,
                                                               phantoms):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    out = tmp_path / "o.json"
    _load("inference_latency").main([
        "--quick", "--models", "unet", "--width", "8", "--device", "cpu", "--batches", "1,2",
        "--repeats", "1", "--warmup", "0", "--cascade", "--checkpoint",
        str(trained_run.best_path), "--domain", "head", "--image-size", "80,70", "--folder",
        str(phantoms / "head" / "images"), "--limit", "4", "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert {(r["kind"], r["backend"]) for r in rows} == {
        (k, b) for k in ("network", "cascade", "folder") for b in ("torch", "onnx")}
    assert len([r for r in rows if r["kind"] == "network"]) == 12
    assert all(r["ms_per_image"] > 0 for r in rows)
    folder = [r for r in rows if r["kind"] == "folder"]
    assert all(r["images"] == 4 and r["images_per_s"] > 0 for r in folder)


def test_flags_benchmark_with_a_second_opinion(tmp_path, isbi_root):
    out = tmp_path / "flags.json"
    # the model as its own second opinion, same ground truth: no disagreement at all
    _load("flags_isbi2015").main(["--root", str(isbi_root), "--limit", "2", "--annotator",
                                  "mean", "--checkpoint", "head", "--second-opinion", "head",
                                  "--second-opinion-annotator",
                                  "senior", "--model-annotator", "senior", "--json", str(out)])
    report = json.loads(out.read_text())
    assert report["annotator"] == "mean"
    quality = report["quality"]
    assert quality["flags"]["n_points"] == 4 * 19
    assert 0.0 <= quality["bound"]["wrong_fraction"] <= 1.0
    second = quality["second_opinion"]
    assert second["checkpoint"] == "head" and second["model_annotator"] == "senior"
    assert second["median_gap_px"] == 0.0
    assert np.isnan(second["auroc"]) or second["auroc"] == 0.5  # all tied
    # the mean model against the senior one: they disagree, less the two conventions
    _load("flags_isbi2015").main(["--root", str(isbi_root), "--limit", "2",
                                  "--second-opinion", "head-mean", "--json", str(out)])
    second = json.loads(out.read_text())["quality"]["second_opinion"]
    assert 0.0 < second["median_gap_px"] < 30.0  # under 3 mm apart at 0.1 mm per pixel


def test_annotation_drift_scores_the_junior_as_a_model(tmp_path, isbi_root):
    """The junior's own annotations as the predictions: the model rows must repeat the
    annotator rows, with and without each landmark's mean offset."""
    from unilandmark import isbi2015

    junior = isbi2015(isbi_root, "junior")
    csv = tmp_path / "junior.csv"
    rows = ["image,landmark,x,y"]
    for split in ("test1", "test2"):
        for r in junior.split_records(split):
            rows += [f"{r.id},{k + 1},{x},{y}" for k, (x, y) in enumerate(r.points)]
    csv.write_text("\n".join(rows) + "\n")
    out = _load("annotation_drift_isbi2015").main(["--root", str(isbi_root), "--predictions",
                                                   str(csv), "--json", str(tmp_path / "d.json")])
    assert "model_minus_senior" not in out["splits"]["gu2net-val"]  # not predicted
    for split in ("test1", "test2"):
        entry = out["splits"][split]
        assert entry["model_minus_senior"]["mre"] == pytest.approx(
            entry["senior_minus_junior"]["mre"])
        assert entry["model_minus_senior"]["mre_offset_removed"] == pytest.approx(
            entry["senior_minus_junior"]["mre_offset_removed"])
        assert entry["model_minus_junior"]["mre"] == pytest.approx(0.0)
        assert entry["model_minus_junior"]["mre_offset_removed"] == pytest.approx(0.0)


def test_onnx_volume_parity_writes_its_json(tmp_path):
    """The built-in brain model through both backends on one AFIDs template (real data,
    skipped when absent)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from .conftest import _require

    root = _require("afids_templates")
    out = tmp_path / "parity.json"
    _load("onnx_volume_parity").main(["--root", str(root), "--limit", "1", "--repeats", "1",
                                      "--json", str(out)])
    payload = json.loads(out.read_text())
    (row,) = payload["templates"]
    assert row["max_difference_voxel"] <= 0.05 and row["presence_agrees"]
    assert row["torch_s"] > 0 and row["onnx_s"] > 0
    assert payload["export"]["check_max_difference_voxel"] <= 0.05


def test_brain_seen_templates_scores_the_built_in_model(tmp_path):
    """The built-in brain model on the four templates it learned (real data, skipped when
    absent): a sound model file finds them within a few mm; a broken stage chain (a
    coarse stage out of step with its cubes, a wrong frame) misses by centimetres."""
    from .conftest import _require

    root = _require("afids_templates")
    out = tmp_path / "seen.json"
    _load("brain_seen_templates").main(["--data", str(root), "--json", str(out)])
    payload = json.loads(out.read_text())
    assert len(payload["templates"]) == 4 and payload["summary"]["n_points"] == 4 * 32
    assert payload["summary"]["mre"] < 3.0, payload["summary"]


def test_report_screenshot_writes_a_small_page_picture(tmp_path, isbi_root):
    import shutil

    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm not found: install poppler-utils (apt-get install -y "
                    "poppler-utils; .ci/run does)")
    out = tmp_path / "page.png"
    assert _load("report_screenshot").main(["--root", str(isbi_root), "--dpi", "40",
                                            "--out", str(out)]) == 0
    from PIL import Image

    with Image.open(out) as im:
        assert im.size[1] / im.size[0] == pytest.approx(11.69 / 8.27, rel=0.02)
    assert out.stat().st_size < 300_000

