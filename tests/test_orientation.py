"""Mirrors: flip pairs in augmentation and encoding, orientation at inference."""

import numpy as np
import pytest
import torch

from unilandmark import read_image, synthetic_dataset
from unilandmark.codecs import HeatmapCodec
from unilandmark.core.geometry import flip_permutation
from unilandmark.inference.detector import Detector
from unilandmark.training.augment import AugmentConfig, augment_batch

MIRROR_ONLY = AugmentConfig(rotate_deg=0, scale=0, translate=0, gamma=(1, 1), contrast=0,
                            brightness=0, noise=0, flip=1.0)


def test_flip_permutation_swaps_named_pairs():
    names = ("apex_l", "apex_r", "spine", "hilum_l", "hilum_r")
    perm = flip_permutation(names, [("apex_l", "apex_r"), ("hilum_r", "hilum_l")])
    assert perm.tolist() == [1, 0, 2, 4, 3]
    assert flip_permutation(names, []).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="no landmark named 'apex_x'"):
        flip_permutation(names, [("apex_l", "apex_x")])


def test_mirror_moves_points_and_swaps_pair_names():
    w, h = 20, 10
    image = torch.zeros(1, 1, h, w)
    image[0, 0, 3, 4] = 1.0  # a bright pixel at (4, 3): the "left" landmark
    points = torch.tensor([[[4.0, 3.0], [15.0, 6.0], [9.5, 2.0]]])
    visible = torch.tensor([[True, True, False]])
    perm = torch.as_tensor(flip_permutation(("left", "right", "mid"), [("left", "right")]))
    out = augment_batch({"image": image, "points": points, "visible": visible}, MIRROR_ONLY,
                        torch.Generator().manual_seed(0), perm)
    assert out["image"][0, 0, 3, w - 1 - 4] == pytest.approx(1.0, abs=1e-4)
    # the point at x=15 mirrors to x=4 and is now called "left"; the one at 4 -> 15 "right"
    np.testing.assert_allclose(out["points"][0, 0].numpy(), [w - 1 - 15.0, 6.0])
    np.testing.assert_allclose(out["points"][0, 1].numpy(), [w - 1 - 4.0, 3.0])
    assert out["visible"][0].tolist() == [True, True, False]
    # the encoded target of "left" now peaks where "right" was, mirrored
    heat = HeatmapCodec(1.5).encode(out["points"], out["visible"], (w, h))["heatmap"]
    peak = int(heat[0, 0].argmax())
    assert (peak % w, peak // w) == (4, 6)


def test_no_pairs_mirror_keeps_names():
    points = torch.tensor([[[2.0, 1.0], [7.0, 5.0]]])
    out = augment_batch({"image": torch.rand(1, 1, 8, 10), "points": points,
                         "visible": torch.ones(1, 2, dtype=torch.bool)}, MIRROR_ONLY,
                        torch.Generator().manual_seed(0))
    np.testing.assert_allclose(out["points"][0].numpy(), [[7.0, 1.0], [2.0, 5.0]])


def test_mirrored_image_is_read_in_the_training_orientation(trained_run, phantoms):
    """A model trained on one orientation finds the landmarks of a mirrored phantom: the
    orientation decision reads it mirrored, and mirrored back it gives the same points
    as the original."""
    detector = Detector.from_checkpoint(trained_run.best_path)
    records = synthetic_dataset(phantoms, "head").split_records("test")
    for record in records[:4]:
        array, _ = read_image(record.image_path)
        original = detector.predict(array, "head")
        mirrored = detector.predict(np.ascontiguousarray(array[:, ::-1]), "head")
        assert original.orientation == "original"
        assert mirrored.orientation == "mirrored"
        w = array.shape[1]  # the mirrored image's points, mirrored back: the original's
        np.testing.assert_allclose((w - 1) - mirrored.points[:, 0], original.points[:, 0],
                                   atol=1e-3)
        np.testing.assert_allclose(mirrored.points[:, 1], original.points[:, 1], atol=1e-3)
        forced = detector.predict(np.ascontiguousarray(array[:, ::-1]), "head",
                                  orientation="original")
        err_forced = np.linalg.norm(forced.points - np.stack(
            [(w - 1) - record.points[:, 0], record.points[:, 1]], -1), axis=-1).mean()
        err_auto = np.linalg.norm(mirrored.points - np.stack(
            [(w - 1) - record.points[:, 0], record.points[:, 1]], -1), axis=-1).mean()
        assert err_auto < 2.0 < err_forced  # without the decision the mirror is lost


def test_orientation_rule_keeps_the_original_unless_the_mirror_is_clearly_more_confident():
    from unilandmark.inference.orientation import (
        CONFIDENT_ORIGINAL,
        MIRROR_CONFIDENCE_RATIO,
        mirror_pass_needed,
        reads_mirrored,
    )

    original = np.array([[0.2, 0.3], [0.2, 0.3], [0.02, 0.01], [0.6, 0.7]])
    # slightly more, equal, clearly more; a confident original whatever its mirror says
    mirrored = np.array([[0.22, 0.31], [0.2, 0.3], [0.6, 0.7], [0.99, 0.99]])
    expected = [False, False, True, False]
    assert reads_mirrored(original, mirrored).tolist() == expected
    assert mirror_pass_needed(original).tolist() == [True, True, True, False]
    # the exported graph runs the same rule on tensors
    assert reads_mirrored(torch.from_numpy(original), torch.from_numpy(mirrored)).tolist() \
        == expected
    unsure = np.full((1, 3), 0.9 * CONFIDENT_ORIGINAL / MIRROR_CONFIDENCE_RATIO)
    assert reads_mirrored(unsure, unsure * (MIRROR_CONFIDENCE_RATIO + 0.01)).tolist() == [True]
    assert reads_mirrored(unsure, unsure * (MIRROR_CONFIDENCE_RATIO - 0.01)).tolist() == [False]


def test_the_mirror_pass_runs_only_for_images_not_read_confidently(trained_run, phantoms,
                                                                   monkeypatch):
    """Stage 1 decodes the mirror only for the images whose original pass is unsure, and
    only those images carry a mirror gap."""
    detector = Detector.from_checkpoint(trained_run.best_path)
    records = synthetic_dataset(phantoms, "head").split_records("test")[:3]
    arrays = [read_image(r.image_path)[0] for r in records]
    real = detector._stage1
    calls = []

    def counting(batch, domain):
        pts, conf, heat = real(batch, domain)
        if not calls:  # the original pass: the middle image unsure, the others confident
            conf = conf.copy()
            conf[[0, 2]] = 0.9
            conf[1] = 0.1
        calls.append(batch.shape[0])
        return pts, conf, heat

    monkeypatch.setattr(detector, "_stage1", counting)
    results = detector.predict_many(arrays, "head")
    assert calls == [3, 1]  # the mirror of the unsure image only
    gaps = [np.isfinite(r.mirror_gap).all() for r in results]
    assert gaps == [False, True, False]
