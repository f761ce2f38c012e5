"""Losses over model outputs and codec targets; every loss honours a visibility weight.

``weight`` (B, K) is 1 for visible landmarks and 0 otherwise, so a missing landmark never
trains towards anything.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def heatmap_bce(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]
                ) -> torch.Tensor:
    """Binary cross-entropy with logits, averaged over visible channels and pixels."""
    logits, target, weight = outputs["heatmap"], targets["heatmap"], targets["weight"]
    per_pixel = F.binary_cross_entropy_with_logits(logits.float(), target.float(),
                                                   reduction="none")
    per_channel = per_pixel.mean(dim=(-2, -1))
    return (per_channel * weight).sum() / weight.sum().clamp(min=1.0)


def heatmap_mse(outputs, targets) -> torch.Tensor:
    """Mean squared error between sigmoid(logits) and the target heatmap (visible only)."""
    prob = torch.sigmoid(outputs["heatmap"].float())
    per_channel = ((prob - targets["heatmap"].float()) ** 2).mean(dim=(-2, -1))
    weight = targets["weight"]
    return (per_channel * weight).sum() / weight.sum().clamp(min=1.0)


def adaptive_wing(outputs, targets, omega: float = 14.0, theta: float = 0.5,
                  epsilon: float = 1.0, alpha: float = 2.1, map_weight: float = 10.0
                  ) -> torch.Tensor:
    """Adaptive wing loss (Wang et al., ICCV 2019) between sigmoid(logits) and the target,
    with the paper's weighted loss map: pixels of the 3x3-dilated foreground (target >=
    0.2) count ``1 + map_weight`` times.

    Non-linear (log-like) for small errors near the peak, where the target is high, and
    linear for large ones; the exponent ``alpha - y`` adapts to the target value y.
    """
    pred = torch.sigmoid(outputs["heatmap"].float())
    y = targets["heatmap"].float()
    delta = (pred - y).abs()
    power = alpha - y
    a = omega * (1 / (1 + (theta / epsilon) ** power)) * power * \
        ((theta / epsilon) ** (power - 1)) / epsilon
    c = theta * a - omega * torch.log1p((theta / epsilon) ** power)
    loss = torch.where(delta < theta, omega * torch.log1p((delta / epsilon) ** power),
                       a * delta - c)
    foreground = F.max_pool2d((y >= 0.2).float(), 3, 1, 1)
    loss = loss * (1 + map_weight * foreground)
    weight = targets["weight"]
    return (loss.mean(dim=(-2, -1)) * weight).sum() / weight.sum().clamp(min=1.0)


LOSSES = {"bce": heatmap_bce, "mse": heatmap_mse, "awing": adaptive_wing}
