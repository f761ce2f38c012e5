"""The heatmap codec in N dimensions (issue 20): volumes are (B, K, Z, H, W) heatmaps of
(x, y, z) points through the same functions as images, and the 2-D path is unchanged bit
for bit (checked against a frozen copy of the 2-D formulas as they were before volumes)."""

import numpy as np
import pytest
import torch

from unilandmark.codecs import HeatmapCodec, decode_heatmap, decode_peaks, render_gaussians
from unilandmark.core.errors import InputError

LOGSIG = torch.nn.functional.logsigmoid
POINT = (10.3, 7.6, 5.25)  # (x, y, z)


def _as_logits(heat):
    h = heat.clamp(1e-12, 1 - 1e-12)
    return torch.log(h) - torch.log1p(-h)


# --- volumes ---------------------------------------------------------------------------


def test_3d_rendering_has_its_peak_at_the_rounded_voxel():
    pts = torch.tensor([[[10.3, 7.6, 5.25], [2.0, 3.0, 4.0]],
                        [[0.2, 18.7, 0.4], [22.6, 0.45, 10.8]]], dtype=torch.float64)
    heat = render_gaussians(pts, (24, 20, 12), 2.0)
    assert heat.shape == (2, 2, 12, 20, 24) and heat.dtype == torch.float64
    for b in range(2):
        for k in range(2):
            z, y, x = np.unravel_index(int(heat[b, k].argmax()), (12, 20, 24))
            assert (x, y, z) == tuple(round(float(v)) for v in pts[b, k])
    assert heat[0, 1, 4, 3, 2] == 1.0  # an integer point: peak exactly 1 at its voxel
    # separable: the product of one Gaussian per axis
    x, y, z = POINT
    g = [np.exp(-(np.arange(n) - c) ** 2 / 8) for n, c in ((24, x), (20, y), (12, z))]
    expected = g[2][:, None, None] * g[1][None, :, None] * g[0][None, None, :]
    np.testing.assert_allclose(heat[0, 0].numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0, 3.0])
