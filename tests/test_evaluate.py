import json

import numpy as np
import pytest
from typer.testing import CliRunner

from unilandmark import (
    PROTOCOLS,
    PredictionError,
    dha_hand,
    evaluate,
    export_ground_truth,
    get_protocol,
    read_predictions,
    shenzhen_chest,
)
from unilandmark.cli import app


def _score(spec, split, path, protocol=None):
    report, *_ = evaluate(read_predictions(path), spec, split, get_protocol(protocol, spec))
    return report


def test_export_then_evaluate_is_zero_on_every_real_dataset(tmp_path, isbi_spec, hand_root,
                                                            chest_root):
    for spec, split in [(isbi_spec, "test2"), (dha_hand(hand_root), "all"),
                        (shenzhen_chest(chest_root), "all")]:
        out = tmp_path / f"{spec.name}.csv"
        export_ground_truth(spec, split, out)
        report = _score(spec, split, out)
        assert report["mre"] == 0.0 and report["n_points"] > 0
        assert all(v == 100.0 for v in report["sdr"].values())


def test_shifted_predictions_give_the_hand_computed_error(tmp_path, isbi_spec):
    out = tmp_path / "gt.csv"
    export_ground_truth(isbi_spec, "test1", out)
    lines = out.read_text().splitlines()
    shifted = [lines[0]]
    for line in lines[1:]:
        cells = line.split(",")
        cells[2] = str(float(cells[2]) + 6.0)   # +6 px in x
        cells[3] = str(float(cells[3]) - 8.0)   # -8 px in y -> 10 px -> 1 mm
        shifted.append(",".join(cells))
    out.write_text("\n".join(shifted) + "\n")
    report = _score(isbi_spec, "test1", out, "isbi2015-test1")
    assert report["mre"] == pytest.approx(1.0) and report["sd"] == pytest.approx(0.0, abs=1e-9)
    assert report["sdr"]["2.0"] == 100.0 and report["n_images"] == 150
    assert report["per_landmark"][0]["name"] == "sella"


def _constructed(points, size=(1935, 2400), **info):
    from unilandmark import DatasetSpec, Record

    pts = np.asarray(points, dtype=np.float64)
    record = Record("a", "a.png", pts, np.ones(len(pts), bool), meta={"size": size})
    return DatasetSpec("c", "head", tuple(f"l{i}" for i in range(len(pts))), (record,),
                       {"all": ("a",)}, info=info), [record]


def test_gu2net_head_protocol_rounds_in_the_input_grid():
    """Hand-computed: x 100 -> 100.5 * 416/1935 - 0.5 = 21.106 -> 21, x 110 -> 23.256 -> 23
    (2 grid px = 0.9375 mm); (1000, 1000) -> (214.59, 212.94) -> (215, 213) and
    (1002, 1003) -> (215.02, 213.58) -> (215, 214) (1 grid px = 0.46875 mm)."""
    spec, records = _constructed([[100.0, 200.0], [1000.0, 1000.0]])
    pred = np.array([[[110.0, 200.0], [1002.0, 1003.0]]])
    errors = PROTOCOLS["gu2net-head"].errors(spec, records, pred)
    np.testing.assert_allclose(errors, [[0.9375, 0.46875]])


def test_wrist_protocol_normalises_by_wrist_width():
    """Wrist landmarks 2 and 6 are 40 px apart; a (3, 4) px shift is 5 px = 5 * 50 / 40 mm."""
    points = [[0, 0], [10, 10], [5, 5], [7, 7], [9, 9], [10, 50]]
    spec, records = _constructed(points, wrist_pair=(2, 6))
    truth = np.asarray(points, dtype=np.float64)[None]
    errors = PROTOCOLS["dha-hand-wrist"].errors(spec, records, truth + [3.0, 4.0])
    np.testing.assert_allclose(errors, np.full((1, 6), 6.25))


def test_bad_predictions_are_all_reported(tmp_path, isbi_spec):
    path = tmp_path / "p.csv"
    export_ground_truth(isbi_spec, "test2", path)
    lines = path.read_text().splitlines()
    lines = [ln for ln in lines if not ln.startswith("305,3,")]            # missing landmark
    lines.append("999,1,1,1")                                               # unknown image
    lines.append("301,25,1,1")                                              # unknown landmark
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PredictionError) as info:
        evaluate(read_predictions(path), isbi_spec, "test2", get_protocol(None, isbi_spec))
    text = str(info.value)
    assert "record 999: unknown image id" in text
    assert "record 301: unknown landmark 25; expected 1..19" in text
    assert "record 305: no prediction for visible landmark(s) [3]" in text
    bad = tmp_path / "bad.csv"
    bad.write_text("image,landmark,x,y\n301,1,abc,2\n301,x,1,2\n301,2,nan,2\n")
    with pytest.raises(PredictionError) as info:
        read_predictions(bad)
    assert len(info.value.faults) == 3 and "'abc'" in str(info.value)


