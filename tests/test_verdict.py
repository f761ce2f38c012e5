"""QC in words a person can act on (quality.verdict; docs/quality.md, "QC per image")."""

from __future__ import annotations

import numpy as np

from unilandmark.inference.detector import LandmarkResult
from unilandmark.quality.verdict import habitual, verdict

NAMES = ("sella", "nasion", "porion", "gonion")


def _result(flags, qc, risk=True):
    k = len(NAMES)
    return LandmarkResult(id="a", domain="head", names=NAMES,
                          points=np.zeros((k, 2), np.float32),
                          confidence=np.full(k, 0.5, np.float32), spacing=None,
                          points_mm=None, flags=np.asarray(flags, bool), qc=qc,
                          risk=np.full(k, 0.1, np.float32) if risk else None)


def test_the_three_verdicts_in_words():
    v = verdict(_result([0, 0, 1, 1], "review"))
    assert v.sentence == "check 2 landmarks: porion, gonion" and v.to_check == ("porion", "gonion")
    assert not v.out_of_scope
    v = verdict(_result([1, 1, 1, 0], "fail"))
    assert v.out_of_scope and v.sentence.startswith("out of scope: 3 of 4 landmarks flagged")
    assert verdict(_result([0] * 4, "pass")).sentence == \
        "pass: every landmark as confident as on the validation images"
    assert "uncalibrated" in verdict(_result([0] * 4, "pass", risk=False)).sentence
    v = verdict(_result([0, 1, 1, 0], "review"), always=np.array([0, 0, 1, 0], bool))
    assert v.sentence == "check 2 landmarks: nasion, porion (always flagged by this model)"


def test_habitual_landmarks_are_those_flagged_at_typical_evidence():
    cal = {"features": ["stage1", "landmark"], "mean": [0.0, -1.5], "scale": [1.0, 0.5],
           "weights": [1.0, 1.0], "bias": -2.0, "threshold": 0.2,
           "landmark_prior": [-2.0, -1.5, 0.0, -1.0]}
    # risks at typical evidence: sigmoid(-2 + z), z = (prior + 1.5) / 0.5 = -1, 0, 3, 1
    assert habitual(cal, 4).tolist() == [False, False, True, True]
    assert habitual({**cal, "features": ["stage1"]}, 4).tolist() == [False] * 4
    assert habitual(None, 4).tolist() == [False] * 4
