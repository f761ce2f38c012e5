import numpy as np
import pytest

from unilandmark.core.metrics import radial_errors, sdr, summarise


def test_radial_errors_by_hand_with_anisotropic_spacing():
    pred = np.array([[[3.0, 4.0], [10.0, 10.0]]])
    truth = np.array([[[0.0, 0.0], [10.0, 12.0]]])
    np.testing.assert_allclose(radial_errors(pred, truth), [[5.0, 2.0]])
    scale = np.array([[[0.1, 0.2]]])
    np.testing.assert_allclose(radial_errors(pred, truth, scale), [[np.hypot(0.3, 0.8), 0.4]])


def test_summary_by_hand():
    errors = np.array([[1.0, 2.0, np.nan], [3.0, 6.0, 4.0]])
    s = summarise(errors, (2.0, 4.0), ["a", "b", "c"])
    values = np.array([1.0, 2.0, 3.0, 6.0, 4.0])
    assert s["mre"] == pytest.approx(3.2)
    assert s["sd"] == pytest.approx(values.std())
    assert s["median"] == pytest.approx(3.0)
    assert s["sdr"] == {"2.0": pytest.approx(40.0), "4.0": pytest.approx(80.0)}
    assert s["n_points"] == 5
    c = s["per_landmark"][2]
    assert c["name"] == "c" and c["n"] == 1 and c["mre"] == pytest.approx(4.0)


def test_sdr_counts_ties_despite_float_noise():
    e = np.hypot(15 * 0.1, 20 * 0.1)  # 2.5000000000000004 in floating point
    assert sdr(np.array([e]), 2.5) == 100.0
    assert sdr(np.array([2.5001]), 2.5) == 0.0
