"""Every model name: forward, backward, decode; every codec: encode-then-decode of truth."""

import numpy as np
import pytest
import torch

from unilandmark.codecs import (
    DirectRegressionCodec,
    DisplacementCodec,
    DSNTCodec,
    HeatmapCodec,
    LearnedSigmaHeatmapCodec,
    PatchClassCodec,
    PixelClassCodec,
)
from unilandmark.models import MODELS, build_model, codec_for, models_for

DOMAINS = {"head": 4, "hand": 6}
SIZE = (40, 36)  # W, H: not a power of two on purpose


def _kwargs(name):
    kw = {"width": 8, "depth": 2}
    if MODELS[name].global_branch:
        kw["global_width"] = 8
    return kw


@pytest.mark.parametrize("name", models_for(2))  # 3-D models: tests/test_models_3d.py
def test_every_model_forward_backward_decode(name):
    torch.manual_seed(0)
    model = build_model(name, DOMAINS, **_kwargs(name))
    codec = codec_for(name, sigma=2.0)
    assert MODELS[name].family and MODELS[name].stages <= {"image", "patch"}
    for domain, k in DOMAINS.items():
        x = torch.rand(2, 1, SIZE[1], SIZE[0])
        pts = torch.rand(2, k, 2) * torch.tensor([SIZE[0] - 8, SIZE[1] - 8]) + 4
        visible = torch.ones(2, k, dtype=torch.bool)
        visible[0, 0] = False
        pts[0, 0] = float("nan")
        outputs = model(x, domain)
        loss = codec.loss(outputs, codec.encode(pts, visible, SIZE))
        assert torch.isfinite(loss)
        model.zero_grad()
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        pred = codec.decode({k2: v.detach() for k2, v in outputs.items()})
        assert pred.points.shape == (2, k, 2) and pred.confidence.shape == (2, k)
        assert torch.isfinite(pred.points).all()


def _logit(p):
    p = p.clamp(1e-9, 1 - 1e-9)
    return torch.log(p) - torch.log1p(-p)


def ideal_outputs(codec, targets, pts, size):
    """What a perfect model would output for these targets."""
    w, h = size
    if isinstance(codec, HeatmapCodec):
        return {"heatmap": _logit(targets["heatmap"].double())}
    if isinstance(codec, LearnedSigmaHeatmapCodec):
        from unilandmark.codecs import render_gaussians

        return {"heatmap": codec.gamma * render_gaussians(pts.double(), size, 2.0)}
    if isinstance(codec, PixelClassCodec):
        onehot = torch.nn.functional.one_hot(targets["classes"], pts.shape[1] + 1)
        return {"classes": 20.0 * onehot.permute(0, 3, 1, 2).float()}
    if isinstance(codec, PatchClassCodec):
        b, k = pts.shape[:2]
        gh, gw = targets["patch"].shape[-2:]
        off = torch.zeros(b, k, 2, gh * gw)
        off.scatter_(-1, targets["cell"][:, :, None, None].expand(b, k, 2, 1),
                     targets["offset"][..., None])
        return {"patch": torch.log(targets["patch"].clamp(min=1e-30)),
                "offset": off.reshape(b, 2 * k, gh, gw)}
    if isinstance(codec, DirectRegressionCodec):
        return {"coords": pts.clone()}
    if isinstance(codec, DSNTCodec):
        from unilandmark.codecs import render_gaussians

        return {"heatmap": torch.log(render_gaussians(pts.double(), size, 2.0) + 1e-300)}
    if isinstance(codec, DisplacementCodec):
        return {"mask": _logit(targets["mask"]), "offset": targets["offset"]}
    raise AssertionError(type(codec))


# every codec recovers a point within 0.1 px except pixel classification, whose target is
# a disc of whole pixels: its centroid is the point only up to the disc's discretisation
TOLERANCE = {"pixel-class": 0.5}


#: the 2-D codec contract; the 2.5-D codec takes 3-D points in cubic patches
#: (tests/test_triplanar.py)
PLANAR_CODECS = [n for n in MODELS if "volume-patch" not in MODELS[n].stages]


@pytest.mark.parametrize("name", PLANAR_CODECS)
def test_encode_then_decode_recovers_the_points(name):
    codec = codec_for(name, sigma=2.0)
    rng = np.random.default_rng(0)
    # five well separated points (discs and Gaussians do not overlap), fractional offsets
    grid = np.array([[8.0, 8.0], [28.0, 8.0], [18.0, 17.0], [8.0, 27.0], [29.0, 26.0]])
    pts = torch.tensor(grid + rng.uniform(-1.5, 1.5, size=(3, 5, 2)), dtype=torch.float32)
    visible = torch.ones(3, 5, dtype=torch.bool)
    targets = codec.encode(pts, visible, SIZE)
    pred = codec.decode(ideal_outputs(codec, targets, pts, SIZE))
    err = (pred.points.float() - pts).norm(dim=-1).max()
    assert err < TOLERANCE.get(codec.name, 0.1), f"{name}: {err:.3f} px"
