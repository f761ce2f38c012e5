"""The 3-D models (issue 20, volumes): a 3-D heatmap U-Net and GU2Net in 3-D, so that
several volume domains share one model.

- every 3-D registry entry: forward and backward on two domains with different landmark
  counts, at an odd size, logits of the input's spatial size under the codec's key;
- the per-domain parts are per domain (no gradient, no statistics from another domain's
  batch), the shared ones are shared;
- the trunk and the global network pad to their multiples and crop back exactly;
- sigmoid(GU2Net3d) = sigmoid(local) * sigmoid(global);
- parameter counts (sharing pays) and a CPU timing note, printed.

3-D decoding is the codec's business (tests of codecs); nothing here decodes.
"""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F

from unilandmark.models import (
    MODELS,
    GU2Net3d,
    UNet3d,
    build_model,
    codec_for,
    count_parameters,
    models_for,
)
from unilandmark.models.gu2net3d import GlobalNet3d
from unilandmark.models.layers3d import UNetTrunk3d, downsample_3d, pad_to_multiple_3d

DOMAINS = {"ct": 3, "mr": 5}
ZHW = (13, 17, 22)  # odd, and no side a multiple of 2 ** depth or of the global scale
NAMES_3D = ["gu2net3d", "gu2net3d-local", "gu2net3d-global", "unet3d"]


def _kwargs(name, width=4, depth=2):
    kw = {"width": width, "depth": depth}
    if MODELS[name].global_branch:
        kw["global_width"] = 4
    return kw


def _volume(b=2, c=1, size=ZHW, seed=0):
    return torch.rand(b, c, *size, generator=torch.Generator().manual_seed(seed))


def test_the_registry_knows_the_dimensions_of_every_model():
    # the 3-D heatmap models, plus the volume-only families (displacement, 2.5-D)
    assert set(NAMES_3D) <= set(models_for(3))
    assert set(models_for(3)) - set(NAMES_3D) <= {"displacement3d", "triplanar"}
    assert not set(models_for(2)) & set(NAMES_3D)
    assert set(models_for(2)) | set(models_for(3)) == set(MODELS)
    assert MODELS["gu2net"].dims == frozenset({2})  # 2-D entries unchanged
    for name in NAMES_3D:
        entry = MODELS[name]
        assert entry.dims == frozenset({3}) and entry.stages == {"image", "patch"}
        assert entry.global_branch == name.startswith("gu2net3d")
        assert codec_for(name, 2.0).name == "heatmap"  # the 2-D heatmap models' codec
        assert "3-D" in entry.family


@pytest.mark.parametrize("name", NAMES_3D)
def test_every_3d_model_forward_backward_on_two_domains(name):
    torch.manual_seed(0)
    model = build_model(name, DOMAINS, **_kwargs(name))
    for domain, k in DOMAINS.items():
        x = _volume()
        outputs = model(x, domain)
        assert set(outputs) == {"heatmap"}  # the heatmap codec's key
        logits = outputs["heatmap"]
        assert logits.shape == (2, k, *ZHW) and logits.dtype == torch.float32
        target = torch.zeros_like(logits)
        target[:, :, 6, 8, 11] = 1.0
        loss = F.binary_cross_entropy_with_logits(logits, target)
        assert torch.isfinite(loss)
        model.zero_grad()
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        out = model(_volume(1, size=(9, 8, 31)), "mr")["heatmap"]
    assert out.shape == (1, 5, 9, 8, 31)


def _of_domain(param_name: str, domain: str) -> bool:
    return domain in param_name.split(".")


@pytest.mark.parametrize("name", ["gu2net3d", "unet3d"])
def test_per_domain_parts_learn_only_from_their_domain(name):
    torch.manual_seed(0)
    model = build_model(name, DOMAINS, **_kwargs(name))
    before = {n: b.clone() for n, b in model.named_buffers()}
    model.zero_grad()
    F.softplus(model(_volume(), "ct")["heatmap"]).mean().backward()
    params = dict(model.named_parameters())
    for n, p in params.items():
        if _of_domain(n, "mr"):
            assert p.grad is None or not p.grad.any(), n
        else:  # every part ct uses (its own and the shared ones) learns from ct's batch
            assert p.grad is not None and p.grad.any(), n
    for n, b in model.named_buffers():
        if _of_domain(n, "mr"):
            assert torch.equal(b, before[n]), n  # no BatchNorm statistics from ct
    shared = [n for n in params if not _of_domain(n, "ct") and not _of_domain(n, "mr")]
    assert shared
    if name == "gu2net3d":
        assert any(".depthwise.ct." in n for n in params)
        assert any(".depthwise.mr." in n for n in params)
        assert any(".norm.mr." in n for n in params)
        assert all(".pointwise." in n for n in shared), shared
        assert any(n.startswith("glob.body.mr.") for n in params)
    else:  # the plain U-Net shares its trunk, BatchNorm included
        assert all(n.startswith("local.trunk.") for n in shared)
    assert count_parameters(model, ["ct"]) < count_parameters(model)


