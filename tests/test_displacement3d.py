"""3-D displacement maps (the survey's CBCT method): ``DisplacementCodec`` on the N-D codec
contract and the ``displacement3d`` model.

- 2-D results are those of the 2-D-only codec before it took volumes, bit for bit
  (targets, loss and its gradients, decoded points and confidence, from bf16 too), against
  ``tests/data/displacement2d_reference.npz``, written by that codec;
- 3-D: target shapes and channel order, a ball of ``radius``, exact sub-voxel round trip
  from ideal outputs, a loss that ignores invisible landmarks, float32 decoding;
- the model: outputs under the codec's keys, forward and backward on two domains, its
  registry entry; the volume stage trains it and ``VolumeDetector`` predicts with it;
- the slow step: it learns the 3-D head phantoms through the one training loop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from unilandmark.codecs import DisplacementCodec
from unilandmark.core.errors import InputError
from unilandmark.models import MODELS, build_model, codec_for, models_for

from .volume_learning import (
    errors_on_test_split,
    train_volume_model,
    volume_config,
    write_volume_phantoms,
)

REFERENCE = Path(__file__).parent / "data" / "displacement2d_reference.npz"
SIZE = (22, 17, 13)  # (W, H, Z): odd, no two sides equal
SPATIAL = SIZE[::-1]  # (Z, H, W)


# --- 2-D: bit-identical to the codec before the N-D rewrite ---------------------------


@pytest.mark.parametrize("radius", [3.0, 4.5])
def test_2d_results_are_bit_identical_to_the_2d_only_codec(radius):
    ref = np.load(REFERENCE)
    t = {k: torch.from_numpy(ref[k]) for k in ref.files}
    w, h = (int(v) for v in ref["size"])
    codec = DisplacementCodec(radius=radius)

    def same(result, key):
        expected = t[f"r{radius}_{key}"]
        assert result.dtype == expected.dtype and torch.equal(result, expected), key

    targets = codec.encode(t["points"], t["visible"], (w, h))
    for key in ("mask", "offset", "weight"):
        same(targets[key], f"target_{key}")
    outputs = {"mask": t["mask_logits"].clone().requires_grad_(),
               "offset": t["offset_out"].clone().requires_grad_()}
    loss = codec.loss(outputs, targets)
    loss.backward()
    same(loss.detach(), "loss")
    same(outputs["mask"].grad, "grad_mask")
    same(outputs["offset"].grad, "grad_offset")
    pred = codec.decode({"mask": t["mask_logits"], "offset": t["offset_out"]})
    same(pred.points, "points")
    same(pred.confidence, "confidence")
    ideal = {"mask": torch.logit(targets["mask"].clamp(1e-6, 1 - 1e-6)),
             "offset": targets["offset"]}
    pred = codec.decode(ideal)
    same(pred.points, "ideal_points")
    same(pred.confidence, "ideal_confidence")
    same(codec.loss(ideal, targets), "ideal_loss")
    pred = codec.decode({"mask": t["mask_logits"].bfloat16(),
                         "offset": t["offset_out"].bfloat16()})
    same(pred.points, "bf16_points")
    same(pred.confidence, "bf16_confidence")


# --- 3-D codec ---------------------------------------------------------------------------


def _points(b=2, k=3, seed=0):
    """Sub-voxel points, one at the volume's corner (its ball cut by three faces)."""
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(b, k, 3, generator=g) * torch.tensor([w - 7.0 for w in SIZE]) + 3.0
    pts[0, 0] = torch.tensor([0.3, 16.4, 0.45])
    return pts


def _ideal(targets, seed=1):
    """What a perfect model outputs: a sure mask on the balls, the true offsets inside
    them and noise outside (where no offset is trusted)."""
    mask = targets["mask"]
    b, k = mask.shape[:2]
    inside = mask.bool()[:, :, None].expand(b, k, 3, *SPATIAL).reshape(b, 3 * k, *SPATIAL)
    noise = torch.randn(inside.shape, generator=torch.Generator().manual_seed(seed))
    return {"mask": torch.where(mask.bool(), 12.0, -12.0),
            "offset": torch.where(inside, targets["offset"], noise)}


