import numpy as np
import pytest
import torch

from unilandmark.codecs import HeatmapCodec, render_gaussians


def _as_logits(heat):
    h = heat.clamp(1e-12, 1 - 1e-12)
    return torch.log(h) - torch.log1p(-h)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rendered_gaussian_at_fractional_position_decodes_within_005px(dtype):
    rng = np.random.default_rng(0)
    pts = torch.tensor(rng.uniform(3, 60, size=(4, 7, 2)), dtype=dtype)
    codec = HeatmapCodec(sigma=3.0)
    targets = codec.encode(pts, torch.ones(4, 7, dtype=torch.bool), (64, 64))
    pred = codec.decode({"heatmap": _as_logits(targets["heatmap"])})
    assert pred.points.shape == (4, 7, 2) and pred.confidence.shape == (4, 7)
    assert (pred.points - pts).abs().max() < 0.05


def test_without_refinement_decoding_is_the_rounded_argmax():
    pts = torch.tensor([[[10.3, 20.7]]], dtype=torch.float64)
    heat = render_gaussians(pts, (32, 32), 2.0)
    pred = HeatmapCodec(2.0, refine=False).decode({"heatmap": _as_logits(heat)})
    assert pred.points.tolist() == [[[10.0, 21.0]]]


def test_invisible_landmarks_have_no_target_and_no_weight():
    pts = torch.tensor([[[5.0, 5.0], [float("nan"), float("nan")]]])
    out = HeatmapCodec(2.0).encode(pts, torch.tensor([[True, False]]), (16, 16))
    assert out["weight"].tolist() == [[1.0, 0.0]]
    assert out["heatmap"][0, 1].abs().max() == 0 and out["heatmap"][0, 0].max() == 1.0


def test_sigma_per_sample_and_points_are_not_rounded():
    pts = torch.tensor([[[8.5, 8.0]], [[8.5, 8.0]]])
    heat = render_gaussians(pts, (17, 17), torch.tensor([[1.0], [3.0]]))
    # a half-pixel position gives two equal peaks: nothing was rounded
    assert torch.isclose(heat[0, 0, 8, 8], heat[0, 0, 8, 9])
    assert heat[1, 0, 8, 2] > heat[0, 0, 8, 2]


def test_pixel_class_loss_ignores_a_landmark_that_is_not_visible():
    """The class of a landmark not visible in an image gets no gradient there (it used to be
    pushed down everywhere, its true place included, as if it were background)."""
    from unilandmark.codecs import PixelClassCodec

    codec = PixelClassCodec(radius=2.0)
    points = torch.tensor([[[5.0, 5.0], [12.0, 10.0]], [[6.0, 4.0], [11.0, 12.0]]])
    visible = torch.tensor([[True, False], [True, True]])
    targets = codec.encode(points, visible, (16, 16))
    logits = torch.randn(2, 3, 16, 16, requires_grad=True)
    loss = codec.loss({"classes": logits}, targets)
    loss.backward()
    assert torch.isfinite(loss)
    assert logits.grad[0, 2].abs().max() == 0      # image 0, landmark 2: not visible
    assert logits.grad[1, 2].abs().max() > 0       # image 1, landmark 2: visible
    assert logits.grad[0, 1].abs().max() > 0