def test_the_3d_trunk_places_features_as_on_the_padded_size():
    torch.manual_seed(0)
    z, h, w = ZHW
    for block in ("separable", "plain"):
        trunk = UNetTrunk3d(4, 3, ["d"], block).eval()
        x = _volume(1, 4)
        padded = F.pad(x, (0, (-w) % 8, 0, (-h) % 8, 0, (-z) % 8))  # zeros at the far ends
        assert padded.shape[-3:] == (16, 24, 24)
        assert torch.equal(pad_to_multiple_3d(x, 8), padded)
        with torch.no_grad():
            out, ref = trunk(x, "d"), trunk(padded, "d")[..., :z, :h, :w]
        assert out.shape == (1, 4, *ZHW)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def test_the_3d_global_network_works_at_exactly_a_quarter():
    torch.manual_seed(0)
    z, h, w = ZHW
    net = GlobalNet3d({"d": 3}, in_channels=1, width=8).eval()
    x, prob = _volume(1), _volume(1, 3, seed=1)
    pad = (0, (-w) % 4, 0, (-h) % 4, 0, (-z) % 4)
    with torch.no_grad():
        out = net(x, "d", prob)
        ref = net(F.pad(x, pad), "d", F.pad(prob, pad))[..., :z, :h, :w]
    assert out.shape == (1, 3, *ZHW)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def test_the_3d_downsampling_is_the_2d_antialiased_bilinear_per_axis():
    """On a volume constant along Z it is 2-D's antialiased bilinear of every slice; a
    constant volume stays constant (the borders are renormalised)."""
    plane = torch.rand(2, 3, 16, 24, dtype=torch.float64)
    vol = plane[:, :, None].expand(2, 3, 8, 16, 24)
    ref = F.interpolate(plane, size=(4, 6), mode="bilinear", align_corners=False,
                        antialias=True)
    out = downsample_3d(vol, 4)
    assert out.shape == (2, 3, 2, 4, 6)
    torch.testing.assert_close(out, ref[:, :, None].expand_as(out), rtol=0, atol=1e-12)
    ones = downsample_3d(torch.ones(1, 1, 12, 9, 6), 3)
    torch.testing.assert_close(ones, torch.ones(1, 1, 4, 3, 2))


def test_gu2net3d_is_the_product_of_its_local_and_global_heatmaps():
    torch.manual_seed(0)
    model = GU2Net3d(DOMAINS, width=4, depth=2, global_width=4).eval()
    x = _volume()
    with torch.no_grad():
        for domain in DOMAINS:
            full = model(x, domain)["heatmap"]
            local = model.local(x, domain)
            glob = model.glob(x, domain, torch.sigmoid(local))
            torch.testing.assert_close(torch.sigmoid(full),
                                       torch.sigmoid(local) * torch.sigmoid(glob),
                                       rtol=0, atol=1e-5)


def test_sharing_one_3d_model_costs_fewer_parameters_than_separate_models():
    sizes = {"width": 16, "depth": 3}
    shared = count_parameters(GU2Net3d(DOMAINS, **sizes, global_width=32))
    one_gu2 = {d: count_parameters(GU2Net3d({d: k}, **sizes, global_width=32))
               for d, k in DOMAINS.items()}
    unets = {d: count_parameters(UNet3d({d: k}, **sizes)) for d, k in DOMAINS.items()}
    unet_both = count_parameters(UNet3d(DOMAINS, **sizes))
    print(f"\nparameters (width 16, depth 3, global width 32; domains {DOMAINS}): "
          f"GU2Net3d shared {shared:,}; GU2Net3d per domain "
          f"{', '.join(f'{d} {n:,}' for d, n in one_gu2.items())} "
          f"(sum {sum(one_gu2.values()):,}); UNet3d per domain "
          f"{', '.join(f'{d} {n:,}' for d, n in unets.items())} "
          f"(sum {sum(unets.values()):,}); UNet3d shared {unet_both:,}")
    assert shared < sum(unets.values())
    assert shared < sum(one_gu2.values())


def test_cpu_speed_note_gu2net3d():
    """One forward + backward of GU2Net3d at its default sizes on (1, 1, 48, 64, 64),
    printed (no bound: the machine varies)."""
    torch.manual_seed(0)
    model = GU2Net3d({"ct": 3}, width=16, depth=3, global_width=32)
    x = torch.rand(1, 1, 48, 64, 64)
    start = time.perf_counter()
    out = model(x, "ct")["heatmap"]
    forward = time.perf_counter() - start
    F.softplus(out).mean().backward()
    total = time.perf_counter() - start
    assert out.shape == (1, 3, 48, 64, 64)
    print(f"\nGU2Net3d width 16, depth 3, global 32 on (1, 1, 48, 64, 64), CPU "
          f"{torch.get_num_threads()} threads: forward {forward:.2f} s, forward + backward "
          f"{total:.2f} s")