def test_3d_targets_hold_a_ball_of_radius_and_three_offsets_per_landmark():
    codec = DisplacementCodec(radius=4.5)
    pts = _points()
    visible = torch.ones(2, 3, dtype=torch.bool)
    visible[1, 2] = False
    t = codec.encode(pts, visible, SIZE)
    assert t["mask"].shape == (2, 3, *SPATIAL) and t["offset"].shape == (2, 9, *SPATIAL)
    assert t["weight"].tolist() == [[1, 1, 1], [1, 1, 0]]
    zs, ys, xs = torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in SPATIAL],
                                indexing="ij")
    for b in range(2):
        for k in range(3):
            px, py, pz = pts[b, k]
            dx, dy, dz = (px - xs) / 4.5, (py - ys) / 4.5, (pz - zs) / 4.5
            # channels 3k, 3k + 1, 3k + 2: (dx, dy, dz) in units of the radius
            torch.testing.assert_close(t["offset"][b, 3 * k:3 * k + 3],
                                       torch.stack([dx, dy, dz]), rtol=0, atol=1e-6)
            ball = (dx ** 2 + dy ** 2 + dz ** 2) <= 1.0
            assert torch.equal(t["mask"][b, k].bool(), ball & bool(visible[b, k]))
    assert t["mask"][1, 2].sum() == 0  # invisible: no ball


def test_3d_encode_then_decode_recovers_sub_voxel_points_exactly():
    for radius in (3.0, 4.5):
        codec = DisplacementCodec(radius=radius)
        pts = _points()
        t = codec.encode(pts, torch.ones(2, 3, dtype=torch.bool), SIZE)
        pred = codec.decode(_ideal(t))
        assert pred.points.shape == (2, 3, 3) and pred.confidence.shape == (2, 3)
        assert pred.points.dtype == torch.float32 and pred.confidence.dtype == torch.float32
        assert (pred.points - pts).abs().max() < 1e-4, radius
        assert torch.all(pred.confidence > 0.99)


def test_3d_decode_computes_in_float32_whatever_the_outputs_dtype():
    codec = DisplacementCodec(radius=4.5)
    t = codec.encode(_points(), torch.ones(2, 3, dtype=torch.bool), SIZE)
    ideal = _ideal(t)
    for dtype in (torch.bfloat16, torch.float16):
        low = {k: v.to(dtype) for k, v in ideal.items()}
        pred = codec.decode(low)
        ref = codec.decode({k: v.float() for k, v in low.items()})
        assert pred.points.dtype == torch.float32
        assert torch.equal(pred.points, ref.points)
        assert torch.equal(pred.confidence, ref.confidence)


def test_3d_loss_ignores_invisible_landmarks():
    codec = DisplacementCodec(radius=4.5)
    pts = _points()
    visible = torch.ones(2, 3, dtype=torch.bool)
    visible[0, 1] = visible[1, 2] = False
    pts[1, 2] = float("nan")  # an unannotated landmark: NaN, as the datasets give it
    t = codec.encode(pts, visible, SIZE)
    g = torch.Generator().manual_seed(3)
    mask = torch.randn(2, 3, *SPATIAL, generator=g).requires_grad_()
    offset = torch.randn(2, 9, *SPATIAL, generator=g).requires_grad_()
    loss = codec.loss({"mask": mask, "offset": offset}, t)
    assert torch.isfinite(loss)
    loss.backward()
    # no gradient reaches an invisible landmark's mask or offsets ...
    for b, k in ((0, 1), (1, 2)):
        assert mask.grad[b, k].abs().sum() == 0
        assert offset.grad[b, 3 * k:3 * k + 3].abs().sum() == 0
    assert mask.grad[0, 0].abs().sum() > 0 and offset.grad[0, 0:3].abs().sum() > 0
    # ... so whatever the model says there leaves the loss as it is
    other = {"mask": mask.detach().clone(), "offset": offset.detach().clone()}
    other["mask"][0, 1] = 50.0
    other["offset"][1, 6:9] = -7.0
    assert codec.loss(other, t) == loss.detach()
    # ideal outputs on the visible landmarks: the offsets' L1 is 0, only the BCE is left
    ideal = _ideal(t)
    assert codec.loss(ideal, t) < 1e-4


def test_points_and_size_of_different_dimensions_are_refused():
    codec = DisplacementCodec()
    with pytest.raises(InputError, match="size of D values"):
        codec.encode(torch.zeros(1, 2, 3), torch.ones(1, 2, dtype=torch.bool), (10, 12))
    with pytest.raises(InputError, match=r"\(B, K, Z, H, W\)"):
        codec.decode({"mask": torch.zeros(1, 2, 4), "offset": torch.zeros(1, 4, 4)})


