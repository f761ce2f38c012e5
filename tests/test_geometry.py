import numpy as np
import pytest

from unilandmark.core.geometry import fit_geometry, resize_to_input


def test_stretch_matrix_by_hand():
    g = fit_geometry((1935, 2400), (416, 512))
    sx, sy = 1935 / 416, 2400 / 512
    # network pixel (0, 0) covers original [-0.5, sx - 0.5]: its centre is (sx - 1) / 2
    np.testing.assert_allclose(g.to_original(np.array([0.0, 0.0])), [(sx - 1) / 2, (sy - 1) / 2])
    np.testing.assert_allclose(g.to_original(np.array([415.5, 511.5])), [1934.5, 2399.5])
    pts = np.array([[835.0, 996.0], [1.5, 2.5]])
    np.testing.assert_allclose(g.to_original(g.to_network(pts)), pts)


def test_letterbox_keeps_aspect_and_pads():
    g = fit_geometry((200, 100), (64, 64), mode="letterbox")
    assert g.matrix[0, 0] == pytest.approx(200 / 64) and g.matrix[1, 1] == pytest.approx(100 / 32)
    img = np.ones((100, 200), dtype=np.float32)
    out = resize_to_input(img, g)
    assert out.shape == (1, 64, 64)
    assert out[0, :32].min() == pytest.approx(1.0) and out[0, 32:].max() == 0.0


@pytest.mark.parametrize("mode", ["stretch", "letterbox"])
def test_resized_dot_lands_where_the_geometry_says(mode):
    h, w = 300, 240
    yy, xx = np.mgrid[0:h, 0:w]
    cx, cy = 101.3, 187.6
    img = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 6.0**2)).astype(np.float32)
    g = fit_geometry((w, h), (96, 96), mode=mode)
    out = resize_to_input(img, g)[0]
    ys, xs = np.mgrid[0:96, 0:96]
    centroid = np.array([(out * xs).sum(), (out * ys).sum()]) / out.sum()
    np.testing.assert_allclose(g.to_original(centroid), [cx, cy], atol=0.3)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="positive"):
        fit_geometry((0, 10), (10, 10))
    with pytest.raises(ValueError, match="unknown resize mode"):
        fit_geometry((10, 10), (10, 10), mode="crop")
