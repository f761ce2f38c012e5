import pytest
import torch

from unilandmark.codecs import HeatmapCodec
from unilandmark.models import MODELS, build_model, count_parameters
from unilandmark.models.gu2net import product_logit

DOMAINS = {"head": 5, "hand": 7}


@pytest.mark.parametrize("name", list(MODELS))
def test_forward_backward_decode(name):
    torch.manual_seed(0)
    model = build_model(name, DOMAINS, width=8, depth=2, **(
        {"global_width": 8} if name.startswith("gu2net") else {}))
    for domain, k in DOMAINS.items():
        x = torch.rand(2, 1, 36, 28)  # not a power of two on purpose
        out = model(x, domain)
        assert set(out) == {"heatmap"} and out["heatmap"].shape == (2, k, 36, 28)
        loss = out["heatmap"].float().pow(2).mean()
        model.zero_grad()
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        pred = HeatmapCodec(2.0).decode(out)
        assert pred.points.shape == (2, k, 2)
        assert (pred.points[..., 0] <= 27).all() and (pred.points[..., 1] <= 35).all()


def test_per_domain_parts_are_separate_and_pointwise_is_shared():
    model = build_model("gu2net", DOMAINS, width=8, depth=2, global_width=8)
    names = [n for n, _ in model.named_parameters()]
    assert any(".depthwise.head." in n for n in names)
    assert any(".depthwise.hand." in n for n in names)
    assert not any(".pointwise.head" in n or ".pointwise.hand" in n for n in names)
    assert any(n.startswith("glob.body.hand.") for n in names)
    assert count_parameters(model, ["head"]) < count_parameters(model)


def test_product_logit_is_the_logit_of_the_product():
    a, b = torch.randn(1000) * 4, torch.randn(1000) * 4
    p = torch.sigmoid(product_logit(a, b))
    torch.testing.assert_close(p, torch.sigmoid(a) * torch.sigmoid(b), atol=1e-6, rtol=1e-4)


def test_unknown_model_is_a_clear_error():
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        build_model("nope", DOMAINS)