def test_cli_evaluate_writes_json_and_figures(tmp_path, isbi_root):
    gt = tmp_path / "junior.csv"
    runner = CliRunner()
    r = runner.invoke(app, ["datasets", "export", "isbi2015", "--root", str(isbi_root),
                            "--split", "test2", "--annotator", "junior", "--out", str(gt)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["evaluate", "isbi2015", "--root", str(isbi_root), "--protocol",
                            "isbi2015-mean-test2", "--predictions", str(gt), "--json",
                            str(tmp_path / "r.json"), "--figures", str(tmp_path / "fig")])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["protocol"] == "isbi2015-mean-test2" and report["n_points"] == 1900
    assert report["unit"] == "mm" and 0 < report["mre"] < 2
    figs = sorted(p.name for p in (tmp_path / "fig").iterdir())
    assert "sdr_curve.png" in figs and "per_landmark_error.png" in figs
    assert sum(f.startswith("worst_") for f in figs) == 3
    r = runner.invoke(app, ["evaluate", "isbi2015", "--root", str(isbi_root), "--protocol",
                            "isbi2015-test1", "--split", "test2", "--predictions", str(gt)])
    assert r.exit_code == 2 and "scores split 'test1'" in r.output


def test_millimetres_are_written_without_float_noise():
    from unilandmark.predictions.table import prediction_rows

    points = [np.array([[846.0, 1423.0], [812.3, 0.5]])]
    rows = prediction_rows(["a"], points, ["p", "q"], spacing=[(0.1, 0.1)])
    assert (rows[0]["x_mm"], rows[0]["y_mm"]) == ("84.6", "142.3")  # not 84.60000000000001
    assert rows[0]["x"] == "846.0" and rows[1]["x"] == "812.3"
    pts32 = [np.array([[852.28564, 1.0]], dtype=np.float32)]
    row = prediction_rows(["b"], pts32, ["p"], spacing=[(0.1, 0.1)])[0]
    assert row["x"] == "852.28564" and row["x_mm"] == "85.22856"  # float32 digits


def test_predicted_only_scores_the_images_in_the_file(tmp_path, isbi_root, isbi_spec):
    out = tmp_path / "gt.csv"
    export_ground_truth(isbi_spec, "test1", out)
    lines = out.read_text().splitlines()
    kept = [lines[0]] + [ln for ln in lines[1:] if ln.split(",")[0] in ("151", "152")]
    # image 152 one pixel off in x on every landmark
    kept = [ln if not ln.startswith("152,") else
            ",".join([*ln.split(",")[:2], repr(float(ln.split(",")[2]) + 1.0),
                      *ln.split(",")[3:]]) for ln in kept]
    few = tmp_path / "few.csv"
    few.write_text("\n".join(kept) + "\n")
    with pytest.raises(PredictionError, match="148 of the split's 150 images have no "
                                              "prediction.*--predicted-only") as info:
        _score(isbi_spec, "test1", few)
    lines = str(info.value).splitlines()
    assert "--predicted-only" in lines[1]  # the hint first, not after 148 fault lines
    report, errors, records, _ = evaluate(read_predictions(few), isbi_spec, "test1",
                                          get_protocol(None, isbi_spec), predicted_only=True)
    assert [r.id for r in records] == ["151", "152"]
    assert report["subset"]["n_images_in_split"] == 150 and report["n_images"] == 2
    assert report["mre"] == pytest.approx(0.05)  # 0.1 mm on half the images
    r = CliRunner().invoke(app, ["evaluate", "isbi2015", "--root", str(isbi_root),
                                 "--protocol", "isbi2015-test1", "--predictions", str(few),
                                 "--predicted-only"])
    assert r.exit_code == 0, r.output
    assert "2 of the split's 150 images scored" in r.output


def test_json_reports_hold_no_nan_tokens(tmp_path):
    """A landmark never visible has a NaN mean error: the report writes null, which every
    JSON reader accepts (Python's json would write the non-standard token NaN)."""
    from unilandmark.evaluation.report import write_json

    path = tmp_path / "r.json"
    write_json(path, {"mre": np.float64("nan"), "per_landmark": np.array([1.5, np.inf]),
                      "n": np.int64(3)})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"mre": None, "per_landmark": [1.5, None], "n": 3}
