"""Train/predict parity of the resize: prediction (numpy, no torch) prepares the network
input as training does (torch's anti-aliased bilinear, ``core.geometry.resize_to_input``),
for shrinking, enlarging and a JPEG held at reduced resolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unilandmark.core.geometry import fit_geometry, resize_to_input
from unilandmark.imageio.resample import resize_bilinear, resize_extent


@pytest.mark.parametrize("shape,size", [((2400, 1935), (208, 256)), ((300, 240), (64, 80)),
                                        ((50, 40), (100, 120)), ((97, 61), (33, 50))])
def test_prediction_resize_matches_training_resize(shape, size):
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    geometry = fit_geometry((shape[1], shape[0]), size, "stretch", None)
    trained = resize_to_input(image, geometry)[0]
    predicted = resize_bilinear(image, size)
    assert predicted.dtype == np.float32 and predicted.shape == (size[1], size[0])
    np.testing.assert_allclose(predicted, trained, atol=1e-5, rtol=0)  # float rounding


def test_a_reduced_decode_resizes_by_its_true_extent():
    """An image of 1935 x 2400 held at 8/3 original pixels per pixel (a JPEG decoded at
    3/8, its last pixel reaching past the edge) gives the input the whole image gives."""
    rng = np.random.default_rng(1)
    whole = rng.random((2400, 1935)).astype(np.float32)
    # the reduced image: box-average of 8/3 px cells, as seen by the resizer's extent
    held = F.interpolate(torch.from_numpy(whole)[None, None], size=(900, 726), mode="area")[0, 0]
    reduced = resize_extent(held.numpy(), (1935, 2400), (208, 256), 8 / 3)
    full = resize_extent(whole, (1935, 2400), (208, 256))
    assert reduced.shape == full.shape == (256, 208)
    # the two agree to the averaging of a random field, far below its contrast of 1
    assert np.abs(reduced - full).mean() < 0.02


def test_the_extent_must_match_the_image():
    from unilandmark.core.errors import InputError

    with pytest.raises(InputError, match="does not match its size"):
        resize_extent(np.zeros((10, 12), np.float32), (13, 10), (4, 4))
