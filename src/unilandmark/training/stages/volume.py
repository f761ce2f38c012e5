"""The whole-volume stage: every domain's volumes resampled to one isotropic spacing and
centred in its network input (``training.volumes``), for 3-D models of the registry.

Each step takes one batch of one domain, augments it in network space with the points
moved exactly (:mod:`..augment3d`: an x mirror with the flip pairs swapped, rotation about
three axes, scale, translation, intensity; drawn from the loop's generator, so a resumed
run draws the same), renders the codec's targets in network voxels and returns them to the
loop. Validation predicts the validation split and scores it in original voxels times the
volume's spacing: mm in 3-D.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...core.geometry import flip_permutation
from ...models import build_model, codec_for
from ...quality.presence import landmark_presence_thresholds, thresholds_of
from ..augment3d import augment_volume_batch
from ..config import DomainConfig, ExperimentConfig
from ..volumes import VolumeDataset
from .base import DomainRecords, Stage, load_domain, score_domain
from .image import predict_dataset


@dataclass
class VolumeDomain:
    name: str
    records: DomainRecords
    train: VolumeDataset
    val: VolumeDataset | None
    codec: object
    flip: torch.Tensor | None = None

    @property
    def config(self) -> DomainConfig:
        return self.records.config


class VolumeStage(Stage):
    kind = "volume"

    def __init__(self, config: ExperimentConfig, log=print):
        self.config = config
        sc = config.stage
        self.domain_data: dict[str, VolumeDomain] = {}
        cache = config.train.cache_dir
        for dc in config.domains:
            recs = load_domain(dc)

            def dataset(split: str, recs=recs, dc=dc) -> VolumeDataset:
                return VolumeDataset(recs.spec, split, sc.spacing, dc.input_size, sc.modality,
                                     cache, sc.ct_window)

            train = dataset(dc.train_split)
            val = dataset(dc.val_split) if recs.val else None
            if val is None:
                log(f"warning: domain {dc.name} has no validation split: the best checkpoint "
                    "will be the last epoch")
            codec = codec_for(config.model.name, dc.sigma, config.optim.loss)
            flip = (torch.as_tensor(flip_permutation(recs.spec.landmark_names, dc.flip_pairs))
                    if dc.flip_pairs else None)
            self.domain_data[dc.name] = VolumeDomain(dc.name, recs, train, val, codec, flip)
        self.domains = {n: d.records.spec.num_landmarks for n, d in self.domain_data.items()}

    def build_model(self, config: ExperimentConfig) -> nn.Module:
        return build_model(config.model.name, self.domains, **config.model.kwargs())

    def sizes(self) -> dict[str, int]:
        return {n: len(d.train) for n, d in self.domain_data.items()}

    def batch(self, domain, indices, generator, device):
        d = self.domain_data[domain]
        batch = augment_volume_batch(d.train.batch(indices, device),
                                     self.config.train.augment, generator,
                                     d.train.target_spacing, d.flip)
        image = batch["image"]
        sigma = None
        if d.config.sigma_mm is not None:
            sigma = (d.config.sigma_mm / d.train.mm_per_voxel(indices)).to(device)[:, None]
        targets = d.codec.encode(batch["points"], batch["visible"], d.train.input_size, sigma)
        return image, targets

    def loss(self, domain, outputs, targets):
        d = self.domain_data[domain]
        return d.codec.loss(outputs, targets) * d.config.loss_weight

    def validate(self, model, device):
        out = {}
        for name, d in self.domain_data.items():
            if d.val is None:
                continue
            pred, confidence = predict_dataset(model, d.val, d.codec, name, device,
                                               batch_size=2)
            out[name] = score_domain(pred, d.val.records, d.records.spec.thresholds)
            out[name]["presence_threshold"] = landmark_presence_thresholds(
                confidence, d.val.visible, self.config.stage.presence_threshold)
        return out

    def checkpoint_fields(self, validation):
        domains = {}
        for n, d in self.domain_data.items():
            threshold = validation.get(n, {}).get("presence_threshold",
                                                  self.config.stage.presence_threshold)
            domains[n] = volume_domain_meta(d, self.config) | {"presence_threshold": [
                float(v) for v in thresholds_of(threshold, d.records.spec.num_landmarks)]}
        return {"domains": domains}


def volume_domain_meta(d: VolumeDomain, config: ExperimentConfig) -> dict:
    """What a checkpoint keeps of a volume domain to predict without its dataset."""
    spec, dc, sc = d.records.spec, d.config, config.stage
    return {"dataset": dc.dataset, "landmark_names": list(spec.landmark_names),
            "num_landmarks": spec.num_landmarks, "input_size": list(d.train.input_size),
            "dims": 3, "target_spacing": [float(v) for v in d.train.target_spacing],
            "modality": sc.modality, "ct_window": [float(v) for v in sc.ct_window],
            "sigma": dc.sigma, "unit": spec.unit, "thresholds": list(spec.thresholds),
            "spec_name": spec.name, "flip_pairs": [list(p) for p in dc.flip_pairs]}
