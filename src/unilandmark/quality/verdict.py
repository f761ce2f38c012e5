"""An image's QC in words a person can act on (docs/quality.md, "QC per image").

The ``qc`` value of a result (``pass`` / ``review`` / ``fail``, :func:`.evidence.qc_status`)
is the machine-readable verdict; :func:`verdict` turns it into one of three sentences:

- ``pass``: every landmark is as confident as on the validation images the calibration
  was fitted on (nothing to check); for an uncalibrated model only that no hard rule
  fired, and it says so;
- ``review``: "check these N landmarks", named, in the model's landmark order;
- ``fail``: the image is out of scope for the model: most of its landmarks are flagged, so
  the image as a whole was not understood (another anatomy or view, an orientation the
  model could not fix, an unreadable or blank image); its points are not to be used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: the words of each verdict's headline
HEADLINES = {"pass": "pass", "review": "check these landmarks", "fail": "out of scope"}


@dataclass(frozen=True)
class Verdict:
    """``qc`` (pass/review/fail), ``sentence`` (one line, no trailing period) and the
    names of the landmarks to check (those flagged; all flagged ones for ``fail``)."""

    qc: str
    sentence: str
    to_check: tuple[str, ...]

    @property
    def out_of_scope(self) -> bool:
        return self.qc == "fail"


def habitual(calibration: dict | None, k: int) -> np.ndarray:
    """(K,) bool: landmarks the calibration flags even at typical evidence (every other
    piece of evidence at its validation mean, the landmark's own difficulty as stored): a
    landmark this model is always to be checked on, whatever the image. Its flag tells
    little about the image at hand, so a verdict names it apart. None: no landmark."""
    out = np.zeros(k, bool)
    if not calibration or "landmark" not in calibration.get("features", []):
        return out
    i = calibration["features"].index("landmark")
    prior = np.asarray(calibration.get("landmark_prior", []), dtype=np.float64)
    if prior.shape != (k,):
        return out
    z = (prior - calibration["mean"][i]) / calibration["scale"][i]
    logit = calibration["bias"] + calibration["weights"][i] * z
    risk = 1.0 / (1.0 + np.exp(-np.clip(logit, -60, 60)))
    return risk >= calibration["threshold"]


def verdict(result, calibrated: bool | None = None,
            always: np.ndarray | None = None) -> Verdict:
    """The verdict of one result (a ``LandmarkResult`` with ``flags``, ``qc`` and
    ``names``). ``calibrated``: whether a calibration gave the flags (default: the result
    has a ``risk``); ``always`` (K,) bool: the model's :func:`habitual` landmarks, named
    "always flagged by this model" where they are flagged."""
    flags = np.asarray(result.flags if result.flags is not None else [], bool)
    names = tuple(result.names)
    always = np.zeros(len(names), bool) if always is None else np.asarray(always, bool)
    flagged = tuple(n for n, f in zip(names, flags, strict=False) if f)
    shown = tuple(f"{n} (always flagged by this model)" if a else n
                  for n, f, a in zip(names, flags, always, strict=False) if f)
    calibrated = result.risk is not None if calibrated is None else calibrated
    qc = result.qc or "pass"
    if qc == "fail":
        return Verdict(qc, f"out of scope: {len(flagged)} of {len(names)} landmarks flagged, "
                           "the image as a whole was not understood (another anatomy or "
                           "view, an orientation the model could not fix, an unreadable or "
                           "blank image); do not use its points", flagged)
    if qc == "review" and flagged:
        return Verdict(qc, f"check {len(flagged)} landmark{'s' if len(flagged) > 1 else ''}: "
                           + ", ".join(shown), flagged)
    if calibrated:
        return Verdict("pass", "pass: every landmark as confident as on the validation "
                               "images", ())
    return Verdict("pass", "pass: no hard rule fired (this model is uncalibrated: run "
                           "`unilandmark calibrate` for risk-based flags)", ())
