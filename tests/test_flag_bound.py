"""The flags benchmark's bound and ranking score (benchmarks/flags_isbi2015.py)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest


def _flags_benchmark():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "flags_isbi2015.py"
    spec = importlib.util.spec_from_file_location("flags_isbi2015", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bound_and_auroc_of_the_flags_benchmark():
    bound = _flags_benchmark().flag_bound
    errors = np.array([0.5, 1.0, 5.0, 2.0, 6.0, np.nan, 0.2, 9.0, 1.5, 3.9])  # 3 of 9 wrong
    perfect = bound(errors, errors)
    assert perfect["auroc"] == pytest.approx(1.0)
    assert perfect["wrong_fraction"] == pytest.approx(3 / 9)
    assert perfect["best_recall"] == pytest.approx(0.1 / (3 / 9))
    assert perfect["precision_needed"] == pytest.approx(0.8 * (3 / 9) / 0.1)
    assert bound(errors, -errors)["auroc"] == pytest.approx(0.0)
    assert bound(errors, np.ones_like(errors))["auroc"] == pytest.approx(0.5)  # all tied
    # the 9 mm point scored 0.9: below four right points, 4 of 3 x 6 pairs misordered
    score = np.array([0.5, 1.0, 5.0, 2.0, 6.0, 0.0, 0.2, 0.9, 1.5, 3.9])
    assert bound(errors, score)["auroc"] == pytest.approx(1 - 4 / 18)
    few = np.r_[np.full(19, 0.5), 5.0]  # 1 of 20 wrong: a 10 % budget could flag it twice
    assert bound(few, few)["best_recall"] == 1.0
    assert bound(few, few)["precision_needed"] == pytest.approx(0.4)
