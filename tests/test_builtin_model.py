"""The built-in model: `predict` on ISBI test2 then `evaluate` reproduces its recorded
figures (the provenance file next to the weights, the same numbers as docs/results.md)."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from unilandmark.checkpoints.builtin import DEFAULT_MODEL, model_path
from unilandmark.cli import app
from unilandmark.inference.detector import Detector

#: the default built-in model (the one `predict` uses without --checkpoint)
DEFAULT_FILE = model_path(None)


@pytest.fixture(scope="module")
def provenance():
    if not DEFAULT_FILE.is_file():
        pytest.skip("no built-in model in this checkout")
    return json.loads(DEFAULT_FILE.with_suffix(".json").read_text())


def test_builtin_model_loads_with_its_provenance(provenance):
    detector = Detector.from_checkpoint(None)
    assert "head" in detector.domains and DEFAULT_MODEL == "head-mean"
    assert DEFAULT_FILE.stat().st_size < 10 * 2**20
    assert {"data", "training", "protocols"} <= set(provenance)


@pytest.mark.slow
def test_predict_then_evaluate_reproduces_the_recorded_figures(provenance, isbi_root, tmp_path):
    runner = CliRunner()
    preds = tmp_path / "test2.csv"
    r = runner.invoke(app, ["predict", str(isbi_root / "RawImage" / "Test2Data"), "--domain",
                            "head", "--out", str(preds)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["evaluate", "isbi2015", "--root", str(isbi_root), "--protocol",
                            "isbi2015-test2", "--predictions", str(preds), "--json",
                            str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "r.json").read_text())
    recorded = provenance["protocols"]["isbi2015-test2"]
    assert report["mre"] == pytest.approx(recorded["mre"], abs=2e-3)
    for t, v in recorded["sdr"].items():
        assert report["sdr"][t] == pytest.approx(v, abs=0.2)


@pytest.mark.slow
def test_builtin_model_reads_mirrored_cephalograms(isbi_spec):
    """Test2 images mirrored left-right give, mirrored back, the original's landmarks; the
    stored-mirrored image 322 (whose annotations the adapter mirrors to fit) is found."""
    from unilandmark import read_image

    detector = Detector.from_checkpoint(None)
    records = {r.id: r for r in isbi_spec.split_records("test2")}
    for image_id in ("301", "322", "355"):
        record = records[image_id]
        array, _ = read_image(record.image_path)
        original = detector.predict(array, "head", spacing=(0.1, 0.1))
        mirrored = detector.predict(np.ascontiguousarray(array[:, ::-1]), "head",
                                    spacing=(0.1, 0.1))
        assert mirrored.orientation != original.orientation, image_id
        back = mirrored.points.astype(np.float64).copy()
        back[:, 0] = (array.shape[1] - 1) - back[:, 0]
        assert 0.1 * np.linalg.norm(back - original.points, axis=-1).mean() < 1.0, image_id
        error = 0.1 * np.linalg.norm(original.points - record.points, axis=-1)
        assert np.median(error) < 2.0, f"{image_id}: median error {np.median(error):.1f} mm"
