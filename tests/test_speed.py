"""Speed settings of the training step: every named setting is selectable in a config and
trains to the same kind of result as the plain step."""

import typing

import numpy as np
import pytest

from unilandmark.training.config import TrainConfig
from unilandmark.training.fit import fit
from unilandmark.training.speed import SPEED_SETTINGS

from .conftest import phantom_config


def test_config_names_every_speed_setting():
    names = typing.get_args(TrainConfig.model_fields["speed"].annotation)
    assert set(names) == set(SPEED_SETTINGS)


@pytest.mark.parametrize("speed", ["channels_last", "channels_last+bf16"])
def test_speed_setting_trains_like_the_plain_step(speed, phantoms, tmp_path):
    losses = {}
    for name in ("plain", speed):
        cfg = phantom_config(phantoms, tmp_path / name, domains=("head",), epochs=2, size=32,
                             threads=1)
        cfg.train.speed = name
        run = fit(cfg, progress=False, log=lambda *_: None)
        losses[name] = [row["loss"] for row in run.history]
    assert all(np.isfinite(v) for v in losses[speed])
    assert losses[speed][-1] < losses[speed][0]  # it learns
    # the same step in another memory format (and bf16 on the CPU): close to the plain loss
    np.testing.assert_allclose(losses[speed], losses["plain"], rtol=0.1)
