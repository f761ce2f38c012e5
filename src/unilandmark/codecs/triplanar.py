"""The tri-planar codec: three 2-D Gaussian heatmaps per landmark, one per orthogonal
plane of a cubic patch (the 2.5-D refiner, :class:`..models.triplanar.TriPlanarNet`).

Points are patch voxels ``(x, y, z)``, the centre of the first voxel at 0; the patch is
``P x P x P`` (``size`` ``(X, Y, Z)``, all equal). Planes, in order, with their maps'
(rows, columns): axial ``(Y, X)``, coronal ``(Z, X)``, sagittal ``(Z, Y)``.

``encode(points (B, K, 3), visible (B, K), size (X, Y, Z), sigma=None)`` ->
``{"planes": (B, 3, K, P, P) in [0, 1], "weight": (B, K)}``: per landmark a Gaussian of
peak 1 (``sigma`` in patch voxels) in each plane at its in-plane coordinates: ``(x, y)``
axial, ``(x, z)`` coronal, ``(y, z)`` sagittal, whatever the landmark's distance from that
plane's slice (the network infers it from context). Invisible landmarks' maps are 0.

``decode({"planes": (B, 3, K, P, P) logits})`` -> Prediction: each plane's map decoded
as a heatmap (argmax + log-parabola, :func:`.heatmap.decode_peaks`), then every axis is
the mean of its two readings: ``x`` of the axial and coronal maps, ``y`` of the axial and
sagittal, ``z`` of the coronal and sagittal. Confidence is the geometric mean of the three
planes' peak probabilities (sigmoid of each plane's peak logit), so one plane without a
clear peak pulls it down. Points and confidence are float32 whatever the logits' dtype.

``loss``: the heatmap loss (default BCE with logits, :func:`.losses.heatmap_bce`) over
the ``3K`` maps, each averaged over its pixels, averaged over the visible landmarks'
maps (``targets["weight"]``): an invisible landmark adds nothing, not even a gradient.
"""

from __future__ import annotations

import torch

from ..core.errors import InputError
from ..core.types import Prediction
from .heatmap import decode_peaks, render_gaussians

#: the points' axes (x 0, y 1, z 2) that are each plane's (columns, rows), plane order
PLANE_AXES = ((0, 1), (0, 2), (1, 2))


class TriPlanarCodec:
    """Three orthogonal 2-D Gaussian heatmaps per landmark of a cubic patch (see the
    module). ``sigma`` in patch voxels; ``loss`` ``bce`` (default), ``mse`` or ``awing``
    (the heatmap codec's losses, applied to the ``3K`` plane maps as 2-D heatmaps)."""

    name = "triplanar"

    def __init__(self, sigma: float = 3.0, refine: bool = True, loss: str = "bce"):
        if sigma <= 0:
            raise InputError(f"sigma must be positive, got {sigma}")
        if loss not in ("bce", "mse", "awing"):
            raise InputError(f"unknown heatmap loss {loss!r}; expected bce, mse or awing")
        self.sigma = float(sigma)
        self.refine = refine
        self.loss_name = loss

    def encode(self, points: torch.Tensor, visible: torch.Tensor, size: tuple[int, ...],
               sigma: torch.Tensor | float | None = None) -> dict[str, torch.Tensor]:
        """(B, K, 3) points (x, y, z), (B, K) visibility, size (X, Y, Z) of a cube ->
        ``{"planes": (B, 3, K, P, P), "weight": (B, K)}``."""
        size = tuple(int(n) for n in size)
        if points.dim() != 3 or points.shape[-1] != 3 or len(size) != 3 \
                or len(set(size)) != 1:
            raise InputError(f"the tri-planar codec takes points (B, K, 3) in a cubic patch "
                             f"(size (P, P, P)), got points of shape {tuple(points.shape)} "
                             f"and size {size}")
        s = self.sigma if sigma is None else sigma
        planes = torch.stack([render_gaussians(points[..., list(axes)],
                                               (size[axes[0]], size[axes[1]]), s)
                              for axes in PLANE_AXES], dim=1)
        weight = visible.to(planes.dtype)
        return {"planes": planes * weight[:, None, :, None, None], "weight": weight}

    def decode(self, outputs: dict[str, torch.Tensor]) -> Prediction:
        """``{"planes": (B, 3, K, P, P) logits}`` -> points (B, K, 3) (x, y, z) in patch
        voxels and confidence (B, K), float32."""
        logits = _planes(outputs["planes"])
        b, _, k, p, _ = logits.shape
        pts, peak = decode_peaks(logits.reshape(b, 3 * k, p, p), self.refine,
                                 to_log=torch.nn.functional.logsigmoid)
        pts, peak = pts.reshape(b, 3, k, 2), peak.reshape(b, 3, k)
        axial, coronal, sagittal = pts[:, 0], pts[:, 1], pts[:, 2]
        x = 0.5 * (axial[..., 0] + coronal[..., 0])
        y = 0.5 * (axial[..., 1] + sagittal[..., 0])
        z = 0.5 * (coronal[..., 1] + sagittal[..., 1])
        confidence = torch.exp(peak.mean(dim=1))  # geometric mean of the 3 probabilities
        return Prediction(points=torch.stack([x, y, z], dim=-1), confidence=confidence)

    def loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]):
        """The heatmap loss over the visible landmarks' 3 plane maps (the mean over
        visible (landmark, plane) maps of each map's mean over its pixels)."""
        from .losses import LOSSES

        logits = _planes(outputs["planes"])
        b, _, k, p, _ = logits.shape
        weight = targets["weight"]
        flat_out = {"heatmap": logits.reshape(b, 3 * k, p, p)}
        flat_tgt = {"heatmap": targets["planes"].reshape(b, 3 * k, p, p),
                    "weight": weight[:, None, :].expand(b, 3, k).reshape(b, 3 * k)}
        return LOSSES[self.loss_name](flat_out, flat_tgt)


def _planes(logits: torch.Tensor) -> torch.Tensor:
    if logits.dim() != 5 or logits.shape[1] != 3 or logits.shape[-1] != logits.shape[-2]:
        raise InputError(f"tri-planar outputs (B, 3, K, P, P) expected, got shape "
                         f"{tuple(logits.shape)}")
    return logits
