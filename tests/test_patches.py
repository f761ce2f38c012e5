"""Patch geometry of refinement stages: crops, the inverse mapping, per-image scaling."""

import math

import numpy as np
import pytest
import torch

from unilandmark import csv_dataset
from unilandmark.core.geometry import patch_scale, scaled_geometry
from unilandmark.imageio.read import write_image
from unilandmark.inference.refine import crop, to_patch
from unilandmark.training.dataset import ScaledImages


def _ramp(h=40, w=50):
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    return (xs + 100 * ys)[None]  # linear: bilinear sampling reads exact coordinates


def test_crop_samples_centre_plus_linear_offsets():
    image = _ramp()
    lin = torch.tensor([[[2.0, 0.0], [0.0, 2.0]]])
    patch = crop(image, torch.tensor([[20.25, 10.5]]), lin, 5)
    # patch pixel (u, v) samples centre + L @ ((u, v) - 2)
    assert patch.shape == (1, 1, 5, 5)
    assert patch[0, 0, 2, 2].item() == pytest.approx(20.25 + 100 * 10.5)
    assert patch[0, 0, 0, 4].item() == pytest.approx(20.25 + 4 + 100 * (10.5 - 4))


def test_crop_with_rotation_and_to_patch_are_inverse():
    image = _ramp()
    angle = math.radians(30)
    c, s = math.cos(angle) * 1.2, math.sin(angle) * 1.2
    lin = torch.tensor([[[c, -s], [s, c]]] * 2)
    centres = torch.tensor([[24.0, 18.0], [20.5, 21.25]])
    patches = crop(image, centres, lin, 9)
    target = torch.tensor([[[26.0, 19.5]], [[18.0, 22.0]]])  # image pixels
    local = to_patch(target, centres, lin, 9)  # (2, 1, 2) patch pixels
    for n in range(2):
        u, v = local[n, 0].tolist()
        # the patch value at (u, v) (bilinear between patch pixels) is the image's there
        u0, v0 = int(math.floor(u)), int(math.floor(v))
        fu, fv = u - u0, v - v0
        p = patches[n, 0]
        val = (p[v0, u0] * (1 - fu) * (1 - fv) + p[v0, u0 + 1] * fu * (1 - fv) +
               p[v0 + 1, u0] * (1 - fu) * fv + p[v0 + 1, u0 + 1] * fu * fv)
        x, y = target[n, 0].tolist()
        assert val.item() == pytest.approx(x + 100 * y, abs=1e-3)


def test_patch_scale_from_mm_needs_spacing():
    assert patch_scale((0.1, 0.1), 2.0, None) == 2.0
    assert patch_scale((0.1, 0.1), 2.0, 0.3) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="needs the image's spacing"):
        patch_scale(None, 2.0, 0.3)


def test_scaled_images_keep_each_image_geometry_exact(tmp_path):
    """Images of different sizes and anisotropic pixel grids: every image gets its own
    resize, and the points land on the same structure in the resized image."""
    rows = ["id,image,p_x,p_y"]
    truth = {}
    for n, (w, h, px, py) in enumerate([(120, 90, 30.4, 60.7), (64, 200, 40.2, 150.1),
                                        (301, 77, 250.6, 20.3)]):
        ys, xs = np.mgrid[0:h, 0:w]
        img = np.exp(-((xs - px) ** 2 + (ys - py) ** 2) / (2 * 3.0 ** 2))
        write_image(tmp_path / f"i{n}.png", np.round(img * 255).astype(np.uint8))
        rows.append(f"i{n},i{n}.png,{px},{py}")
        truth[f"i{n}"] = (px, py)
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    spec = csv_dataset(tmp_path / "t.csv")
    data = ScaledImages(spec, "all", scale=2.5)
    sizes = {tuple(g.input_size) for g in data.geometries}
    assert len(sizes) == 3  # one resize per image, not the first image's
    for i, record in enumerate(data.records):
        g = data.geometries[i]
        w, h = g.original_size
        assert g.input_size == (round(w / 2.5), round(h / 2.5))
        image = data.images[i][0].astype(np.float64)
        ys, xs = np.mgrid[0:image.shape[0], 0:image.shape[1]]
        found = np.array([(image * xs).sum(), (image * ys).sum()]) / image.sum()
        assert np.linalg.norm(found - data.points[i, 0]) < 0.25
        np.testing.assert_allclose(g.to_original(data.points[i, 0]), truth[record.id],
                                   atol=1e-9)
    g = scaled_geometry((100, 50), None, 3.0)
    assert g.matrix[0, 0] == pytest.approx(100 / 33) and g.matrix[1, 1] == pytest.approx(50 / 17)