# --- the model -------------------------------------------------------------------------


def test_the_registry_entry():
    entry = MODELS["displacement3d"]
    assert "displacement3d" in models_for(3) and "displacement3d" not in models_for(2)
    # a whole-volume model only: a patch stage refines heatmap channels, which it has not
    assert entry.stages == {"image"} and not entry.global_branch
    assert "displacement" in entry.family
    codec = codec_for("displacement3d", 1.5)
    assert isinstance(codec, DisplacementCodec) and codec.radius == 4.5
    assert codec_for("displacement3d", 0.5).radius == 3.0  # as the 2-D displacement model


def test_forward_backward_on_two_domains_gives_the_codecs_keys():
    torch.manual_seed(0)
    domains = {"ct": 3, "mr": 5}
    model = build_model("displacement3d", domains, width=4, depth=2)
    codec = codec_for("displacement3d", 1.5)
    for domain, k in domains.items():
        x = torch.rand(2, 1, *SPATIAL)
        out = model(x, domain)
        assert set(out) == {"mask", "offset"}
        assert out["mask"].shape == (2, k, *SPATIAL)
        assert out["offset"].shape == (2, 3 * k, *SPATIAL)
        # the mask starts near 0 (the heatmaps' prior bias), as the 2-D head does
        assert torch.sigmoid(out["mask"]).mean() < 0.1
        pts = torch.rand(2, k, 3) * torch.tensor([w - 1.0 for w in SIZE])
        visible = torch.ones(2, k, dtype=torch.bool)
        visible[0, 0] = False
        pts[0, 0] = float("nan")
        loss = codec.loss(out, codec.encode(pts, visible, SIZE))
        model.zero_grad()
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        pred = codec.decode({key: v.detach() for key, v in out.items()})
        assert pred.points.shape == (2, k, 3) and torch.isfinite(pred.points).all()


def test_the_volume_stage_trains_it_and_the_volume_detector_predicts_with_it(tmp_path):
    """The plumbing, unchanged for this model: the volume stage (codec from the registry,
    validation through ``predict_dataset``), its checkpoint, ``VolumeDetector``."""
    from unilandmark.data.synthetic3d import synthetic_volumes_dataset
    from unilandmark.inference.volume_detector import VolumeDetector
    from unilandmark.training.fit import fit

    data = write_volume_phantoms(tmp_path / "data")
    threads = torch.get_num_threads()
    try:
        run = fit(volume_config(data, tmp_path / "run", "displacement3d", epochs=2),
                  progress=False, log=lambda *_: None)
    finally:
        torch.set_num_threads(threads)
    errors, _ = errors_on_test_split(run.best_path, data)
    assert errors.shape == (6, 8) and np.isfinite(errors).all()
    detector = VolumeDetector.from_checkpoint(run.best_path)
    record = synthetic_volumes_dataset(data).split_records("test")[0]
    result = detector.predict(record.image_path)
    assert result.voxels.shape == (8, 3) and result.world.shape == (8, 3)
    assert np.isfinite(result.voxels).all()
    assert ((result.confidence >= 0) & (result.confidence <= 1)).all()


# --- the slow step: learning ----------------------------------------------------------

#: test MRE bound in mm: 1.5 x the worst of 5 seeds (width 16, 80 epochs: 1.733-1.955 mm;
#: seed index 0, the test's: 1.903), below the mean shape (3.262-3.924 mm); and the model's
#: error over the mean shape's, 1.5 x the worst of the same seeds (0.472-0.590). Measured
#: with ``python -m tests.volume_learning --seeds 0,1,2,3,4 --model displacement3d``
#: (docs/volumes.md).
BOUND_MM = 3.0
BOUND_RATIO = 0.89


@pytest.mark.slow
def test_displacement3d_learns_the_volume_phantoms(tmp_path):
    data = write_volume_phantoms(tmp_path / "data")
    run = train_volume_model(data, tmp_path / "run", "displacement3d")
    errors, mean_shape = errors_on_test_split(run.best_path, data)
    mre, baseline = float(np.nanmean(errors)), float(np.nanmean(mean_shape))
    print(f"displacement3d: {mre:.3f} mm, mean shape {baseline:.3f} mm")
    assert mre < BOUND_MM and mre / baseline < BOUND_RATIO
