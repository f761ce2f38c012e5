"""The whole prediction of one domain as one traceable module: what ``export`` writes.

``PredictionGraph(detector, domain)`` reproduces ``Detector(relocate=False)`` for one
domain, batched, with only tensor operations that export to ONNX (opset 18):

1. stage 1 on the image and, inside an ``If`` only when some image of the batch is not
   read confidently or is forced mirrored, on its mirror (the mirror of the picture inside
   the input, so a letterbox's padding stays right), decoded by argmax + log-parabola;
   per sample the mirror is kept when its mean peak confidence is clearly higher
   (``unilandmark.orientation``; or the orientation forced by ``orientation``), and the
   points go to original pixels of that orientation;
2. every patch stage: patches cropped by ``grid_sample`` from the stage's image (given in
   the original orientation: a mirrored sample's sampling grid is mirrored instead), one
   channel decoded per (landmark, crop), crops averaged, ``apply`` gating per landmark;
3. back to the original image: un-mirrored, flip pairs swapped.

The input and output contract is in :mod:`.contract`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..codecs import HeatmapCodec, decode_peaks
from ..core.errors import InputError
from ..core.geometry import flip_permutation
from ..inference.orientation import mirror_pass_needed, reads_mirrored
from ..inference.refine import TEST_OFFSETS


class _OneDomain(nn.Module):
    """A multi-domain model called for one domain: ``x -> heatmap logits``."""

    def __init__(self, model: nn.Module, domain: str):
        super().__init__()
        self.model = model
        self.domain = domain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, self.domain)["heatmap"]


def decode(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K, H, W) logits -> points (N, K, 2) heatmap px, confidence (N, K): what
    ``HeatmapCodec.decode`` does (log-sigmoid, argmax, log-parabola, sigmoid of the peak)."""
    points, peak = decode_peaks(logits.float(), refine=True,
                                to_log=torch.nn.functional.logsigmoid)
    return points, torch.exp(peak)