@pytest.mark.parametrize("size", [(24, 20, 12), (13, 31, 9), (40, 10, 25), (12, 10, 7)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_3d_gaussian_at_a_fractional_position_decodes_within_005_voxel(sigma, size, dtype):
    """(x, y, z) = (10.3, 7.6, 5.25) in grids of every shape (the smallest puts the point
    next to the last voxel along every axis)."""
    pts = torch.tensor([[POINT]], dtype=dtype)
    pred = decode_heatmap(_as_logits(render_gaussians(pts, size, sigma)).float())
    assert pred.points.shape == (1, 1, 3) and pred.points.dtype == torch.float32
    assert (pred.points.double() - pts.double()).abs().max() < 0.05
    assert 0 < float(pred.confidence) <= 1


def test_3d_codec_decodes_a_batch_of_random_points():
    rng = np.random.default_rng(3)
    size = (32, 28, 20)
    pts = torch.tensor(rng.uniform([2, 2, 2], [29, 25, 17], size=(3, 4, 3)),
                       dtype=torch.float32)
    codec = HeatmapCodec(sigma=2.5)
    targets = codec.encode(pts, torch.ones(3, 4, dtype=torch.bool), size)
    assert targets["heatmap"].shape == (3, 4, 20, 28, 32)
    pred = codec.decode({"heatmap": _as_logits(targets["heatmap"])})
    assert pred.points.shape == (3, 4, 3) and pred.confidence.shape == (3, 4)
    assert (pred.points - pts).abs().max() < 0.05
    exact = HeatmapCodec(2.5, refine=False).decode({"heatmap": _as_logits(targets["heatmap"])})
    assert torch.equal(exact.points, torch.round(pts))


def test_3d_encode_loss_decode_honour_visibility():
    size = (16, 14, 10)
    pts = torch.tensor([[[5.0, 6.0, 4.0], [float("nan")] * 3],
                        [[9.4, 3.2, 6.7], [12.0, 10.0, 2.0]]])
    visible = torch.tensor([[True, False], [True, True]])
    codec = HeatmapCodec(2.0)
    out = codec.encode(pts, visible, size)
    assert out["heatmap"].shape == (2, 2, 10, 14, 16)
    assert out["weight"].tolist() == [[1.0, 0.0], [1.0, 1.0]]
    assert out["heatmap"][0, 1].abs().max() == 0 and out["heatmap"][0, 0].max() == 1.0
    # an invisible landmark with a real position is still not a target
    hidden = codec.encode(pts.nan_to_num(3.0), visible, size)
    assert hidden["heatmap"][0, 1].abs().max() == 0 and hidden["weight"][0, 1] == 0
    for loss in ("bce", "mse"):
        codec = HeatmapCodec(2.0, loss=loss)
        logits = torch.randn(2, 2, 10, 14, 16, requires_grad=True)
        value = codec.loss({"heatmap": logits}, out)
        value.backward()
        assert torch.isfinite(value)
        assert logits.grad[0, 1].abs().max() == 0   # image 0, landmark 1: not visible
        assert logits.grad[0, 0].abs().max() > 0 and logits.grad[1, 1].abs().max() > 0
        # the mean over every voxel of the visible channels
        prob = torch.sigmoid(logits.detach())
        per_voxel = (torch.nn.functional.binary_cross_entropy_with_logits(
            logits.detach(), out["heatmap"], reduction="none") if loss == "bce"
            else (prob - out["heatmap"]) ** 2)
        expected = (per_voxel.mean((-3, -2, -1)) * out["weight"]).sum() / 3
        assert torch.isclose(value.detach(), expected, rtol=1e-5)
    with pytest.raises(InputError, match="awing"):
        HeatmapCodec(2.0, loss="awing").loss({"heatmap": torch.zeros(2, 2, 10, 14, 16)}, out)
    pred = codec.decode({"heatmap": _as_logits(out["heatmap"])})
    assert pred.points[0, 0].tolist() == [5.0, 6.0, 4.0]
    assert (pred.points[1] - pts[1]).abs().max() < 0.05


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_3d_logits_decode_to_float32_points(dtype):
    """x = 300.37 is 300.0 in bf16 (300.25 in float16): decoding runs in float32."""
    pts = torch.tensor([[[300.37, 5.62, 3.4], [12.5, 2.2, 1.7]]], dtype=torch.float64)
    logits = _as_logits(render_gaussians(pts, (320, 12, 8), 2.0)).float()
    low = logits.to(dtype)
    pred = HeatmapCodec(2.0).decode({"heatmap": low})
    assert pred.points.dtype == torch.float32 and pred.confidence.dtype == torch.float32
    ref = decode_heatmap(low.float())
    assert torch.equal(pred.points, ref.points) and torch.equal(pred.confidence, ref.confidence)
    assert (pred.points.double() - pts).abs().max() < 0.05
    score_pts, peak = decode_peaks(LOGSIG(low.float()).to(dtype))
    assert score_pts.dtype == torch.float32 and peak.dtype == torch.float32


def test_a_volume_of_one_slice_is_its_image():
    """Not a special case: Z = 1 renders and decodes as the 2-D image, bit for bit."""
    gen = torch.Generator().manual_seed(5)
    pts = torch.rand(2, 3, 2, generator=gen) * torch.tensor([20.0, 15.0])
    pts3 = torch.cat([pts, torch.zeros(2, 3, 1)], -1)
    sigma = torch.rand(2, 3, generator=gen) + 1
    heat2 = render_gaussians(pts, (21, 16), sigma)
    heat3 = render_gaussians(pts3, (21, 16, 1), sigma)
    assert torch.equal(heat3[:, :, 0], heat2)
    logits = torch.randn(2, 3, 16, 21, generator=gen)
    for refine in (True, False):
        p2, c2 = decode_peaks(logits, refine, to_log=LOGSIG)
        p3, c3 = decode_peaks(logits[:, :, None], refine, to_log=LOGSIG)
        assert torch.equal(p3[..., :2], p2) and torch.equal(c3, c2)
        assert p3[..., 2].abs().max() == 0


def test_the_dimension_must_be_2_or_3_and_agree_with_the_size():
    with pytest.raises(InputError):
        render_gaussians(torch.zeros(1, 1, 3), (8, 8), 1.0)
    with pytest.raises(InputError):
        render_gaussians(torch.zeros(1, 1, 2), (8, 8, 8), 1.0)
    with pytest.raises(InputError):
        render_gaussians(torch.zeros(1, 1, 1), (8,), 1.0)
    with pytest.raises(InputError):
        decode_peaks(torch.zeros(1, 1, 8))
    with pytest.raises(InputError):
        decode_heatmap(torch.zeros(1, 1, 2, 2, 2, 2))


def test_an_empty_batch_of_volumes():
    pts, peak = decode_peaks(torch.zeros(0, 3, 4, 5, 6), to_log=LOGSIG)
    assert pts.shape == (0, 3, 3) and peak.shape == (0, 3)
    assert render_gaussians(torch.zeros(0, 3, 3), (6, 5, 4), 2.0).shape == (0, 3, 4, 5, 6)


def test_3d_decoding_exports_with_a_dynamic_batch():
    """Traceable: one exported program for any batch (what ONNX export needs)."""

    class Decode(torch.nn.Module):
        def forward(self, logits):
            pts, peak = decode_peaks(logits.float(), True, to_log=LOGSIG)
            return pts, torch.exp(peak)

    x = torch.randn(2, 3, 6, 7, 8)
    program = torch.export.export(Decode(), (x,),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    y = torch.randn(5, 3, 6, 7, 8) * 3
    for got, want in zip(program.module()(y), Decode()(y), strict=True):
        assert torch.equal(got, want)


# --- images: unchanged bit for bit -----------------------------------------------------


def _old_render_gaussians(points, size, sigma):
    """render_gaussians before volumes (frozen copy)."""
    w, h = size
    dtype = points.dtype if points.is_floating_point() else torch.float32
    xs = torch.arange(w, device=points.device, dtype=dtype)
    ys = torch.arange(h, device=points.device, dtype=dtype)
    sig = torch.as_tensor(sigma, device=points.device, dtype=dtype).expand(points.shape[:2])
    pts = torch.nan_to_num(points, nan=-1e6)
    two_s2 = (2 * sig ** 2)[..., None]
    gx = torch.exp(-((xs - pts[..., 0:1]) ** 2) / two_s2)
    gy = torch.exp(-((ys - pts[..., 1:2]) ** 2) / two_s2)
    return gy[..., :, None] * gx[..., None, :]


def _old_decode_peaks(score, refine=True, to_log=None):
    """decode_peaks before volumes (frozen copy)."""
    if score.dtype != torch.float32:
        score = score.float()
    b, k, h, w = score.shape
    peak, index = score.reshape(b, k, h * w).max(dim=-1)
    y = torch.div(index, w, rounding_mode="floor")
    x = index - y * w
    pts = torch.stack([x, y], dim=-1).to(torch.float32)
    to_log = to_log or (lambda v: v)
    if refine:
        pts = pts + torch.stack([_old_offset(score, x, y, 1, 0, w, x, to_log),
                                 _old_offset(score, x, y, 0, 1, h, y, to_log)], -1)
    return pts, to_log(peak)


def _old_offset(score, x, y, dx, dy, n, coord, to_log):
    b, k, h, w = score.shape
    flat = score.reshape(b, k, h * w)

    def at(ox, oy):
        xi = (x + ox).clamp(0, w - 1)
        yi = (y + oy).clamp(0, h - 1)
        return to_log(flat.gather(-1, (yi * w + xi)[..., None])[..., 0])

    left, centre, right = at(-dx, -dy), at(0, 0), at(dx, dy)
    denom = left - 2 * centre + right
    inside = (coord > 0) & (coord < n - 1) & (denom < -1e-12)
    offset = 0.5 * (left - right) / torch.where(inside, denom, torch.full_like(denom, -1.0))
    return torch.where(inside, offset.clamp(-0.5, 0.5), torch.zeros_like(offset))


def _same(a, b):
    """Equal bit for bit, NaNs included."""
    return a.dtype == b.dtype and a.shape == b.shape and (
        torch.equal(a, b) or torch.equal(a.reshape(-1).view(torch.uint8),
                                         b.reshape(-1).view(torch.uint8)))


SIZES_2D = [(32, 32), (17, 23), (320, 12), (5, 1), (1, 7), (3, 3)]
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]


def _points(gen, size, b=3, k=5):
    """(b, k, 2) points over the map and a pixel beyond it, corners, edges and a NaN."""
    w, h = size
    p = torch.rand(b, k, 2, generator=gen, dtype=torch.float64)
    p = p * torch.tensor([w + 1.0, h + 1.0], dtype=torch.float64) - 1.0
    p[0, 0] = torch.tensor([0.0, 0.0])
    p[0, 1] = torch.tensor([w - 1.0, h - 1.0])
    p[0, 2] = torch.tensor([w - 1.2, 0.3])
    p[0, 3] = torch.tensor([0.49, h - 0.51])
    p[-1, -1] = float("nan")
    return p


@pytest.mark.parametrize("size", SIZES_2D)
def test_2d_rendering_is_unchanged(size):
    gen = torch.Generator().manual_seed(11)
    for dtype in DTYPES:
        pts = _points(gen, size).to(dtype)
        for sigma in (2.0, 0.7, torch.rand(3, 5, generator=gen) * 4 + 0.5,
                      torch.tensor([[1.0], [3.0], [2.5]])):
            assert _same(render_gaussians(pts, size, sigma),
                         _old_render_gaussians(pts, size, sigma)), (dtype, sigma)
    ints = torch.randint(-1, max(size) + 1, (2, 3, 2), generator=gen)
    assert _same(render_gaussians(ints, size, 1.5), _old_render_gaussians(ints, size, 1.5))
    vis = torch.rand(3, 5, generator=gen) > 0.3
    pts = _points(gen, size)
    new = HeatmapCodec(1.5).encode(pts, vis, size)
    old = _old_render_gaussians(pts, size, 1.5) * vis.double()[..., None, None]
    assert _same(new["heatmap"], old) and _same(new["weight"], vis.double())


@pytest.mark.parametrize("size", SIZES_2D)
def test_2d_decoding_is_unchanged(size):
    gen = torch.Generator().manual_seed(12)
    w, h = size
    rendered = _as_logits(_old_render_gaussians(_points(gen, size), size, 2.0))
    noise = torch.randn(3, 5, h, w, generator=gen, dtype=torch.float64) * 3
    for logits in (rendered, noise, torch.zeros(2, 2, h, w)):
        for dtype in DTYPES:
            lg = logits.to(dtype)
            for refine in (True, False):
                for to_log in (None, LOGSIG):
                    new, old = decode_peaks(lg, refine, to_log), _old_decode_peaks(
                        lg, refine, to_log)
                    assert all(_same(a, b) for a, b in zip(new, old, strict=True)), \
                        (dtype, refine, to_log)
                pred = HeatmapCodec(2.0, refine=refine).decode({"heatmap": lg})
                pts, peak = _old_decode_peaks(lg, refine, LOGSIG)
                assert _same(pred.points, pts) and _same(pred.confidence, torch.exp(peak))


def test_2d_decoding_of_a_large_batch_is_unchanged():
    """Enough maps for the vectorised kernels (log-sigmoid of many values at once)."""
    logits = torch.randn(16, 19, 64, 48, generator=torch.Generator().manual_seed(13))
    for lg in (logits, logits.bfloat16()):
        for refine in (True, False):
            new, old = decode_peaks(lg, refine, LOGSIG), _old_decode_peaks(lg, refine, LOGSIG)
            assert all(_same(a, b) for a, b in zip(new, old, strict=True))


# decode_heatmap of these Gaussians before volumes (values computed with the 2-D code)
STORED_POINTS = torch.tensor([[[2.3, 4.7], [14.5, 0.2], [0.0, 10.99], [15.6, 11.4]],
                              [[8.25, 5.5], [16.0, 3.1], [float("nan")] * 2, [7.0, 6.0]]],
                             dtype=torch.float64)
STORED = {
    torch.float32: ([[[2.299999952316284, 4.699999809265137], [14.5, 0.0], [0.0, 11.0],
                      [16.0, 11.0]],
                     [[8.25, 5.5], [16.0, 3.0999999046325684], [0.0, 0.0], [7.0, 6.0]]],
                    [[0.9607894420623779, 0.9375882148742676, 0.9999777674674988,
                      0.9313583970069885],
                     [0.9616906046867371, 0.9987508058547974, 9.999996707435455e-13, 1.0]]),
    torch.bfloat16: ([[[2.300002098083496, 4.699997901916504], [14.5, 0.0], [0.0, 11.0],
                       [16.0, 11.0]],
                      [[8.250324249267578, 5.5], [16.0, 3.098844051361084], [0.0, 0.0],
                       [7.0, 6.0]]],
                     [[0.9609516859054565, 0.9372107982635498, 0.999977171421051,
                       0.9314625263214111],
                      [0.961533784866333, 0.998755156993866, 1.0060393273655932e-12, 1.0]]),
}


@pytest.mark.parametrize("dtype", list(STORED))
def test_2d_decoding_gives_the_stored_values(dtype):
    heat = render_gaussians(STORED_POINTS, (17, 12), torch.tensor([[1.5], [2.0]],
                                                                  dtype=torch.float64))
    np.testing.assert_allclose(
        heat[0, 0, 4:6, 1:4].numpy(),
        [[0.6160393457950848, 0.8790716347454989, 0.804304156065572],
         [0.6733058765041154, 0.9607894391523233, 0.8790716347454989]], rtol=1e-12)
    pred = decode_heatmap(_as_logits(heat).float().to(dtype))
    points, confidence = STORED[dtype]
    np.testing.assert_allclose(pred.points.numpy(), points, rtol=0, atol=1e-5)
    np.testing.assert_allclose(pred.confidence.numpy(), confidence, rtol=1e-5, atol=1e-12)
    rounded = decode_heatmap(_as_logits(heat).float().to(dtype), refine=False).points
    assert rounded.tolist() == [[[2.0, 5.0], [14.0, 0.0], [0.0, 11.0], [16.0, 11.0]],
                                [[8.0, 5.0], [16.0, 3.0], [0.0, 0.0], [7.0, 6.0]]]
