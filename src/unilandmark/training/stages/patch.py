"""The patch stage: coarse-to-fine refinement on top of any trained stage or cascade.

Every image is kept at ``1 / s`` per axis (``s`` original pixels per patch pixel, from
``stage.scale`` or ``stage.scale_mm`` and each image's own spacing), each with its own
Geometry. A training sample is one (image, landmark) pair: a patch centred on the ground
truth plus a jitter drawn from the previous stage's own validation error vectors for that
landmark (times ``jitter_factor``, plus Gaussian noise of ``jitter_floor`` patch pixels and
a uniform shift of up to ``jitter_uniform``),
randomly rotated and zoomed (``train.augment``'s rotation and scale), with its intensity
augmentation. Every annotated landmark is a
target in every patch (a Gaussian where it lies, zero elsewhere), so each patch teaches
all channels. Validation refines the previous stage's predictions on the validation split,
exactly as prediction does, and a per-landmark gate keeps this stage only where it helps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ...checkpoints.checkpoint import load_checkpoint, prediction_state
from ...core.types import truth_points
from ...inference.refine import crop, refine_points, to_patch
from ...models import codec_for
from ..augment import augment_intensity
from ..config import DomainConfig, ExperimentConfig, PatchStageConfig
from ..dataset import ScaledImages
from .base import DomainRecords, RefinementGate, Stage, load_domain, score_domain


@dataclass
class PatchDomain:
    name: str
    records: DomainRecords
    train: ScaledImages
    val: ScaledImages | None
    pairs: np.ndarray  # (P, 2) (image, landmark) of visible training points
    jitter: np.ndarray  # (N_val, K, 2) previous-stage errors in original px (NaN: none)
    previous_val: np.ndarray | None  # (N_val, K, 2) previous predictions, original px
    previous_score: dict | None  # the previous stage's validation errors

    @property
    def config(self) -> DomainConfig:
        return self.records.config


class PatchStage(RefinementGate, Stage):
    kind = "patch"

    def __init__(self, config: ExperimentConfig, device: torch.device, log=print):
        from ...inference.detector import Detector

        self.config = config
        sc: PatchStageConfig = config.stage  # type: ignore[assignment]
        self.stage_config = sc
        self.previous = prediction_state(load_checkpoint(sc.previous))
        previous_domains = self.previous["domains"]
        domain_configs = self.resolve_domains(config, self.previous, previous_domains)
        detector = Detector.from_checkpoint_state(self.previous, device)
        # the patch stage's codec is its model's (registry), at the patch sigma
        self.codec = codec_for(config.model.name, sc.sigma, config.optim.loss)
        self.domain_data: dict[str, PatchDomain] = {}
        cache = config.train.cache_dir
        for dc in domain_configs:
            recs = load_domain(dc)
            train = ScaledImages(recs.spec, dc.train_split, sc.scale, sc.scale_mm, cache)
            val = (ScaledImages(recs.spec, dc.val_split, sc.scale, sc.scale_mm, cache)
                   if recs.val else None)
            jitter = np.zeros((1, recs.spec.num_landmarks, 2))
            previous_val = previous_score = None
            if val is not None:
                # whole decodes, as the patches are cut from: a reduced decode would follow
                # the previous stages' needs, not this stage's
                results = detector.predict_many([r.image_path for r in recs.val], dc.name,
                                                orientation="original", reduced_decode=False)
                previous_val = np.stack([r.points for r in results])
                jitter = previous_val - truth_points(recs.val)
                previous_score = score_domain(previous_val, recs.val, recs.spec.thresholds)
                log(f"{dc.name}: previous stage on validation {previous_score['mre']:.3f} "
                    f"{previous_score['unit']}")
            else:
                log(f"warning: domain {dc.name} has no validation split: patches are jittered "
                    f"by noise of {sc.jitter_floor} patch px only and no landmark is gated")
            pairs = np.argwhere(train.visible)
            self.domain_data[dc.name] = PatchDomain(dc.name, recs, train, val, pairs, jitter,
                                                    previous_val, previous_score)
        self.domains = {n: d.records.spec.num_landmarks for n, d in self.domain_data.items()}

    def batch(self, domain, indices, generator, device):
        d, sc = self.domain_data[domain], self.stage_config
        aug = self.config.train.augment
        size = sc.patch_size
        pairs = d.pairs[np.asarray(indices)]
        n = len(pairs)
        u = torch.rand((n, 4), generator=generator, dtype=torch.float64).numpy()
        pick = torch.randint(0, len(d.jitter), (n,), generator=generator).numpy()
        noise = torch.randn((n, 2), generator=generator, dtype=torch.float64).numpy()
        centres, linears = np.zeros((n, 2)), np.zeros((n, 2, 2))
        for row, (i, k) in enumerate(pairs):
            g = d.train.geometries[i]
            error = np.nan_to_num(d.jitter[pick[row], k]) * sc.jitter_factor
            error_resized = error / np.diag(g.matrix)[:2]  # original px -> resized px
            shift = (2 * u[row, 2:4] - 1) * sc.jitter_uniform
            centres[row] = d.train.points[i, k] + error_resized + noise[row] * sc.jitter_floor \
                + shift
            angle = math.radians(aug.rotate_deg) * (2 * u[row, 0] - 1) * aug.enabled
            zoom = 1 + aug.scale * (2 * u[row, 1] - 1) * aug.enabled
            c, s = math.cos(angle) * zoom, math.sin(angle) * zoom
            linears[row] = [[c, -s], [s, c]]
        lin = torch.tensor(linears, dtype=torch.float32)
        cen = torch.tensor(centres, dtype=torch.float32)
        patches = torch.empty((n, 1, size, size))
        for i in np.unique(pairs[:, 0]):
            rows = np.flatnonzero(pairs[:, 0] == i)
            image = torch.from_numpy(d.train.images[i].astype(np.float32))
            patches[rows] = crop(image, cen[rows], lin[rows], size)
        images = patches.to(device)
        if aug.enabled:
            images = augment_intensity(images, aug, generator)
        truth = torch.tensor(d.train.points[pairs[:, 0]], dtype=torch.float32)  # (n, K, 2)
        visible = torch.from_numpy(d.train.visible[pairs[:, 0]])
        local = to_patch(torch.nan_to_num(truth, nan=-1e6), cen, lin, size)
        local = torch.where(visible[..., None], local, torch.full_like(local, float("nan")))
        targets = self.codec.encode(local.to(device), visible.to(device), (size, size))
        return images, targets

    def refine(self, model, d: PatchDomain, device) -> np.ndarray:
        images = [torch.from_numpy(im.astype(np.float32)) for im in d.val.images]
        refined, _ = refine_points(model, self.codec, d.name, images, d.val.geometries,
                                   d.previous_val, self.stage_config.patch_size,
                                   test_offsets=self.stage_config.test_offsets, device=device)
        return refined

    def validate(self, model, device):
        out = {}
        for name, d in self.domain_data.items():
            if d.val is None:
                continue
            refined = self.refine(model, d, device)
            score = score_domain(refined, d.val.records, d.records.spec.thresholds)
            score["gate"] = self.gate(d, score)
            gated = np.where(np.asarray(score["gate"])[None, :, None], refined, d.previous_val)
            score["gated_mre"] = score_domain(gated, d.val.records,
                                              d.records.spec.thresholds)["mre"]
            score["previous_mre"] = d.previous_score["mre"]
            out[name] = score
        return out

    def checkpoint_fields(self, validation):
        domains = {}
        for name, d in self.domain_data.items():
            spec = d.records.spec
            gate = validation.get(name, {}).get("gate") or [True] * spec.num_landmarks
            domains[name] = {"landmark_names": list(spec.landmark_names),
                             "num_landmarks": spec.num_landmarks, "unit": spec.unit,
                             "thresholds": list(spec.thresholds), "spec_name": spec.name,
                             "dataset": d.config.dataset, "apply": gate}
        return {"domains": domains, "previous": self.previous}
