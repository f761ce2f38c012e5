"""GU2Net's structure; every model's forward/backward/decode is in test_families.py."""

import pytest
import torch

from unilandmark.models import build_model, count_parameters
from unilandmark.models.gu2net import product_logit

DOMAINS = {"head": 5, "hand": 7}


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
