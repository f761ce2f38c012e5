import numpy as np

from unilandmark import check_dataset, render_phantom, synthetic_dataset
from unilandmark.data.synthetic import LANDMARKS


def test_phantoms_are_deterministic_and_vary_with_seed():
    a, pa = render_phantom("hand", 5, (96, 96))
    b, pb = render_phantom("hand", 5, (96, 96))
    c, pc = render_phantom("hand", 6, (96, 96))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(pa, pb)
    assert np.abs(pa - pc).max() > 1.0 and not np.array_equal(a, c)


def test_landmarks_are_inside_and_on_structure():
    for domain in LANDMARKS:
        for seed in range(20):
            image, points = render_phantom(domain, seed, (128, 128))
            assert points.shape == (len(LANDMARKS[domain]), 2)
            assert points.min() > 2 and points.max() < 125
            # landmarks sit on drawn anatomy: brighter than the image's darkest decile
            values = image[np.round(points[:, 1]).astype(int), np.round(points[:, 0]).astype(int)]
            assert np.median(values) > np.percentile(image, 10)


def test_fingertips_look_alike():
    """Fingertip patches are similar: the hand domain is locally ambiguous by design."""
    image, points = render_phantom("hand", 0, (192, 192))
    tips = points[[3, 5, 7]]  # index, middle, ring
    patches = [image[int(y) - 4:int(y) + 5, int(x) - 4:int(x) + 5].astype(float)
               for x, y in np.round(tips)]
    assert all(p.shape == (9, 9) for p in patches)
    background = image[:9, :9].astype(float)
    diffs = [np.abs(patches[0] - p).mean() for p in patches[1:]]
    assert max(diffs) < np.abs(patches[0] - background).mean()


def test_written_domains_read_through_the_csv_adapter(phantoms):
    spec = synthetic_dataset(phantoms, "hand")
    assert spec.domain == "hand" and spec.num_landmarks == 12
    assert {k: len(v) for k, v in spec.splits.items()} == {"train": 24, "val": 8, "test": 8,
                                                           "all": 40}
    assert spec.unit == "mm" and spec.records[0].spacing == (0.6, 0.6)
    assert synthetic_dataset(phantoms, "chest").unit == "px"
    _, faults = check_dataset(spec)
    assert faults == []
