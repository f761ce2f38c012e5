"""The whole-image stage: every domain's images resized into its network input.

Each step takes one batch of one domain, augments it on the device (geometry, mirror
with the domain's flip pairs, intensity), renders the codec's targets from the float
points and returns them to the loop. Validation predicts the validation split and scores
it in original pixels (x spacing: mm where known).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ...core.errors import InputError
from ...core.geometry import flip_permutation
from ...inference.shape import build_shape_model
from ...models import build_model, codec_for
from ..augment import augment_batch
from ..config import DomainConfig, ExperimentConfig
from ..dataset import LandmarkDataset
from .base import DomainRecords, Stage, load_domain, score_domain


@dataclass
class ImageDomain:
    name: str
    records: DomainRecords
    train: LandmarkDataset
    val: LandmarkDataset | None
    codec: object
    flip: torch.Tensor | None

    @property
    def config(self) -> DomainConfig:
        return self.records.config


class ImageStage(Stage):
    kind = "image"

    def __init__(self, config: ExperimentConfig, log=print):
        self.config = config
        self.domain_data: dict[str, ImageDomain] = {}
        cache = config.train.cache_dir
        for dc in config.domains:
            recs = load_domain(dc)
            train = LandmarkDataset(recs.spec, dc.train_split, dc.input_size, dc.resize, cache)
            val = (LandmarkDataset(recs.spec, dc.val_split, dc.input_size, dc.resize, cache)
                   if recs.val else None)
            if val is None:
                log(f"warning: domain {dc.name} has no validation split: the best checkpoint "
                    "will be the last epoch")
            if dc.sigma_mm is not None and any(r.spacing is None for r in recs.train):
                raise InputError(f"domain {dc.name}: sigma_mm needs spacing for every image")
            flip = (torch.as_tensor(flip_permutation(recs.spec.landmark_names, dc.flip_pairs))
                    if dc.flip_pairs else None)
            codec = codec_for(config.model.name, dc.sigma, config.optim.loss)
            self.domain_data[dc.name] = ImageDomain(dc.name, recs, train, val, codec, flip)
        self.domains = {n: d.records.spec.num_landmarks for n, d in self.domain_data.items()}

    def build_model(self, config: ExperimentConfig) -> nn.Module:
        return build_model(config.model.name, self.domains, **config.model.kwargs())

    def sizes(self) -> dict[str, int]:
        return {n: len(d.train) for n, d in self.domain_data.items()}

    def batch(self, domain, indices, generator, device):
        d = self.domain_data[domain]
        batch = augment_batch(d.train.batch(indices, device), self.config.train.augment,
                              generator, d.flip)
        sigma = None
        if d.config.sigma_mm is not None:
            sigma = (d.config.sigma_mm / d.train.mm_per_px(indices)).to(device)[:, None]
        targets = d.codec.encode(batch["points"], batch["visible"], d.train.input_size, sigma)
        return batch["image"], targets

    def loss(self, domain, outputs, targets):
        d = self.domain_data[domain]
        return d.codec.loss(outputs, targets) * d.config.loss_weight

    def validate(self, model, device):
        out = {}
        for name, d in self.domain_data.items():
            if d.val is None:
                continue
            pred, _ = predict_dataset(model, d.val, d.codec, name, device)
            out[name] = score_domain(pred, d.val.records, d.records.spec.thresholds)
        return out

    def checkpoint_fields(self, validation):
        return {"domains": {n: domain_meta(d) for n, d in self.domain_data.items()}}


def domain_meta(d: ImageDomain) -> dict:
    """What a checkpoint keeps of a domain to predict without its dataset: landmark
    names, network input, codec settings, the training images' spacing (median), flip
    pairs and the shape model of the training configurations."""
    spec, dc = d.records.spec, d.config
    spacings = [r.spacing for r in d.records.train if r.spacing]
    spacing = ([float(v) for v in np.median(np.array(spacings), axis=0)]
               if len(spacings) == len(d.records.train) else None)
    shapes = np.stack([r.points for r in d.records.train])
    if spacing is not None:
        shapes = shapes * np.array([r.spacing for r in d.records.train])[:, None, :]
    visible = np.stack([r.visible for r in d.records.train])
    shape = None
    if len(shapes) >= 3 and spec.num_landmarks >= 3:
        shape = build_shape_model(shapes, visible).to_dict()
    return {"dataset": dc.dataset, "landmark_names": list(spec.landmark_names),
            "num_landmarks": spec.num_landmarks, "input_size": list(d.train.input_size),
            "resize": d.train.mode, "sigma": dc.sigma, "unit": spec.unit,
            "thresholds": list(spec.thresholds), "spec_name": spec.name,
            "spacing": spacing, "flip_pairs": [list(p) for p in dc.flip_pairs],
            "shape": shape}


@torch.no_grad()
def predict_dataset(model, dataset, codec, domain: str, device,
                    batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Predict every sample of a :class:`LandmarkDataset` or a ``VolumeDataset``; returns
    (points (N, K, D) in original pixels or voxels, confidence (N, K))."""
    was_training = model.training
    model.eval()
    pts, conf = [], []
    for start in range(0, len(dataset), batch_size):
        idx = np.arange(start, min(start + batch_size, len(dataset)))
        batch = dataset.batch(idx, device)
        pred = codec.decode(model(batch["image"], domain))
        p = pred.points.double().cpu().numpy()
        for j, i in enumerate(idx):
            pts.append(dataset.to_original(int(i), p[j]))
        conf.append(pred.confidence.float().cpu().numpy())
    model.train(was_training)
    return np.stack(pts), np.concatenate(conf)
