"""Figures a person can read: error plots that stay above zero, overlays with named and
separated labels."""

from __future__ import annotations

import numpy as np

from unilandmark import make_synthetic, synthetic_dataset
from unilandmark.evaluation.report import (
    CONFIDENCE_NOTE,
    draw_overlay,
    label_offsets,
    landmark_error_figure,
)


def test_landmark_error_plot_never_goes_below_zero():
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    # skewed errors whose mean - SD is negative: the old mean ± SD bars dipped below 0
    errors = rng.exponential(0.4, size=(30, 5))
    errors[:, 2] = 0.05
    errors[0, 2] = 6.0
    errors[3, 4] = np.nan  # a landmark left out of one image
    assert (errors[:, 2].mean() - errors[:, 2].std()) < 0
    report = {"unit": "mm", "mre": float(np.nanmean(errors)),
              "median": float(np.nanmedian(errors)),
              "per_landmark": [{"name": f"lm{k}"} for k in range(5)]}
    fig = landmark_error_figure(report, errors)
    ax = fig.axes[0]
    assert ax.get_ylim()[0] == 0
    drawn = np.concatenate([np.asarray(line.get_ydata(), float) for line in ax.lines])
    assert np.nanmin(drawn) >= 0
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "1 lm0" and len(labels) == 5
    plt.close(fig)


def test_close_points_get_labels_apart():
    points = np.array([[100.0, 100.0], [103.0, 101.0], [300.0, 300.0]])  # 1 and 2 nearly touch
    offsets = np.array(label_offsets(points))
    centres = points + offsets
    assert np.linalg.norm(centres[0] - centres[1]) > 9.0  # labels of 1 and 2 do not overlap
    assert all(np.linalg.norm(o) > 4 for o in offsets)  # never on top of the point


def test_overlay_names_the_landmarks(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    make_synthetic(tmp_path, domains=("hand",), train=1, val=0, test=1, size=(96, 96), seed=1)
    spec = synthetic_dataset(tmp_path, "hand")
    record = spec.split_records("test")[0]
    texts = []
    original_close = plt.close

    def keep_texts(fig):
        texts.extend(t.get_text() for ax in fig.axes for t in ax.texts)
        texts.extend(t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts())
        original_close(fig)

    monkeypatch.setattr(plt, "close", keep_texts)
    out = draw_overlay(record.image_path, record.points + 1.0, record.points,
                       tmp_path / "o.png", title=record.id, names=spec.landmark_names,
                       confidence=np.full(12, 0.2))
    assert out.is_file() and out.stat().st_size > 1000
    joined = "\n".join(texts)
    assert "thumb_tip" in joined and "wrist_ulnar" in joined and "0.20" in joined
    assert {"prediction", "ground truth"} <= set(texts)
    assert "12" in texts  # numbered labels on the image


def test_confidence_is_explained():
    assert "peak" in CONFIDENCE_NOTE and "0.2" in CONFIDENCE_NOTE
    assert "calibrated" in CONFIDENCE_NOTE


def test_labels_stay_inside_the_image_and_far_ones_get_a_leader_line():
    # a crowd of landmarks near the top edge (a chin, or a chest image's title): every
    # label's centre stays inside the image, and some label had to move away far enough
    # for a leader line
    rng = np.random.default_rng(2)
    points = np.column_stack([200 + rng.uniform(0, 30, 12), 395 - rng.uniform(0, 8, 12)])
    offsets = np.array(label_offsets(points, bounds_pt=(400.0, 400.0)))
    centres = points + offsets + 3.0
    assert (centres[:, 1] + 5 <= 400).all() and (centres[:, 0] >= 4).all()
    from unilandmark.evaluation.report import LEADER_FROM_PT

    assert (np.hypot(offsets[:, 0], offsets[:, 1]) > LEADER_FROM_PT).any()


def test_overlay_marks_flagged_landmarks_and_draws_at_full_resolution(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from PIL import Image

    make_synthetic(tmp_path, domains=("hand",), train=1, val=0, test=1, size=(1200, 960),
                   seed=1)
    spec = synthetic_dataset(tmp_path, "hand")
    record = spec.split_records("test")[0]
    texts, rings = [], []
    original_close = plt.close

    def keep(fig):
        texts.extend(t.get_text() for ax in fig.axes for t in ax.texts)
        rings.extend(c for ax in fig.axes for c in ax.collections
                     if len(c.get_edgecolors()) and c.get_sizes()[0] >= 100)
        original_close(fig)

    monkeypatch.setattr(plt, "close", keep)
    flags = np.zeros(12, bool)
    flags[[2, 7]] = True
    small = draw_overlay(record.image_path, record.points, None, tmp_path / "s.png",
                         names=spec.landmark_names, flags=flags)
    full = draw_overlay(record.image_path, record.points, None, tmp_path / "f.png",
                        names=spec.landmark_names, flags=flags, full_resolution=True)
    joined = "\n".join(texts)
    names = spec.landmark_names
    assert f"! flagged, check: 2\n  {names[2]}\n  {names[7]}" in joined
    assert len(rings) == 2 and all(len(r.get_offsets()) == 2 for r in rings)
    w_small, w_full = Image.open(small).size[0], Image.open(full).size[0]
    assert w_full > w_small and w_full >= 1200  # the image at its own pixel size or more
