"""A learning test per family: a short CPU training on the head phantoms."""

import numpy as np
import pytest

from unilandmark import synthetic_dataset
from unilandmark.predict import Detector
from unilandmark.train import fit

from .conftest import phantom_config

#: mean test error bound in pixels (64 x 64 images; an untrained model is off by ~20 px)
BOUND_PX = {"pixel-class": 2.0, "patch-class": 4.5, "direct-regression": 5.0, "dsnt": 2.5,
            "heatmap": 2.0, "heatmap-sigma": 2.5, "heatmap-awing": 2.0, "displacement": 2.5,
            "scn": 3.0}


@pytest.mark.slow
@pytest.mark.parametrize("model", list(BOUND_PX))
def test_family_learns_the_head_phantoms(model, phantoms, tmp_path):
    cfg = phantom_config(phantoms, tmp_path, domains=("head",), epochs=20)
    cfg.model.name = model
    run = fit(cfg, progress=False, log=lambda *_: None)
    spec = synthetic_dataset(phantoms, "head")
    records = spec.split_records("test")
    results = Detector.from_checkpoint(run.best_path).predict_many(
        [r.image_path for r in records], "head")
    errors = np.linalg.norm(np.stack([r.points for r in results]) -
                            np.stack([r.points for r in records]), axis=-1)
    print(f"{model}: {errors.mean():.3f} px")
    assert errors.mean() < BOUND_PX[model], f"{model}: test MRE {errors.mean():.2f} px"