class PatchStageGraph(nn.Module):
    """One refinement stage over a batch, from points to refined points.

    ``applied``: the landmarks this stage refines (the checkpoint's ``apply`` gate).
    """

    def __init__(self, model: nn.Module, domain: str, num_landmarks: int, patch_size: int,
                 applied: list[int], test_offsets: float):
        super().__init__()
        self.model = _OneDomain(model, domain)
        self.size = int(patch_size)
        self.k = num_landmarks
        self.applied = list(applied)
        offsets = TEST_OFFSETS if test_offsets > 0 else TEST_OFFSETS[:1]
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.float32)
                             * float(test_offsets), persistent=False)
        grid = torch.arange(self.size, dtype=torch.float32) - (self.size - 1) / 2
        self.register_buffer("grid", grid, persistent=False)
        self.register_buffer("channel", torch.tensor(
            [a * num_landmarks + j for a, j in enumerate(self.applied)], dtype=torch.long),
            persistent=False)
        position = [self.applied.index(j) if j in self.applied else 0
                    for j in range(num_landmarks)]
        self.register_buffer("position", torch.tensor(position, dtype=torch.long),
                             persistent=False)
        self.register_buffer("mask", torch.tensor([j in self.applied for j in
                                                   range(num_landmarks)]), persistent=False)
        self.register_buffer("applied_index", torch.tensor(self.applied, dtype=torch.long),
                             persistent=False)

    def forward(self, image: torch.Tensor, size: torch.Tensor, original_size: torch.Tensor,
                points: torch.Tensor, mirrored: torch.Tensor):
        """image (B, 1, Hp, Wp) the stage's image in the original orientation (zero padded),
        size (B, 2) its (w, h) before padding, original_size (B, 2), points (B, K, 2)
        original px of the chosen orientation, mirrored (B,) bool.

        Returns points (B, K, 2), confidence (B, K) (NaN where not applied) and spread
        (B, K): the RMS distance of the crops' points from their mean in original pixels
        (NaN with one crop or where not applied).
        """
        b = points.shape[0]
        s, ka, o = self.size, len(self.applied), self.offsets.shape[0]
        scale = original_size / size  # original px per stage px, (B, 2)
        centres = (points.index_select(1, self.applied_index) + 0.5) / scale[:, None] - 0.5
        centres = centres[:, :, None, :] + self.offsets  # (B, Ka, O, 2)
        xs = centres[..., 0, None, None] + self.grid[None, :]  # (B, Ka, O, 1, S): u
        ys = centres[..., 1, None, None] + self.grid[:, None]  # (B, Ka, O, S, 1): v
        width = size[:, 0].reshape(b, 1, 1, 1, 1)
        xs = torch.where(mirrored.reshape(b, 1, 1, 1, 1), (width - 1) - xs, xs)
        hp, wp = image.shape[2], image.shape[3]
        gx = (2 * xs + 1) / wp - 1
        gy = (2 * ys + 1) / hp - 1
        grid = torch.stack(torch.broadcast_tensors(gx, gy), -1)  # (B, Ka, O, S, S, 2)
        patches = torch.nn.functional.grid_sample(
            image, grid.reshape(b, ka * o * s, s, 2), mode="bilinear", padding_mode="zeros",
            align_corners=False)  # (B, 1, Ka*O*S, S)
        heat = self.model(patches.reshape(b * ka * o, 1, s, s))  # (B*Ka*O, K, S, S)
        heat = heat.reshape(b, ka, o, self.k, s, s).permute(1, 3, 0, 2, 4, 5)
        chosen = heat.reshape(ka * self.k, b, o, s, s).index_select(0, self.channel)
        local, peak = decode(chosen.permute(1, 0, 2, 3, 4).reshape(b, ka * o, s, s))
        found = centres + (local.reshape(b, ka, o, 2) - (s - 1) / 2)
        mean = found.mean(dim=2)
        confidence = peak.reshape(b, ka, o).mean(dim=2)
        if o > 1:
            rms = ((found - mean[:, :, None]) ** 2).sum(-1).mean(-1).sqrt()
            spread = rms * scale.mean(dim=1, keepdim=True)
        else:
            spread = torch.full_like(confidence, float("nan"))
        # inside the stage image, as ``patches.refine_points`` keeps it
        mean = torch.minimum(mean.clamp(min=0), (size - 1)[:, None, :])
        refined = (mean + 0.5) * scale[:, None] - 0.5
        mask = self.mask[None, :]
        out = torch.where(mask[..., None], refined.index_select(1, self.position), points)
        nan = torch.full_like(out[..., 0], float("nan"))
        return (out, torch.where(mask, confidence.index_select(1, self.position), nan),
                torch.where(mask, spread.index_select(1, self.position), nan))


