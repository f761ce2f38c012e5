"""Input sizes a U-Net cannot pool exactly (issue: skip features misaligned at widths such
as 312 or 184): the trunks and GU2Net's global network pad to the multiple inside and crop
back, so a feature lands where it does on the padded input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from unilandmark.models import build_model
from unilandmark.models.gu2net import GlobalNet
from unilandmark.models.layers import UNetTrunk


def _image(w: int, h: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 4, h, w, generator=g)


@pytest.mark.parametrize("w,h", [(312, 384), (184, 256), (45, 37)])
def test_the_trunk_places_features_as_on_the_padded_size(w, h):
    torch.manual_seed(0)
    trunk = UNetTrunk(4, 4, ["d"], "plain").eval()
    x = _image(w, h)
    padded = F.pad(x, (0, (-w) % 16, 0, (-h) % 16))  # zeros right and bottom, as at 320 x 384
    with torch.no_grad():
        out, ref = trunk(x, "d"), trunk(padded, "d")[..., :h, :w]
    assert out.shape == (1, 4, h, w)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def test_the_global_network_works_at_exactly_a_quarter():
    torch.manual_seed(0)
    net = GlobalNet({"d": 3}, in_channels=1, width=8).eval()
    x, prob = torch.rand(1, 1, 101, 78), torch.rand(1, 3, 101, 78)
    pad = (0, (-78) % 4, 0, (-101) % 4)
    with torch.no_grad():
        out = net(x, "d", prob)
        ref = net(F.pad(x, pad), "d", F.pad(prob, pad))[..., :101, :78]
    assert out.shape == (1, 3, 101, 78)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["gu2net", "unet", "heatmap"])
def test_whole_models_accept_any_size(name):
    kwargs = {"width": 8, "depth": 3} | ({"global_width": 8} if name == "gu2net" else {})
    model = build_model(name, {"d": 2}, **kwargs).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 61, 47), "d")["heatmap"]
    assert out.shape == (2, 2, 61, 47)
