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


LOSSES = {"bce": heatmap_bce, "mse": heatmap_mse}