class PredictionGraph(nn.Module):
    """``Detector(relocate=False)`` of one domain; forward inputs and outputs as in
    :mod:`.contract` (patch-stage inputs in stage order)."""

    def __init__(self, detector, domain: str):
        super().__init__()
        if not isinstance(detector.codecs[domain], HeatmapCodec):
            raise InputError(f"export needs a heatmap model for stage 1; model "
                             f"{detector.model_name!r} decodes with "
                             f"{type(detector.codecs[domain]).__name__}")
        meta = detector.domains[domain]
        self.k = int(meta["num_landmarks"])
        self.input_size = tuple(int(v) for v in meta["input_size"])  # (W, H)
        self.stage1 = _OneDomain(detector.model, domain)
        self.register_buffer("flip", torch.as_tensor(flip_permutation(
            meta["landmark_names"], meta.get("flip_pairs") or [])),
                             persistent=False)
        stages, self.stage_inputs = [], []
        for n, refiner in enumerate(r for r in detector.refiners if domain in r.domains):
            apply = refiner.domains[domain].get("apply") or [True] * self.k
            applied = [j for j in range(self.k) if apply[j]]
            stages.append(PatchStageGraph(refiner.model, domain, self.k,
                                          refiner.config.patch_size, applied,
                                          refiner.config.test_offsets))
            self.stage_inputs.append(n + 1 if applied else None)
        self.stages = nn.ModuleList(stages)

    def forward(self, image, original_size, content_size, orientation, *stage_inputs):
        b = image.shape[0]
        w1 = self.input_size[0]
        cw = content_size[:, 0:1]
        columns = torch.arange(w1, dtype=torch.float32)[None, :]
        source = torch.where(columns < cw, cw - 1 - columns, columns).long()  # (B, W)
        source = source[:, None, None, :].expand(b, 1, image.shape[2], w1)
        points0, confidence0 = decode(self.stage1(image))
        # the mirror pass (an ONNX If) only when some image is forced mirrored or is not
        # read confidently as it is (orientation.py), as Detector skips it
        need = (orientation == 2) | ((orientation == 0) & mirror_pass_needed(confidence0))
        points1, confidence1 = torch.cond(need.any(), self._mirror_pass, self._no_mirror_pass,
                                          (image, source, points0, confidence0))
        auto = reads_mirrored(confidence0, confidence1)
        mirrored = (orientation == 2) | ((orientation == 0) & auto)
        points = torch.where(mirrored[:, None, None], points1, points0)
        confidence = torch.where(mirrored[:, None], confidence1, confidence0)
        points = (points + 0.5) * (original_size / content_size)[:, None] - 0.5
        stage_points, stage_conf = [points], [confidence]
        stage_spread = [torch.full_like(confidence, float("nan"))]
        inputs = iter(stage_inputs)
        for stage, needs in zip(self.stages, self.stage_inputs, strict=True):
            if needs is None:  # no landmark applied: the stage changes nothing
                nan = torch.full_like(confidence, float("nan"))
                stage_points.append(points)
                stage_conf.append(nan)
                stage_spread.append(nan)
                continue
            points, c, spread = stage(next(inputs), next(inputs), original_size, points,
                                      mirrored)
            confidence = torch.where(torch.isnan(c), confidence, c)
            stage_points.append(points)
            stage_conf.append(c)
            stage_spread.append(spread)
        back = self._to_original(torch.stack(stage_points, 1), torch.stack(stage_conf, 1),
                                 torch.stack(stage_spread, 1), confidence, original_size,
                                 mirrored)
        landmarks, conf, all_points, all_conf, all_spread = back
        return landmarks, conf, mirrored, all_points, all_conf, all_spread

    def _mirror_pass(self, image, source, points, confidence):
        """Stage 1 on the mirrors (``source``: the gather index of each mirrored column)."""
        return decode(self.stage1(torch.gather(image, 3, source)))

    def _no_mirror_pass(self, image, source, points, confidence):
        """No mirror decoded: zero confidence, which the orientation rule never picks."""
        return torch.zeros_like(points), torch.zeros_like(confidence)

    def _to_original(self, points, stage_conf, stage_spread, confidence, original_size,
                     mirrored):
        """Mirrored samples back to the original image: x -> W0 - 1 - x, pairs swapped."""
        m = mirrored[:, None, None]
        width = original_size[:, 0].reshape(-1, 1, 1)
        flipped = torch.stack([(width - 1) - points[..., 0], points[..., 1]], -1)
        points = torch.where(m[..., None], flipped.index_select(2, self.flip), points)
        stage_conf = torch.where(m, stage_conf.index_select(2, self.flip), stage_conf)
        stage_spread = torch.where(m, stage_spread.index_select(2, self.flip), stage_spread)
        confidence = torch.where(mirrored[:, None], confidence.index_select(1, self.flip),
                                 confidence)
        return points[:, -1], confidence, points, stage_conf, stage_spread
